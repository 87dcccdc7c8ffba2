from django.urls import path

from kb.search import views

app_name = "search"
urlpatterns = [
    path("", views.search_page, name="page"),
    path("passages/<int:chunk_id>/", views.passage_detail, name="passage"),
]
