from celery import shared_task


@shared_task
def ingest_document(document_id: int) -> None:
    from kb.documents.services import document_ingest

    document_ingest(document_id=document_id)
