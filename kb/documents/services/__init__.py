"""The documents app's writes, by concern; every public service is importable from here."""

from kb.documents.services.collections import (
    collection_create,
    collection_delete,
    collection_visibility_change,
    grant_create,
    grant_revoke,
)
from kb.documents.services.ingestion import (
    TRANSIENT_ERRORS,
    document_version_ingest,
    document_version_mark_failed,
    document_versions_requeue_stalled,
    stalled_cutoff,
)
from kb.documents.services.uploads import (
    UploadBatchResult,
    UploadRejected,
    document_delete,
    document_move,
    document_upload,
    document_version_retry,
    upload_batch,
)

__all__ = [
    "TRANSIENT_ERRORS",
    "UploadBatchResult",
    "UploadRejected",
    "collection_create",
    "collection_delete",
    "collection_visibility_change",
    "document_delete",
    "document_move",
    "document_upload",
    "document_version_ingest",
    "document_version_mark_failed",
    "document_version_retry",
    "document_versions_requeue_stalled",
    "grant_create",
    "grant_revoke",
    "stalled_cutoff",
    "upload_batch",
]
