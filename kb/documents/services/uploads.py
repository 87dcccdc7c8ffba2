"""Uploads and the documents they make: batches (ZIP members and e-mail attachments included), versions,
moving and deleting documents, retrying a failed version."""

import hashlib
import logging
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

from django.conf import settings
from django.core.files import File
from django.core.files.base import ContentFile
from django.db import transaction
from django.db.models import Max

from extract.archives import ArchiveLimits, ArchiveProblem, archive_members
from extract.formats import file_kind, is_archive, is_email
from extract.mail import extract_email_attachments
from extract.types import DocumentRejected
from kb.accounts.models import User
from kb.audit.models import AuditEvent
from kb.audit.services import audit_record
from kb.documents.models import Collection, Document, DocumentVersion, UploadBatch
from kb.documents.services.collections import collection_require_manager
from kb.documents.services.files import stored_file_delete, stored_files_delete_on_commit
from kb.documents.services.ingestion import document_version_ingest_enqueue

logger = logging.getLogger(__name__)


class UploadRejected(ValueError):
    """The upload of one file was refused; the message says why and is shown to the admin."""


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
    collection_require_manager(user=acting_user, collection=collection)
    result = UploadBatchResult(batch=UploadBatch.objects.create(collection=collection, created_by=acting_user))

    def add(name: str, data: bytes) -> None:
        try:
            result.accepted.append(
                document_upload(
                    acting_user=acting_user, collection=collection, name=name, data=data, batch=result.batch
                )
            )
        except UploadRejected as error:
            result.rejected.append(str(error))

    def add_file(file: File) -> None:
        name = Path(file.name or "").name
        if file.size > settings.KB_UPLOAD_MAX_BYTES:
            result.rejected.append(
                f"{name}: {file.size:,} bytes is over the limit of {settings.KB_UPLOAD_MAX_BYTES:,} bytes"
            )
            return
        data = b"".join(file.chunks())
        if is_email(name):
            add(name, data)
            # Attachments become documents of their own, named under the mail they came with.
            try:
                attachments = extract_email_attachments(data)
            except DocumentRejected as error:
                result.rejected.append(f"{name}: attachments not added: {error}")
                attachments = []
            for attachment_name, attachment in attachments:
                add(f"{name}/{attachment_name}", attachment)
        elif not is_archive(name):
            add(name, data)
        else:
            for item in archive_members(archive_name=name, data=data, limits=_archive_limits()):
                if isinstance(item, ArchiveProblem):
                    result.rejected.append(f"{item.name}: {item.reason}")
                else:
                    add(item.name, item.data)

    for file in files:
        try:
            add_file(file)
        except Exception:  # a file that trips an unforeseen error fails alone; the rest of the upload goes on
            logger.exception("upload batch %s: %r could not be added", result.batch.pk, file.name)
            result.rejected.append(
                f"{Path(file.name or '').name}: an unexpected error stopped it (logged for the administrators)"
            )
    _upload_batch_close(acting_user=acting_user, result=result)
    return result


@transaction.atomic
def _upload_batch_close(*, acting_user: User, result: UploadBatchResult) -> None:
    result.batch.rejected = result.rejected
    result.batch.save(update_fields=["rejected"])
    audit_record(
        actor=acting_user,
        kind=AuditEvent.Kind.BATCH_UPLOADED,
        subject=result.batch,
        after={
            "collection": result.batch.collection_id,
            "accepted": [v.pk for v in result.accepted],
            "rejected": result.rejected,
        },
    )


