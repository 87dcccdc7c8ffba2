import hashlib
import logging
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path, PurePosixPath

import numpy as np
from django.conf import settings
from django.core.exceptions import PermissionDenied
from django.core.files.base import ContentFile
from django.core.files import File
from django.db import InterfaceError, OperationalError, transaction
from django.db.models import Max
from django.utils import timezone

from extract.archives import ArchiveLimits, ArchiveProblem, archive_members
from extract.chunking import ChunkDraft, chunk_document, chunk_log
from extract.formats import file_kind, is_archive, is_email
from extract.mail import extract_email_attachments
from extract.parsing import parse_document
from extract.types import DocumentRejected, ParsedDocument
from kb.accounts.models import Department, User
from kb.accounts.selectors import departments_administered_by
from kb.audit.models import AuditEvent
from kb.audit.services import audit_record
from kb.documents.embedding_models import (chunking_tokenizer, passages_embed_for_active_model,
                                            passages_embed_for_incoming_model)
from kb.documents.jobs import INGEST_DOCUMENT_VERSION, job_enqueue_on_commit
from kb.documents.models import Chunk, Collection, CollectionGrant, Document, DocumentVersion, UploadBatch
from kb.documents.selectors import collections_manageable_by
from kb.platform.actors import system_actor

logger = logging.getLogger(__name__)


# Errors worth another attempt later (the database restarting, a dropped connection); the task retries these.
TRANSIENT_ERRORS = (OperationalError, InterfaceError)


class UploadRejected(ValueError):
    """The upload of one file was refused; the message says why and is shown to the admin."""


def _require_manager(user: User, collection: Collection) -> None:
    if not collections_manageable_by(user=user).filter(pk=collection.pk).exists():
        raise PermissionDenied(f"you may not change {collection.name}")


def _enqueue_ingest(version_id: int) -> None:
    job_enqueue_on_commit(INGEST_DOCUMENT_VERSION, version_id)


@transaction.atomic
def collection_create(
    *,
    acting_user: User,
    name: str,
    owner: Department,
    visibility: Collection.Visibility = Collection.Visibility.DEPARTMENT,
) -> Collection:
    if not departments_administered_by(user=acting_user).filter(pk=owner.pk).exists():
        raise PermissionDenied(f"you do not administer {owner.name}")
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
def grant_create(
    *, acting_user: User, collection: Collection, department: Department | None = None, user: User | None = None
) -> CollectionGrant:
    _require_manager(acting_user, collection)
    grant = CollectionGrant(collection=collection, department=department, user=user, granted_by=acting_user)
    grant.full_clean()
    grant.save()
    audit_record(actor=acting_user, kind=AuditEvent.Kind.GRANT_CREATED, subject=grant,
                 after={"collection": collection.pk, "department": getattr(department, "pk", None),
                        "user": getattr(user, "pk", None)})
    return grant


@transaction.atomic
def collection_visibility_change(
    *, acting_user: User, collection: Collection, visibility: Collection.Visibility
) -> Collection:
    """Company-wide or department-only; like a revoked grant, narrowing takes effect on the next query."""
    _require_manager(acting_user, collection)
    before = {"visibility": collection.visibility}
    collection.visibility = visibility
    collection.full_clean()
    collection.save(update_fields=["visibility"])
    audit_record(actor=acting_user, kind=AuditEvent.Kind.COLLECTION_VISIBILITY_CHANGED, subject=collection,
                 before=before, after={"visibility": visibility})
    return collection


@transaction.atomic
def grant_revoke(*, acting_user: User, grant: CollectionGrant) -> None:
    """Takes effect on the very next query: permissions are read in the SQL of every search, never cached."""
    _require_manager(acting_user, grant.collection)
    audit_record(actor=acting_user, kind=AuditEvent.Kind.GRANT_REVOKED, subject=grant,
                 before={"collection": grant.collection_id, "department": grant.department_id,
                         "user": grant.user_id, "granted_by": grant.granted_by_id,
                         "granted_at": grant.created_at.isoformat()})
    grant.delete()


