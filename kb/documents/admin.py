from django.contrib import admin

from kb.documents.models import Collection, CollectionGrant, Document, DocumentVersion, EmbeddingModel, UploadBatch
from kb.platform.admin import ReadOnlyAdmin


@admin.register(Collection)
class CollectionAdmin(ReadOnlyAdmin):
    list_display = ["name", "owner", "visibility", "created_at"]
    list_filter = ["visibility", "owner"]
    search_fields = ["name"]


@admin.register(CollectionGrant)
class CollectionGrantAdmin(ReadOnlyAdmin):
    list_display = ["collection", "department", "user", "granted_by", "created_at"]
    list_filter = ["collection"]


@admin.register(Document)
class DocumentAdmin(ReadOnlyAdmin):
    list_display = ["title", "original_name", "collection", "current_version"]
    # No search box: the admin's search is a GET (?q=), which would put uploaded file names in URLs and access logs.
    list_filter = ["collection"]


@admin.register(DocumentVersion)
class DocumentVersionAdmin(ReadOnlyAdmin):
    list_display = ["document", "number", "status", "chunk_count", "size_bytes", "created_at"]
    list_filter = ["status"]  # no search box, as DocumentAdmin


@admin.register(UploadBatch)
class UploadBatchAdmin(ReadOnlyAdmin):
    list_display = ["pk", "collection", "created_by", "created_at"]


@admin.register(EmbeddingModel)
class EmbeddingModelAdmin(ReadOnlyAdmin):
    list_display = ["name", "dimensions", "state", "progress_done", "progress_total", "activated_at"]
