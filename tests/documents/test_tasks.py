"""Ingestion jobs travel through a real broker to a real Celery worker process."""

import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from django.db import connection

from kb.audit.models import AuditEvent
from kb.documents.models import Chunk, Document, DocumentVersion
from tests.conftest import (
    PROJECT_ROOT,
    app_process_environment,
    database_url_for_app_processes,
    fresh_broker,
    start_worker,
    stop_processes,
)
from tests.factories import make_collection, make_department, make_user, upload

pytestmark = pytest.mark.django_db(transaction=True)

REDIS_URL = "redis://127.0.0.1:6379/15"


def _wait_until_finished(version: DocumentVersion, timeout: float) -> DocumentVersion:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        version.refresh_from_db()
        if version.is_finished:
            return version
        time.sleep(0.5)
    raise AssertionError(f"{version} still {version.status} after {timeout} s")


def test_upload_is_ingested_by_the_worker_through_the_embedded_broker(live_stack, settings):
    settings.MEDIA_ROOT = live_stack["media_root"]
    department = make_department()
    admin = make_user(department=department, admin=True)

    version = upload(
        user=admin,
        collection=make_collection(owner=department),
        name="leave.md",
        content=b"# Leave\nAnnual leave is 25 days. Carry-over needs approval.",
    )

    assert _wait_until_finished(version, timeout=120).status == DocumentVersion.Status.READY
    assert version.chunk_count == 1


_UPLOAD_IN_ANOTHER_PROCESS = """
import django, sys
from pathlib import Path
django.setup()
from kb.accounts.models import User
from kb.documents.models import Collection
from kb.documents.services import document_upload
path = Path(sys.argv[3])
version = document_upload(acting_user=User.objects.get(pk=int(sys.argv[1])),
                          collection=Collection.objects.get(pk=int(sys.argv[2])),
                          name=path.name, data=path.read_bytes())
print(version.pk)
"""


def _upload_in_app_process(environment: dict[str, str], *, user, collection, path: Path) -> DocumentVersion:
    """Upload from a process configured like the app's (its broker URL included), as a deployment would."""
    uploaded = subprocess.run(
        [sys.executable, "-c", _UPLOAD_IN_ANOTHER_PROCESS, str(user.pk), str(collection.pk), str(path)],
        cwd=PROJECT_ROOT,
        env=environment,
        capture_output=True,
        text=True,
        check=True,
    )
    return DocumentVersion.objects.get(pk=int(uploaded.stdout.strip().splitlines()[-1]))


def test_redis_broker_carries_ingestion_when_configured(tmp_path):
    try:
        socket.create_connection(("127.0.0.1", 6379), timeout=1).close()
    except OSError:
        pytest.skip("no Redis server on 127.0.0.1:6379 (Redis is optional; the embedded broker is the default)")
    _ingested_through_a_worker(tmp_path, broker_url=REDIS_URL)


def test_with_a_database_url_and_no_broker_url_the_database_s_postgresql_carries_ingestion(tmp_path):
    _ingested_through_a_worker(tmp_path, broker_url="")  # as a deployment that sets DATABASE_URL alone

    assert "kombu_queue" in connection.introspection.table_names()  # kombu's own tables, beside the app's


def _ingested_through_a_worker(tmp_path: Path, *, broker_url: str) -> None:
    department = make_department()
    admin = make_user(department=department, admin=True)
    collection = make_collection(owner=department)
    # Both the uploading process and the worker get CELERY_BROKER_URL, as a deployment would.
    environment = app_process_environment(
        database_url=database_url_for_app_processes(), broker_url=broker_url, media_root=tmp_path / "media"
    )
    worker = start_worker(environment, tmp_path / "worker.log")
    note = tmp_path / "leave.md"
    note.write_bytes(b"# Leave\nAnnual leave is 25 days.")
    try:
        version = _upload_in_app_process(environment, user=admin, collection=collection, path=note)
        assert _wait_until_finished(version, timeout=120).status == DocumentVersion.Status.READY
    finally:
        stop_processes(worker)