@transaction.atomic
def collection_delete(*, acting_user: User, collection: Collection) -> None:
    """Remove a collection with its documents, chunks and vectors in one transaction; files go after commit."""
    _require_manager(acting_user, collection)
    versions = DocumentVersion.objects.filter(document__collection=collection)
    before = {"name": collection.name, "documents": collection.documents.count(),
              "chunks": Chunk.objects.filter(document__collection=collection).count()}
    _delete_files_after_commit(list(versions.values_list("file", flat=True)))
    audit_record(actor=acting_user, kind=AuditEvent.Kind.COLLECTION_DELETED, subject=collection, before=before)
    collection.delete()


@dataclass
class UploadBatchResult:
    batch: UploadBatch
    accepted: list[DocumentVersion] = field(default_factory=list)
    rejected: list[str] = field(default_factory=list)


def _archive_limits() -> ArchiveLimits:
    return ArchiveLimits(
        max_total_bytes=settings.KB_ARCHIVE_MAX_TOTAL_BYTES,
        max_member_bytes=settings.KB_UPLOAD_MAX_BYTES,
        max_ratio=settings.KB_ARCHIVE_MAX_RATIO,
        max_members=settings.KB_ARCHIVE_MAX_FILES,
    )


def upload_batch(*, acting_user: User, collection: Collection, files: Iterable[File]) -> UploadBatchResult:
    """Add many files (ZIP archives expanded); each file stands or fails alone with its reason."""
    _require_manager(acting_user, collection)
    result = UploadBatchResult(batch=UploadBatch.objects.create(collection=collection, created_by=acting_user))

    def add(name: str, data: bytes) -> None:
        try:
            result.accepted.append(document_upload(acting_user=acting_user, collection=collection, name=name,
                                                   data=data, batch=result.batch))
        except UploadRejected as error:
            result.rejected.append(str(error))

    for file in files:
        name = Path(file.name or "").name
        if file.size > settings.KB_UPLOAD_MAX_BYTES:
            result.rejected.append(
                f"{name}: {file.size:,} bytes is over the limit of {settings.KB_UPLOAD_MAX_BYTES:,} bytes")
            continue
        data = b"".join(file.chunks())
        if is_email(name):
            add(name, data)
            # Attachments become documents of their own, named under the mail they came with.
            for attachment_name, attachment in extract_email_attachments(data):
                add(f"{name}/{attachment_name}", attachment)
            continue
        if not is_archive(name):
            add(name, data)
            continue
        for item in archive_members(archive_name=name, data=data, limits=_archive_limits()):
            if isinstance(item, ArchiveProblem):
                result.rejected.append(f"{item.name}: {item.reason}")
            else:
                add(item.name, item.data)
    _upload_batch_close(acting_user=acting_user, result=result)
    return result


@transaction.atomic
def _upload_batch_close(*, acting_user: User, result: UploadBatchResult) -> None:
    result.batch.rejected = result.rejected
    result.batch.save(update_fields=["rejected"])
    audit_record(actor=acting_user, kind=AuditEvent.Kind.BATCH_UPLOADED, subject=result.batch,
                 after={"collection": result.batch.collection_id, "accepted": [v.pk for v in result.accepted],
                        "rejected": result.rejected})


