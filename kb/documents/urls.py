from django.urls import path

from kb.documents import views

app_name = "documents"
urlpatterns = [
    path("", views.documents_page, name="page"),
    path("upload/", views.documents_upload, name="upload"),
    path("versions/<int:version_id>/row/", views.document_version_row, name="version-row"),
    path("versions/<int:version_id>/original.pdf", views.document_version_pdf, name="version-pdf"),
    path("versions/<int:version_id>/retry/", views.document_version_retry_view, name="version-retry"),
    path("<int:document_id>/delete/", views.document_delete_view, name="delete"),
    path("<int:document_id>/move/", views.document_move_view, name="move"),
    path("batches/", views.upload_batches_page, name="batches"),
    path("batches/<int:batch_id>/", views.upload_batch_page, name="batch-detail"),
    path("batches/<int:batch_id>/card/", views.upload_batch_progress, name="batch"),
    path("access/", views.access_page, name="access"),
    path("access/collections/", views.collection_create_view, name="collection-create"),
    path("access/<int:collection_id>/visibility/", views.collection_visibility_view, name="collection-visibility"),
    path("access/<int:collection_id>/delete/", views.collection_delete_view, name="collection-delete"),
    path("access/<int:collection_id>/grants/", views.grant_create_view, name="grant-create"),
    path("access/grants/<int:grant_id>/revoke/", views.grant_revoke_view, name="grant-revoke"),
]
