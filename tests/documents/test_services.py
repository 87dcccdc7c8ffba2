from datetime import timedelta

import pytest
from django.core.exceptions import PermissionDenied
from django.db import DatabaseError, connection
from django.utils import timezone

from kb.audit.models import AuditEvent
from kb.documents.models import Chunk, Collection, Document, DocumentVersion
from kb.documents.services import (
    UploadRejected,
    collection_delete,
    document_delete,
    document_version_ingest,
    document_version_retry,
    document_versions_requeue_stalled,
)
from tests.factories import ingested_document, make_collection, make_department, make_user, upload

pytestmark = pytest.mark.django_db


@pytest.fixture
def department():
    return make_department("Finance")


@pytest.fixture
def collection(department):
    return make_collection(owner=department)


@pytest.fixture
def admin(department):
    return make_user(department=department, admin=True)


def _searchable_texts(document: Document) -> set[str]:
    return set(Chunk.objects.filter(document=document, version=document.current_version).values_list("text", flat=True))


def test_only_admins_of_the_owning_department_may_upload(department, collection):
    member = make_user(department=department)
    admin_elsewhere = make_user(department=make_department(), admin=True)

    for user in (member, admin_elsewhere):
        with pytest.raises(PermissionDenied):
            upload(user=user, collection=collection, name="a.txt", content=b"hello")
    assert not Document.objects.exists()