def _wait_for(condition, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


def _upload_and_wait_until_embedding(environment: dict[str, str], *, user, collection, path: Path) -> DocumentVersion:
    """Upload, then wait until the worker has embedded part of the document (the moment to break something)."""
    version = _upload_in_app_process(environment, user=user, collection=collection, path=path)

    def embedding_under_way():
        version.refresh_from_db()
        return version.status == DocumentVersion.Status.EMBEDDING and version.progress_done > 0

    _wait_for(embedding_under_way, timeout=120, what="the worker to be embedding")
    return version


def test_a_worker_killed_mid_document_leaves_nothing_half_indexed_and_the_job_reruns(tmp_path, python_docs):
    department = make_department()
    admin = make_user(department=department, admin=True)
    collection = make_collection(owner=department)
    environment = app_process_environment(
        database_url=database_url_for_app_processes(),
        broker_url=fresh_broker("kb_test_crash_broker"),
        media_root=tmp_path / "media",
    )
    # Small embedding batches report progress often; a short stall limit lets the replacement worker act at once.
    environment.update({"KB_EMBEDDING_BATCH_SIZE": "4", "KB_INGEST_STALL_SECONDS": "2"})
    first_worker = start_worker(environment, tmp_path / "first-worker.log")
    try:
        version = _upload_and_wait_until_embedding(
            environment, user=admin, collection=collection, path=python_docs / "faq" / "programming.html"
        )
        first_worker.send_signal(signal.SIGKILL)
        first_worker.wait(timeout=10)
    finally:
        stop_processes(first_worker)

    version.refresh_from_db()
    assert version.status == DocumentVersion.Status.EMBEDDING and version.progress_done < version.progress_total
    assert not Chunk.objects.filter(version=version).exists()
    assert Document.objects.get(pk=version.document_id).current_version is None
    time.sleep(2.5)  # the dead worker's heartbeat ages past the stall limit

    second_worker = start_worker(environment, tmp_path / "second-worker.log")
    try:
        finished = _wait_until_finished(version, timeout=180)
    finally:
        stop_processes(second_worker)

    assert finished.status == DocumentVersion.Status.READY and finished.attempts == 2
    ordinals = list(Chunk.objects.filter(version=version).values_list("ordinal", flat=True))
    assert sorted(ordinals) == list(range(finished.chunk_count)) and finished.chunk_count > 50
    assert Document.objects.get(pk=version.document_id).current_version_id == version.pk
    assert AuditEvent.objects.filter(kind=AuditEvent.Kind.DOCUMENT_REQUEUED, subject_id=str(version.pk)).exists()


def test_a_dropped_database_connection_mid_document_is_retried_and_the_document_completes(tmp_path, python_docs):
    department = make_department()
    admin = make_user(department=department, admin=True)
    collection = make_collection(owner=department)
    worker_name = "kb-transient-test-worker"
    environment = app_process_environment(
        database_url=f"{database_url_for_app_processes()}&application_name={worker_name}",
        broker_url=fresh_broker("kb_test_transient_broker"),
        media_root=tmp_path / "media",
    )
    environment["KB_EMBEDDING_BATCH_SIZE"] = "4"
    worker = start_worker(environment, tmp_path / "worker.log")
    try:
        version = _upload_and_wait_until_embedding(
            environment, user=admin, collection=collection, path=python_docs / "faq" / "programming.html"
        )
        with connection.cursor() as cursor:
            # What a database restart or a network cut does to the worker's session.
            cursor.execute(
                "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE application_name = %s",
                [worker_name],
            )
            assert cursor.fetchone()[0] >= 1
        finished = _wait_until_finished(version, timeout=180)
    finally:
        stop_processes(worker)

    assert finished.status == DocumentVersion.Status.READY, finished.failure_reason
    assert finished.attempts == 2
    assert Chunk.objects.filter(version=version).count() == finished.chunk_count
    assert "Retry in" in (tmp_path / "worker.log").read_text()


def test_the_jobs_services_queue_by_name_are_tasks_the_worker_knows():
    from kb.celery import app
    from kb.documents.jobs import INGEST_DOCUMENT_VERSION, REEMBED_CHUNKS

    app.loader.import_default_modules()  # what a worker imports at start: every app's tasks module
    assert {INGEST_DOCUMENT_VERSION, REEMBED_CHUNKS} <= set(app.tasks)
