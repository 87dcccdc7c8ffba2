"""Ingestion jobs travel through a real broker to a real Celery worker process."""

import socket
import subprocess
import sys
import time

import pytest

from kb.documents.models import Document
from tests.conftest import PROJECT_ROOT, app_process_environment, start_worker, stop_processes, database_url_for_app_processes
from tests.factories import make_collection, make_department, make_user, upload

pytestmark = pytest.mark.django_db(transaction=True)

REDIS_URL = "redis://127.0.0.1:6379/15"


def _wait_for_status(document: Document, timeout: float) -> Document:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        document.refresh_from_db()
        if document.is_finished:
            return document
        time.sleep(0.5)
    raise AssertionError(f"document still {document.status} after {timeout} s")


def test_upload_is_ingested_by_the_worker_through_the_embedded_broker(live_stack, settings):
    settings.MEDIA_ROOT = live_stack["media_root"]
    department = make_department()
    admin = make_user(department=department, admin=True)

    document = upload(user=admin, collection=make_collection(owner=department), name="leave.md",
                      content=b"# Leave\nAnnual leave is 25 days. Carry-over needs approval.")

    assert _wait_for_status(document, timeout=120).status == Document.Status.READY
    assert document.chunk_count == 1


_UPLOAD_IN_ANOTHER_PROCESS = """
import django, sys
django.setup()
from django.core.files.uploadedfile import SimpleUploadedFile
from kb.accounts.models import User
from kb.documents.models import Collection
from kb.documents.services import document_upload
document = document_upload(acting_user=User.objects.get(pk=int(sys.argv[1])),
                           collection=Collection.objects.get(pk=int(sys.argv[2])),
                           upload=SimpleUploadedFile("leave.md", b"# Leave\\nAnnual leave is 25 days."))
print(document.pk)
"""


def test_redis_broker_carries_ingestion_when_configured(tmp_path):
    try:
        socket.create_connection(("127.0.0.1", 6379), timeout=1).close()
    except OSError:
        pytest.skip("no Redis server on 127.0.0.1:6379 (Redis is optional; the embedded broker is the default)")
    department = make_department()
    admin = make_user(department=department, admin=True)
    collection = make_collection(owner=department)
    # Both the uploading process and the worker get CELERY_BROKER_URL, as a deployment would.
    environment = app_process_environment(
        database_url=database_url_for_app_processes(), broker_url=REDIS_URL, media_root=tmp_path / "media"
    )
    worker = start_worker(environment, tmp_path / "worker.log")
    try:
        uploaded = subprocess.run(
            [sys.executable, "-c", _UPLOAD_IN_ANOTHER_PROCESS, str(admin.pk), str(collection.pk)],
            cwd=PROJECT_ROOT, env=environment, capture_output=True, text=True, check=True,
        )
        document = Document.objects.get(pk=int(uploaded.stdout.strip().splitlines()[-1]))
        assert _wait_for_status(document, timeout=120).status == Document.Status.READY
    finally:
        stop_processes(worker)
