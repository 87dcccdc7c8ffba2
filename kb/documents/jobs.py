"""Background jobs are queued by name: services need not import the tasks that call them back (no import circle)."""

from celery import current_app
from django.db import transaction

INGEST_DOCUMENT_VERSION = "kb.documents.tasks.ingest_document_version"
REEMBED_CHUNKS = "kb.documents.tasks.reembed_chunks"


def job_enqueue_on_commit(name: str, *args: object) -> None:
    """Queue the job once the current transaction commits, so that the worker finds what it was given."""
    transaction.on_commit(lambda: current_app.send_task(name, args=args))