@transaction.atomic
def document_upload(
    *, acting_user: User, collection: Collection, name: str, data: bytes, batch: UploadBatch | None = None
) -> DocumentVersion:
    """Add a file to a collection: a new document, or a new version of the document of that name."""
    _require_manager(acting_user, collection)
    filename = name[-255:]
    try:
        file_kind(filename)
    except DocumentRejected as error:
        raise UploadRejected(f"{filename}: {error}") from error
    if len(data) > settings.KB_UPLOAD_MAX_BYTES:
        raise UploadRejected(
            f"{filename}: {len(data):,} bytes is over the limit of {settings.KB_UPLOAD_MAX_BYTES:,} bytes"
        )
    if not data.strip():
        raise UploadRejected(f"{filename}: the file is empty")
    content_hash = hashlib.sha256(data).hexdigest()
    same_content = DocumentVersion.objects.filter(document__collection=collection, content_hash=content_hash)
    if duplicate := same_content.select_related("document").first():
        raise UploadRejected(
            f"{filename}: unchanged — identical content is already in {collection.name} as "
            f"'{duplicate.document.original_name}' (version {duplicate.number}); nothing was added"
        )

    document, created = Document.objects.select_for_update().get_or_create(
        collection=collection, original_name=filename, defaults={"title": PurePosixPath(filename).stem}
    )
    number = (document.versions.aggregate(Max("number"))["number__max"] or 0) + 1
    version = DocumentVersion(document=document, batch=batch, number=number, content_hash=content_hash,
                              size_bytes=len(data), uploaded_by=acting_user)
    version.file.save(_stored_name(filename), ContentFile(data), save=False)
    version.full_clean()
    version.save()
    audit_record(
        actor=acting_user,
        kind=AuditEvent.Kind.DOCUMENT_UPLOADED,
        subject=version,
        after={"collection": collection.pk, "document": document.pk, "version": number, "filename": filename,
               "sha256": content_hash, "bytes": len(data)},
    )
    _enqueue_ingest(version.pk)
    return version


@transaction.atomic
def document_move(*, acting_user: User, document: Document, to_collection: Collection) -> Document:
    """Its readers change with it at once: chunks reach readers only through their document's collection."""
    _require_manager(acting_user, document.collection)
    _require_manager(acting_user, to_collection)
    if to_collection.documents.filter(original_name=document.original_name).exists():
        raise UploadRejected(f"{to_collection.name} already has a document named {document.original_name}")
    before = {"collection": document.collection_id}
    document.collection = to_collection
    document.save(update_fields=["collection"])
    document.chunks.update(collection=to_collection)
    audit_record(actor=acting_user, kind=AuditEvent.Kind.DOCUMENT_MOVED, subject=document, before=before,
                 after={"collection": to_collection.pk})
    return document


@transaction.atomic
def document_delete(*, acting_user: User, document: Document) -> None:
    """Remove a document, all its versions, chunks and vectors in one transaction; files go after commit."""
    _require_manager(acting_user, document.collection)
    versions = document.versions.all()
    before = {"title": document.title, "collection": document.collection_id,
              "versions": versions.count(), "chunks": document.chunks.count()}
    _delete_files_after_commit(list(versions.values_list("file", flat=True)))
    audit_record(actor=acting_user, kind=AuditEvent.Kind.DOCUMENT_DELETED, subject=document, before=before)
    document.delete()


def _stored_name(filename: str) -> str:
    """The file's name on disk: never the uploaded name, which may be longer in bytes than a file system allows (90
    CJK characters are 270 bytes), hold a path from inside an archive, or be reserved. The version's folder is
    already unique (collection and content hash); the document keeps its real name."""
    suffix = PurePosixPath(filename).suffix.lower()
    return "original" + (suffix if suffix[1:].isascii() and suffix[1:].isalnum() and len(suffix) <= 10 else "")


def _delete_files_after_commit(names: list[str]) -> None:
    from django.core.files.storage import FileSystemStorage, default_storage

    def delete() -> None:
        for name in names:
            default_storage.delete(name)
            if isinstance(default_storage, FileSystemStorage):  # object stores have no folders to leave behind
                _remove_empty_folders(Path(default_storage.path(name)).parent, root=Path(default_storage.location))

    transaction.on_commit(delete)


def _remove_empty_folders(folder: Path, *, root: Path) -> None:
    while folder != root and root in folder.parents:
        try:
            folder.rmdir()
        except OSError:  # not empty: another version or document still lives there
            return
        folder = folder.parent


