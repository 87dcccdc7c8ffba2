import hashlib
import logging
from pathlib import Path

from django.conf import settings
from django.core.exceptions import PermissionDenied
from django.core.files.base import ContentFile
from django.core.files.uploadedfile import UploadedFile
from django.db import transaction

from kb.accounts.models import Department, User
from kb.audit.models import AuditEvent
from kb.audit.services import audit_record
from kb.documents.chunking import chunk_document
from kb.documents.models import Chunk, Collection, Document
from kb.documents.parsing import DocumentRejected, file_kind, parse_document
from kb.documents.selectors import collections_manageable_by
from kb.search.embeddings import embed_passages, embedding_tokenizer

logger = logging.getLogger(__name__)


class UploadRejected(ValueError):
    """The upload of one file was refused; the message says why and is shown to the admin."""


@transaction.atomic
def collection_create(
    *,
    acting_user: User | None,
    name: str,
    owner: Department,
    visibility: Collection.Visibility = Collection.Visibility.DEPARTMENT,
) -> Collection:
    collection = Collection(name=name, owner=owner, visibility=visibility, created_by=acting_user)
    collection.full_clean()
    collection.save()
    audit_record(
        actor=acting_user,
        kind=AuditEvent.Kind.COLLECTION_CREATED,
        subject=collection,
        after={"name": name, "owner": owner.pk, "visibility": visibility},
    )
    return collection


@transaction.atomic
def document_upload(*, acting_user: User, collection: Collection, upload: UploadedFile) -> Document:
    if not collections_manageable_by(user=acting_user).filter(pk=collection.pk).exists():
        raise PermissionDenied(f"you may not upload into {collection.name}")
    filename = Path(upload.name or "").name
    try:
        file_kind(filename)
    except DocumentRejected as error:
        raise UploadRejected(f"{filename}: {error}") from error
    if upload.size > settings.KB_UPLOAD_MAX_BYTES:
        raise UploadRejected(
            f"{filename}: {upload.size:,} bytes is over the limit of {settings.KB_UPLOAD_MAX_BYTES:,} bytes"
        )
    data = b"".join(upload.chunks())
    if not data.strip():
        raise UploadRejected(f"{filename}: the file is empty")
    content_hash = hashlib.sha256(data).hexdigest()
    existing = Document.objects.filter(collection=collection, content_hash=content_hash).first()
    if existing:
        raise UploadRejected(f"{filename}: identical content is already in {collection.name} as '{existing.title}'")

    document = Document(
        collection=collection,
        title=Path(filename).stem,
        original_name=filename,
        content_hash=content_hash,
        size_bytes=len(data),
        uploaded_by=acting_user,
    )
    document.file.save(filename, ContentFile(data), save=False)
    document.full_clean()
    document.save()
    audit_record(
        actor=acting_user,
        kind=AuditEvent.Kind.DOCUMENT_UPLOADED,
        subject=document,
        after={"collection": collection.pk, "filename": filename, "sha256": content_hash, "bytes": len(data)},
    )
    from kb.documents.tasks import ingest_document

    transaction.on_commit(lambda: ingest_document.delay(document.pk))
    return document


def _document_set_status(*, document_id: int, status: Document.Status) -> None:
    Document.objects.filter(pk=document_id).update(status=status, failure_reason="")


def document_ingest(*, document_id: int) -> None:
    """Parse, chunk and embed one document, then swap its chunks in one transaction (re-runs are harmless)."""
    document = Document.objects.get(pk=document_id)
    try:
        _document_set_status(document_id=document_id, status=Document.Status.PARSING)
        with document.file.open("rb") as stored:
            parsed = parse_document(data=stored.read(), filename=document.original_name)
        drafts = chunk_document(
            document=parsed,
            tokenizer=embedding_tokenizer(),
            max_tokens=settings.KB_CHUNK_TOKENS,
            overlap_tokens=settings.KB_CHUNK_OVERLAP_TOKENS,
        )
        _document_set_status(document_id=document_id, status=Document.Status.EMBEDDING)
        vectors = embed_passages([f"{draft.heading}\n{draft.text}" for draft in drafts])
    except DocumentRejected as error:
        document_mark_failed(document_id=document_id, reason=str(error))
        return
    except Exception as error:
        document_mark_failed(document_id=document_id, reason=f"internal error while ingesting: {error}")
        raise
    _document_replace_chunks(document_id=document_id, title=parsed.title, drafts=drafts, vectors=vectors)


@transaction.atomic
def _document_replace_chunks(*, document_id: int, title: str, drafts, vectors) -> None:
    document = Document.objects.select_for_update().get(pk=document_id)
    Chunk.objects.filter(document=document).delete()
    Chunk.objects.bulk_create(
        Chunk(
            document=document,
            ordinal=ordinal,
            heading=draft.heading[:500],
            text=draft.text,
            char_start=draft.char_start,
            char_end=draft.char_end,
            token_count=draft.token_count,
            embedding=vector,
        )
        for ordinal, (draft, vector) in enumerate(zip(drafts, vectors, strict=True))
    )
    before = {"status": document.status, "chunks": document.chunk_count}
    document.title = title[:300]
    document.status = Document.Status.READY
    document.failure_reason = ""
    document.chunk_count = len(drafts)
    document.save(update_fields=["title", "status", "failure_reason", "chunk_count", "updated_at"])
    audit_record(
        actor=None,
        kind=AuditEvent.Kind.DOCUMENT_INGESTED,
        subject=document,
        before=before,
        after={"status": document.status, "chunks": len(drafts)},
    )


@transaction.atomic
def document_mark_failed(*, document_id: int, reason: str) -> None:
    document = Document.objects.select_for_update().get(pk=document_id)
    before = {"status": document.status}
    document.status = Document.Status.FAILED
    document.failure_reason = reason
    document.save(update_fields=["status", "failure_reason", "updated_at"])
    logger.warning("document %s failed: %s", document_id, reason)
    audit_record(
        actor=None, kind=AuditEvent.Kind.DOCUMENT_FAILED, subject=document, before=before, after={"reason": reason}
    )
