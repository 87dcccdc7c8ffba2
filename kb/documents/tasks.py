from celery import shared_task
from celery.signals import worker_ready

from kb.documents.jobs import INGEST_DOCUMENT_VERSION, REEMBED_CHUNKS


@shared_task(name=INGEST_DOCUMENT_VERSION, bind=True, max_retries=5)
def ingest_document_version(self, version_id: int) -> None:
    from kb.documents.services import TRANSIENT_ERRORS, document_version_ingest, document_version_mark_failed

    try:
        document_version_ingest(version_id=version_id)
    except TRANSIENT_ERRORS as error:
        if self.request.retries >= self.max_retries:
            document_version_mark_failed(
                version_id=version_id, reason=f"gave up after {self.max_retries + 1} attempts: {error}"
            )
            raise
        raise self.retry(exc=error, countdown=2 ** (self.request.retries + 1)) from error


@worker_ready.connect
def requeue_stalled_ingestion(**_) -> None:
    """A worker that starts may be the replacement of one that died mid-document: pick up what it left."""
    from kb.documents.services import document_versions_requeue_stalled

    document_versions_requeue_stalled()


@shared_task(name=REEMBED_CHUNKS)
def reembed_chunks(model_id: int) -> None:
    from kb.documents.embedding_models import embedding_model_change_run

    embedding_model_change_run(model_id=model_id)