@transaction.atomic
def document_version_retry(*, acting_user: User, version: DocumentVersion) -> DocumentVersion:
    _require_manager(acting_user, version.document.collection)
    version = DocumentVersion.objects.select_for_update().get(pk=version.pk)
    if version.status != DocumentVersion.Status.FAILED:
        raise UploadRejected(f"{version} has not failed; there is nothing to retry")
    before = {"status": version.status, "reason": version.failure_reason}
    version.status = DocumentVersion.Status.QUEUED
    version.failure_reason = ""
    version.save(update_fields=["status", "failure_reason", "updated_at"])
    audit_record(actor=acting_user, kind=AuditEvent.Kind.DOCUMENT_RETRIED, subject=version, before=before,
                 after={"status": version.status})
    _enqueue_ingest(version.pk)
    return version


def _version_update(version_id: int, **fields) -> None:
    DocumentVersion.objects.filter(pk=version_id).update(heartbeat_at=timezone.now(), updated_at=timezone.now(),
                                                         **fields)


def document_version_ingest(*, version_id: int) -> None:
    """Parse, chunk and embed one version, then make it the searchable one in a single transaction.

    Safe to run again at any point: nothing is visible until the final swap, which replaces whatever was there.
    """
    version = DocumentVersion.objects.select_related("document").filter(pk=version_id).first()
    if version is None:
        logger.info("document version %s was deleted before ingestion", version_id)
        return
    _version_update(version_id, status=DocumentVersion.Status.PARSING, failure_reason="", progress_done=0,
                    progress_total=0, attempts=version.attempts + 1)
    try:
        with version.file.open("rb") as stored:
            parsed = parse_document(data=stored.read(), filename=version.document.original_name)
        drafts = _chunk_drafts(parsed)
        _version_update(version_id, status=DocumentVersion.Status.EMBEDDING, progress_total=len(drafts))
        vectors = _embed_with_progress(version_id, drafts)
        _version_publish(version_id=version_id, title=parsed.title, drafts=drafts, vectors=vectors)
    except DocumentRejected as error:
        document_version_mark_failed(version_id=version_id, reason=str(error))
    except TRANSIENT_ERRORS:
        raise
    except Exception as error:
        document_version_mark_failed(version_id=version_id, reason=f"internal error while ingesting: {error}")
        raise


def _chunk_drafts(parsed: ParsedDocument) -> list[ChunkDraft]:
    if parsed.is_log:
        return chunk_log(text=parsed.text, log_format=parsed.log_format, title=parsed.title,
                         tokenizer=chunking_tokenizer(), max_tokens=settings.KB_CHUNK_TOKENS)
    return chunk_document(document=parsed, tokenizer=chunking_tokenizer(), max_tokens=settings.KB_CHUNK_TOKENS,
                          overlap_tokens=settings.KB_CHUNK_OVERLAP_TOKENS)


@dataclass(frozen=True)
class _Vectors:
    active: np.ndarray
    incoming: np.ndarray | None  # from the model being built to replace the active one, if any


def _embed_with_progress(version_id: int, drafts: list[ChunkDraft]) -> _Vectors:
    texts = [f"{draft.heading}\n{draft.text}" for draft in drafts]
    step = settings.KB_EMBEDDING_BATCH_SIZE * 4
    active, incoming = [], []
    for start in range(0, len(texts), step):
        active.append(passages_embed_for_active_model(texts[start:start + step]))
        incoming.append(passages_embed_for_incoming_model(texts[start:start + step]))
        _version_update(version_id, progress_done=min(start + step, len(texts)))
    if not active:
        return _Vectors(active=np.empty((0, 0)), incoming=None)
    complete = all(part is not None for part in incoming)
    return _Vectors(active=np.concatenate(active), incoming=np.concatenate(incoming) if complete else None)


