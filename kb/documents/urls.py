from django.urls import path

from kb.documents import views

app_name = "documents"
urlpatterns = [
    path("", views.documents_page, name="page"),
    path("upload/", views.documents_upload, name="upload"),
    path("<int:document_id>/row/", views.document_row, name="row"),
]
