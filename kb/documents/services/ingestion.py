"""Ingestion of one document version: parse, chunk, embed, then publish its chunks in one transaction; failures
and stalled jobs."""

import logging
import time
from dataclasses import dataclass
from datetime import timedelta

import numpy as np
from django.conf import settings
from django.db import InterfaceError, OperationalError, transaction
from django.utils import timezone

from extract.chunking import ChunkDraft, chunk_document, chunk_log
from extract.parsing import parse_document
from extract.types import DocumentRejected, ParsedDocument
from kb.audit.models import AuditEvent
from kb.audit.services import audit_record
from kb.documents.embedding_models import (
    chunking_tokenizer,
    passages_embed_for_active_model,
    passages_embed_for_incoming_model,
)
from kb.documents.jobs import INGEST_DOCUMENT_VERSION, job_enqueue_on_commit
from kb.documents.models import Chunk, Document, DocumentVersion
from kb.documents.signals import version_published
from kb.platform.actors import system_actor
from kb.platform.metrics import INGESTED_CHUNKS, INGESTED_DOCUMENTS, INGESTION_SECONDS

logger = logging.getLogger(__name__)


# Errors worth another attempt later (the database restarting, a dropped connection); the task retries these.
TRANSIENT_ERRORS = (OperationalError, InterfaceError)


def document_version_ingest_enqueue(*, version_id: int) -> None:
    job_enqueue_on_commit(INGEST_DOCUMENT_VERSION, version_id)


def _version_update(version_id: int, **fields) -> None:
    DocumentVersion.objects.filter(pk=version_id).update(
        heartbeat_at=timezone.now(), updated_at=timezone.now(), **fields
    )


def document_version_ingest(*, version_id: int) -> None:
    """Parse, chunk and embed one version, then make it the searchable one in a single transaction.

    Safe to run again at any point: nothing is visible until the final swap, which replaces whatever was there.
    """
    version = DocumentVersion.objects.select_related("document").filter(pk=version_id).first()
    if version is None:
        logger.info("document version %s was deleted before ingestion", version_id)
        return
    _version_update(
        version_id,
        status=DocumentVersion.Status.PARSING,
        failure_reason="",
        progress_done=0,
        progress_total=0,
        attempts=version.attempts + 1,
    )
    started = time.perf_counter()
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
    else:
        INGESTED_DOCUMENTS.labels(outcome="ready").inc()
        INGESTED_CHUNKS.inc(len(drafts))
    finally:
        INGESTION_SECONDS.observe(time.perf_counter() - started)


def _chunk_drafts(parsed: ParsedDocument) -> list[ChunkDraft]:
    if parsed.is_log:
        return chunk_log(
            text=parsed.text,
            log_format=parsed.log_format,
            title=parsed.title,
            tokenizer=chunking_tokenizer(),
            max_tokens=settings.KB_CHUNK_TOKENS,
        )
    return chunk_document(
        document=parsed,
        tokenizer=chunking_tokenizer(),
        max_tokens=settings.KB_CHUNK_TOKENS,
        overlap_tokens=settings.KB_CHUNK_OVERLAP_TOKENS,
    )


@dataclass(frozen=True)
class _Vectors:
    active: np.ndarray
    incoming: np.ndarray | None  # from the model being built to replace the active one, if any


def _embed_with_progress(version_id: int, drafts: list[ChunkDraft]) -> _Vectors:
    texts = [f"{draft.heading}\n{draft.text}" for draft in drafts]
    step = settings.KB_EMBEDDING_BATCH_SIZE * 4
    active, incoming = [], []
    for start in range(0, len(texts), step):
        active.append(passages_embed_for_active_model(texts[start : start + step]))
        incoming.append(passages_embed_for_incoming_model(texts[start : start + step]))
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
            Chunk(
                document=document,
                version=version,
                collection_id=document.collection_id,
                is_serving=True,
                ordinal=ordinal,
                heading=draft.heading[:500],
                text=draft.text,
                char_start=draft.char_start,
                char_end=draft.char_end,
                first_page=draft.first_page,
                last_page=draft.last_page,
                token_count=draft.token_count,
                embedding=vector,
                embedding_next=next_vector,
                time_start=draft.time_start,
                time_end=draft.time_end,
                hosts=list(draft.hosts),
                programs=list(draft.programs),
                peers=list(draft.peers),
                severity_counts=draft.severity_counts,
            )
            for ordinal, (draft, vector, next_vector) in enumerate(
                zip(drafts, vectors.active, _incoming_or_none(vectors, len(drafts)), strict=True)
            )
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
    version.save(
        update_fields=["status", "chunk_count", "progress_done", "progress_total", "heartbeat_at", "updated_at"]
    )
    audit_record(
        actor=system_actor(),
        kind=AuditEvent.Kind.DOCUMENT_INGESTED,
        subject=version,
        before=before,
        after={
            "status": version.status,
            "chunks": len(drafts),
            "serving_version": version.number if is_newest else serving.number,
        },
    )
    if is_newest:
        version_published.send(sender=DocumentVersion, version=version, collection_id=document.collection_id)


@transaction.atomic
def document_version_mark_failed(*, version_id: int, reason: str) -> None:
    version = DocumentVersion.objects.select_for_update().get(pk=version_id)
    before = {"status": version.status}
    version.status = DocumentVersion.Status.FAILED
    version.failure_reason = reason
    version.save(update_fields=["status", "failure_reason", "updated_at"])
    INGESTED_DOCUMENTS.labels(outcome="failed").inc()
    logger.warning("document version %s failed: %s", version_id, reason)
    audit_record(
        actor=system_actor(),
        kind=AuditEvent.Kind.DOCUMENT_FAILED,
        subject=version,
        before=before,
        after={"reason": reason},
    )


def stalled_cutoff() -> timezone.datetime:
    return timezone.now() - timedelta(seconds=settings.KB_INGEST_STALL_SECONDS)


@transaction.atomic
def document_versions_requeue_stalled() -> list[int]:
    """Queue again the versions whose worker stopped reporting (killed, out of memory, machine restarted)."""
    stalled = list(
        DocumentVersion.objects.select_for_update(skip_locked=True).filter(
            status__in=DocumentVersion.IN_PROGRESS, heartbeat_at__lt=stalled_cutoff()
        )
    )
    for version in stalled:
        before = {"status": version.status, "heartbeat_at": version.heartbeat_at.isoformat()}
        version.status = DocumentVersion.Status.QUEUED
        version.save(update_fields=["status", "updated_at"])
        audit_record(
            actor=system_actor(),
            kind=AuditEvent.Kind.DOCUMENT_REQUEUED,
            subject=version,
            before=before,
            after={"status": version.status},
        )
        document_version_ingest_enqueue(version_id=version.pk)
    if stalled:
        logger.warning("re-queued stalled document versions %s", [v.pk for v in stalled])
    return [version.pk for version in stalled]