def _incoming_or_none(vectors: _Vectors, count: int) -> list:
    return [None] * count if vectors.incoming is None else list(vectors.incoming)


@transaction.atomic
def _version_publish(*, version_id: int, title: str, drafts: list[ChunkDraft], vectors: _Vectors) -> None:
    version = DocumentVersion.objects.select_for_update().select_related("document").get(pk=version_id)
    document = Document.objects.select_for_update().get(pk=version.document_id)
    serving = document.current_version
    is_newest = serving is None or serving.number <= version.number
    Chunk.objects.filter(version=version).delete()
    if is_newest:
        Chunk.objects.bulk_create(
            Chunk(document=document, version=version, collection_id=document.collection_id, is_serving=True,
                  ordinal=ordinal, heading=draft.heading[:500],
                  text=draft.text, char_start=draft.char_start, char_end=draft.char_end,
                  token_count=draft.token_count, embedding=vector, embedding_next=next_vector,
                  time_start=draft.time_start,
                  time_end=draft.time_end, hosts=list(draft.hosts), programs=list(draft.programs), peers=list(draft.peers),
                  severity_counts=draft.severity_counts)
            for ordinal, (draft, vector, next_vector) in enumerate(
                zip(drafts, vectors.active, _incoming_or_none(vectors, len(drafts)), strict=True))
        )
        # The old version's chunks go in the same transaction: searches see the old set or the new, never both.
        Chunk.objects.filter(document=document).exclude(version=version).delete()
        document.current_version = version
        document.title = title[:300]
        document.save(update_fields=["current_version", "title"])
    before = {"status": version.status, "serving_version": serving.number if serving else None}
    version.status = DocumentVersion.Status.READY
    version.chunk_count = len(drafts)
    version.progress_done = version.progress_total = len(drafts)
    version.heartbeat_at = timezone.now()
    version.save(update_fields=["status", "chunk_count", "progress_done", "progress_total", "heartbeat_at",
                                "updated_at"])
    audit_record(
        actor=system_actor(),
        kind=AuditEvent.Kind.DOCUMENT_INGESTED,
        subject=version,
        before=before,
        after={"status": version.status, "chunks": len(drafts),
               "serving_version": version.number if is_newest else serving.number},
    )


@transaction.atomic
def document_version_mark_failed(*, version_id: int, reason: str) -> None:
    version = DocumentVersion.objects.select_for_update().get(pk=version_id)
    before = {"status": version.status}
    version.status = DocumentVersion.Status.FAILED
    version.failure_reason = reason
    version.save(update_fields=["status", "failure_reason", "updated_at"])
    logger.warning("document version %s failed: %s", version_id, reason)
    audit_record(actor=system_actor(), kind=AuditEvent.Kind.DOCUMENT_FAILED, subject=version, before=before,
                 after={"reason": reason})


def stalled_cutoff() -> timezone.datetime:
    return timezone.now() - timedelta(seconds=settings.KB_INGEST_STALL_SECONDS)


@transaction.atomic
def document_versions_requeue_stalled() -> list[int]:
    """Queue again the versions whose worker stopped reporting (killed, out of memory, machine restarted)."""
    stalled = list(
        DocumentVersion.objects.select_for_update(skip_locked=True)
        .filter(status__in=DocumentVersion.IN_PROGRESS, heartbeat_at__lt=stalled_cutoff())
    )
    for version in stalled:
        before = {"status": version.status, "heartbeat_at": version.heartbeat_at.isoformat()}
        version.status = DocumentVersion.Status.QUEUED
        version.save(update_fields=["status", "updated_at"])
        audit_record(actor=system_actor(), kind=AuditEvent.Kind.DOCUMENT_REQUEUED, subject=version, before=before,
                     after={"status": version.status})
        _enqueue_ingest(version.pk)
    if stalled:
        logger.warning("re-queued stalled document versions %s", [v.pk for v in stalled])
    return [version.pk for version in stalled]

