from django.urls import path

from kb.search import views

app_name = "search"
urlpatterns = [
    path("passages/<int:chunk_id>/", views.passage_detail, name="passage"),
]