@transaction.atomic
def document_upload(
    *,
    acting_user: User,
    collection: Collection,
    name: str,
    data: bytes,
    batch: UploadBatch | None = None,
    enqueue: bool = True,
) -> DocumentVersion:
    """Add a file to a collection: a new document, or a new version of the document of that name. `enqueue` False:
    the caller ingests it in its own process (document_version_ingest), and no job is queued for the worker, which
    would ingest it a second time, possibly after the caller has moved on."""
    collection_require_manager(user=acting_user, collection=collection)
    filename = name[-255:]
    if not filename.isprintable():
        # A name from inside an archive or an e-mail can hold what a browser never sends: a NUL (which PostgreSQL
        # cannot store), control characters, a lone surrogate.
        raise UploadRejected(f"{filename!r}: the file name holds characters that cannot be shown; rename the file")
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
    version = DocumentVersion(
        document=document,
        batch=batch,
        number=number,
        content_hash=content_hash,
        size_bytes=len(data),
        uploaded_by=acting_user,
    )
    version.file.save(_stored_name(filename), ContentFile(data), save=False)
    try:
        version.full_clean()
        version.save()
        audit_record(
            actor=acting_user,
            kind=AuditEvent.Kind.DOCUMENT_UPLOADED,
            subject=version,
            after={
                "collection": collection.pk,
                "document": document.pk,
                "version": number,
                "filename": filename,
                "sha256": content_hash,
                "bytes": len(data),
            },
        )
    except BaseException:
        # The rows roll back; the file written above would stay on disk with no row naming it, out of reach of
        # document_delete, backups' accounting and the administrators.
        stored_file_delete(version.file.name)
        raise
    if enqueue:
        document_version_ingest_enqueue(version_id=version.pk)
    return version


@transaction.atomic
def document_move(*, acting_user: User, document: Document, to_collection: Collection) -> Document:
    """Its readers change with it at once: chunks reach readers only through their document's collection."""
    collection_require_manager(user=acting_user, collection=document.collection)
    collection_require_manager(user=acting_user, collection=to_collection)
    if to_collection.documents.filter(original_name=document.original_name).exists():
        raise UploadRejected(f"{to_collection.name} already has a document named {document.original_name}")
    before = {"collection": document.collection_id}
    document.collection = to_collection
    document.save(update_fields=["collection"])
    document.chunks.update(collection=to_collection)
    audit_record(
        actor=acting_user,
        kind=AuditEvent.Kind.DOCUMENT_MOVED,
        subject=document,
        before=before,
        after={"collection": to_collection.pk},
    )
    return document


@transaction.atomic
def document_delete(*, acting_user: User, document: Document) -> None:
    """Remove a document, all its versions, chunks and vectors in one transaction; files go after commit."""
    collection_require_manager(user=acting_user, collection=document.collection)
    versions = document.versions.all()
    before = {
        "title": document.title,
        "collection": document.collection_id,
        "versions": versions.count(),
        "chunks": document.chunks.count(),
    }
    stored_files_delete_on_commit(list(versions.values_list("file", flat=True)))
    audit_record(actor=acting_user, kind=AuditEvent.Kind.DOCUMENT_DELETED, subject=document, before=before)
    document.delete()


def _stored_name(filename: str) -> str:
    """The file's name on disk: never the uploaded name, which may be longer in bytes than a file system allows (90
    CJK characters are 270 bytes), hold a path from inside an archive, or be reserved. The version's folder is
    already unique (collection and content hash); the document keeps its real name."""
    suffix = PurePosixPath(filename).suffix.lower()
    return "original" + (suffix if suffix[1:].isascii() and suffix[1:].isalnum() and len(suffix) <= 10 else "")


@transaction.atomic
def document_version_retry(*, acting_user: User, version: DocumentVersion) -> DocumentVersion:
    collection_require_manager(user=acting_user, collection=version.document.collection)
    version = DocumentVersion.objects.select_for_update().get(pk=version.pk)
    if version.status != DocumentVersion.Status.FAILED:
        raise UploadRejected(f"{version} has not failed; there is nothing to retry")
    before = {"status": version.status, "reason": version.failure_reason}
    version.status = DocumentVersion.Status.QUEUED
    version.failure_reason = ""
    version.save(update_fields=["status", "failure_reason", "updated_at"])
    audit_record(
        actor=acting_user,
        kind=AuditEvent.Kind.DOCUMENT_RETRIED,
        subject=version,
        before=before,
        after={"status": version.status},
    )
    document_version_ingest_enqueue(version_id=version.pk)
    return version
