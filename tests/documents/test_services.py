import pytest
from django.core.exceptions import PermissionDenied

from kb.audit.models import AuditEvent
from kb.documents.models import Chunk, Document
from kb.documents.services import UploadRejected, document_ingest
from tests.factories import ingested_document, make_collection, make_department, make_user, upload

pytestmark = pytest.mark.django_db


@pytest.fixture
def department():
    return make_department("Finance")


@pytest.fixture
def collection(department):
    return make_collection(owner=department)


def test_only_admins_of_the_owning_department_may_upload(department, collection):
    member = make_user(department=department)
    admin_elsewhere = make_user(department=make_department(), admin=True)

    for user in (member, admin_elsewhere):
        with pytest.raises(PermissionDenied):
            upload(user=user, collection=collection, name="a.txt", content=b"hello")
    assert not Document.objects.exists()


def test_upload_is_queued_and_audited_in_the_same_transaction(department, collection):
    admin = make_user(department=department, admin=True)

    document = upload(user=admin, collection=collection, name="travel.md", content=b"# Travel\nBook early.")

    assert document.status == Document.Status.QUEUED
    assert document.file.read() == b"# Travel\nBook early."
    event = AuditEvent.objects.get(kind=AuditEvent.Kind.DOCUMENT_UPLOADED)
    assert event.actor == admin and event.subject_id == str(document.pk)
    assert event.after["sha256"] == document.content_hash


@pytest.mark.parametrize(
    ("name", "content", "reason"),
    [
        ("empty.txt", b"", "the file is empty"),
        ("slides.pptx", b"PK\x03\x04", "not supported yet"),
    ],
)
def test_unacceptable_uploads_are_refused_with_their_reason(department, collection, name, content, reason):
    admin = make_user(department=department, admin=True)
    with pytest.raises(UploadRejected, match=reason):
        upload(user=admin, collection=collection, name=name, content=content)


def test_files_over_the_size_limit_are_refused(settings, department, collection):
    settings.KB_UPLOAD_MAX_BYTES = 10
    admin = make_user(department=department, admin=True)
    with pytest.raises(UploadRejected, match="over the limit of 10 bytes"):
        upload(user=admin, collection=collection, name="big.txt", content=b"x" * 11)


def test_identical_reupload_is_a_no_op_with_a_clear_message(department, collection):
    admin = make_user(department=department, admin=True)
    upload(user=admin, collection=collection, name="a.txt", content=b"same words")

    with pytest.raises(UploadRejected, match="identical content is already in"):
        upload(user=admin, collection=collection, name="copy-of-a.txt", content=b"same words")
    assert Document.objects.count() == 1


def test_ingest_stores_embedded_chunks_and_marks_the_document_ready(collection, python_docs):
    document = ingested_document(
        collection=collection, name="general.html", content=(python_docs / "faq" / "general.html").read_bytes()
    )

    assert document.status == Document.Status.READY
    assert document.title == "General Python FAQ"
    chunks = list(Chunk.objects.filter(document=document))
    assert document.chunk_count == len(chunks) > 10
    assert all(len(chunk.embedding) == 384 for chunk in chunks)
    assert abs(sum(x * x for x in chunks[0].embedding) - 1.0) < 1e-3
    assert AuditEvent.objects.filter(kind=AuditEvent.Kind.DOCUMENT_INGESTED, subject_id=str(document.pk)).exists()


def test_running_ingest_again_replaces_chunks_without_duplicates(collection):
    document = ingested_document(collection=collection, name="a.md", content=b"# A\n" + b"Some policy text. " * 200)
    first_ids = set(Chunk.objects.filter(document=document).values_list("id", flat=True))

    document_ingest(document_id=document.pk)

    chunks = Chunk.objects.filter(document=document)
    assert chunks.count() == len(first_ids)
    assert set(chunks.values_list("id", flat=True)).isdisjoint(first_ids)
    assert sorted(chunks.values_list("ordinal", flat=True)) == list(range(len(first_ids)))


def test_a_corrupt_file_fails_alone_with_its_reason(department, collection):
    admin = make_user(department=department, admin=True)
    broken = upload(user=admin, collection=collection, name="broken.txt", content=b"\xff\xfe\x00\x01binary\x00")
    fine = upload(user=admin, collection=collection, name="fine.txt", content=b"Expense claims close on the 5th.")

    document_ingest(document_id=broken.pk)
    document_ingest(document_id=fine.pk)

    broken.refresh_from_db()
    fine.refresh_from_db()
    assert broken.status == Document.Status.FAILED
    assert "binary" in broken.failure_reason
    assert not Chunk.objects.filter(document=broken).exists()
    assert fine.status == Document.Status.READY