def test_upload_is_queued_and_audited_in_the_same_transaction(collection, admin, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks() as jobs:
        version = upload(user=admin, collection=collection, name="travel.md", content=b"# Travel\nBook early.")

    assert version.status == DocumentVersion.Status.QUEUED and version.number == 1
    assert version.file.read() == b"# Travel\nBook early."
    assert len(jobs) == 1  # the ingestion job is sent only once the upload has committed
    event = AuditEvent.objects.get(kind=AuditEvent.Kind.DOCUMENT_UPLOADED)
    assert event.actor == admin and event.subject_id == str(version.pk)
    assert event.after["sha256"] == version.content_hash


def test_an_upload_its_caller_ingests_itself_queues_no_job(collection, admin, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks() as jobs:
        version = upload(user=admin, collection=collection, name="travel.md", content=b"# Travel", enqueue=False)

    assert jobs == [] and version.status == DocumentVersion.Status.QUEUED
    assert AuditEvent.objects.filter(kind=AuditEvent.Kind.DOCUMENT_UPLOADED, subject_id=str(version.pk)).exists()


@pytest.mark.parametrize(
    ("name", "content", "reason"),
    [
        ("empty.txt", b"", "the file is empty"),
        ("setup.exe", b"MZ\x90\x00", "not supported"),
        ("notes\x00.txt", b"words", "characters that cannot be shown"),
        ("notes\ud800.txt", b"words", "characters that cannot be shown"),
    ],
)
def test_unacceptable_uploads_are_refused_with_their_reason(collection, admin, name, content, reason):
    with pytest.raises(UploadRejected, match=reason):
        upload(user=admin, collection=collection, name=name, content=content)


def test_files_over_the_size_limit_are_refused(settings, collection, admin):
    settings.KB_UPLOAD_MAX_BYTES = 10
    with pytest.raises(UploadRejected, match="over the limit of 10 bytes"):
        upload(user=admin, collection=collection, name="big.txt", content=b"x" * 11)


def test_identical_reupload_is_a_no_op_with_a_clear_message(collection, admin):
    upload(user=admin, collection=collection, name="a.txt", content=b"same words")

    for name in ("a.txt", "copy-of-a.txt"):
        with pytest.raises(UploadRejected, match="unchanged — identical content is already in .* as 'a.txt'"):
            upload(user=admin, collection=collection, name=name, content=b"same words")
    assert DocumentVersion.objects.count() == 1


def test_an_upload_the_database_refuses_leaves_no_file_behind(settings, collection, admin):
    with connection.cursor() as cursor:  # a failure after the file is written, as a full disk or a lost server gives
        cursor.execute(
            "CREATE FUNCTION refuse_versions() RETURNS trigger LANGUAGE plpgsql AS "
            "$$ BEGIN RAISE EXCEPTION 'no room for versions'; END $$"
        )
        cursor.execute(
            "CREATE TRIGGER refuse_versions BEFORE INSERT ON documents_documentversion "
            "FOR EACH ROW EXECUTE FUNCTION refuse_versions()"
        )

    with pytest.raises(DatabaseError, match="no room for versions"):
        upload(user=admin, collection=collection, name="travel.md", content=b"# Travel\nBook early.")

    assert not DocumentVersion.objects.exists()
    assert not (settings.MEDIA_ROOT / "collections").exists()


def test_ingest_stores_embedded_chunks_and_serves_the_version(collection, python_docs):
    document = ingested_document(
        collection=collection, name="general.html", content=(python_docs / "faq" / "general.html").read_bytes()
    )

    version = document.current_version
    assert version.status == DocumentVersion.Status.READY
    assert document.title == "General Python FAQ"
    chunks = list(Chunk.objects.filter(version=version))
    assert version.chunk_count == len(chunks) == version.progress_done == version.progress_total > 10
    assert all(len(chunk.embedding) == 384 for chunk in chunks)
    assert abs(sum(x * x for x in chunks[0].embedding) - 1.0) < 1e-3
    assert AuditEvent.objects.filter(kind=AuditEvent.Kind.DOCUMENT_INGESTED, subject_id=str(version.pk)).exists()


def test_changed_file_becomes_a_new_version_that_replaces_the_old_chunks(collection, admin):
    document = ingested_document(
        collection=collection, name="policy.md", content=b"# Expenses\nClaims close on the 5th of each month."
    )
    first = document.current_version

    second = upload(
        user=admin,
        collection=collection,
        name="policy.md",
        content=b"# Expenses\nClaims close on the 10th of each month.",
    )
    assert second.document_id == document.pk and second.number == 2
    # Until the new version is ready, the old one keeps serving.
    assert _searchable_texts(document) == {"# Expenses\nClaims close on the 5th of each month."}

    document_version_ingest(version_id=second.pk)

    document.refresh_from_db()
    assert document.current_version == second
    assert _searchable_texts(document) == {"# Expenses\nClaims close on the 10th of each month."}
    assert not Chunk.objects.filter(version=first).exists()


def test_an_older_version_finishing_late_does_not_replace_the_newer_one(collection, admin):
    older = upload(user=admin, collection=collection, name="policy.md", content=b"Old rule.")
    newer = upload(user=admin, collection=collection, name="policy.md", content=b"New rule.")

    document_version_ingest(version_id=newer.pk)
    document_version_ingest(version_id=older.pk)

    document = Document.objects.get()
    assert document.current_version == newer
    assert _searchable_texts(document) == {"New rule."}


def test_running_ingest_again_replaces_chunks_without_duplicates(collection):
    document = ingested_document(collection=collection, name="a.md", content=b"# A\n" + b"Some policy text. " * 200)
    first_ids = set(document.chunks.values_list("id", flat=True))

    document_version_ingest(version_id=document.current_version_id)

    chunks = Chunk.objects.filter(document=document)
    assert chunks.count() == len(first_ids)
    assert set(chunks.values_list("id", flat=True)).isdisjoint(first_ids)
    assert sorted(chunks.values_list("ordinal", flat=True)) == list(range(len(first_ids)))


@pytest.mark.parametrize(
    ("name", "content"),
    [
        # A log that a crash padded with NULs, as syslog files often are, and went on after the restart.
        (
            "auth.log",
            b"".join(
                b"Mar  3 10:%02d:00 web1 sshd[812]: Failed password for root from 192.0.2.7 port 22\n" % (n % 60)
                for n in range(200)
            )
            + b"\x00" * 512
            + b"Mar  3 11:00:00 web1 sshd[901]: Accepted password for alice from 192.0.2.8 port 22\n",
        ),
        (
            "notes.md",
            b"# Notes\n" + b"Expense claims close on the 5th. " * 300 + b"\n## Late\x00 claims\nAsk finance.\n",
        ),
    ],
    ids=["log padded after a crash", "markdown heading"],
)
def test_a_nul_past_the_binary_check_is_read_as_a_space_and_the_file_ingested(collection, name, content):
    assert b"\x00" not in content[:8192]

    document = ingested_document(collection=collection, name=name, content=content)

    assert document.current_version.status == DocumentVersion.Status.READY
    chunks = Chunk.objects.filter(document=document)
    assert chunks.exists() and not any("\x00" in chunk.text + chunk.heading for chunk in chunks)
    assert any(word in chunk.text for chunk in chunks for word in ("alice", "Ask finance"))


def test_a_corrupt_file_fails_alone_with_its_reason_and_can_be_retried(collection, admin):
    broken = upload(user=admin, collection=collection, name="broken.txt", content=b"\xff\xfe\x00\x01binary\x00")
    fine = upload(user=admin, collection=collection, name="fine.txt", content=b"Expense claims close on the 5th.")

    document_version_ingest(version_id=broken.pk)
    document_version_ingest(version_id=fine.pk)

    broken.refresh_from_db()
    fine.refresh_from_db()
    assert broken.status == DocumentVersion.Status.FAILED
    assert "binary" in broken.failure_reason
    assert not Chunk.objects.filter(version=broken).exists()
    assert fine.status == DocumentVersion.Status.READY

    retried = document_version_retry(acting_user=admin, version=broken)
    assert retried.status == DocumentVersion.Status.QUEUED and retried.failure_reason == ""
    with pytest.raises(UploadRejected, match="has not failed"):
        document_version_retry(acting_user=admin, version=fine)


def test_deleting_a_document_removes_its_versions_and_vectors_at_once(collection, admin):
    document = ingested_document(collection=collection, name="a.md", content=b"# A\nAlpha text.")
    upload(user=admin, collection=collection, name="a.md", content=b"# A\nAlpha text, revised.")

    document_delete(acting_user=admin, document=document)

    assert not Document.objects.exists()
    assert not DocumentVersion.objects.exists()
    assert not Chunk.objects.exists()
    event = AuditEvent.objects.get(kind=AuditEvent.Kind.DOCUMENT_DELETED)
    assert event.before == {"title": "A", "collection": collection.pk, "versions": 2, "chunks": 1}


def test_deleting_a_collection_removes_everything_in_it(collection, admin):
    ingested_document(collection=collection, name="a.md", content=b"# A\nAlpha text.")
    member = make_user(department=collection.owner)
    with pytest.raises(PermissionDenied):
        collection_delete(acting_user=member, collection=collection)

    collection_delete(acting_user=admin, collection=collection)

    assert not Collection.objects.exists() and not Chunk.objects.exists()
    assert AuditEvent.objects.filter(kind=AuditEvent.Kind.COLLECTION_DELETED).exists()


def test_versions_whose_worker_went_silent_are_queued_again(
    collection, admin, settings, django_capture_on_commit_callbacks
):
    settings.KB_INGEST_STALL_SECONDS = 60
    silent = upload(user=admin, collection=collection, name="a.md", content=b"Alpha.")
    busy = upload(user=admin, collection=collection, name="b.md", content=b"Beta.")
    DocumentVersion.objects.filter(pk=silent.pk).update(
        status=DocumentVersion.Status.EMBEDDING, heartbeat_at=timezone.now() - timedelta(seconds=61)
    )
    DocumentVersion.objects.filter(pk=busy.pk).update(
        status=DocumentVersion.Status.EMBEDDING, heartbeat_at=timezone.now() - timedelta(seconds=5)
    )

    with django_capture_on_commit_callbacks() as jobs:
        requeued = document_versions_requeue_stalled()

    assert requeued == [silent.pk] and len(jobs) == 1
    silent.refresh_from_db()
    assert silent.status == DocumentVersion.Status.QUEUED
    assert AuditEvent.objects.filter(kind=AuditEvent.Kind.DOCUMENT_REQUEUED, subject_id=str(silent.pk)).exists()
