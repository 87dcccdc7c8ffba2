"""The chunks' embedding model: which one embeds passages, and changing it.

A change re-embeds every chunk in the background while the old vectors keep serving, then switches all of them, and
the question side with them, in one transaction. Which model is active is a database fact, so that every process
(web, workers) switches together.
"""

import logging
from pathlib import Path

import numpy as np
from django.conf import settings
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import connection, transaction
from django.utils import timezone

from embedding import encoders
from kb.accounts.models import User
from kb.audit.models import AuditEvent
from kb.audit.services import audit_record
from kb.documents.jobs import REEMBED_CHUNKS, job_enqueue_on_commit
from kb.documents.models import Chunk, EmbeddingModel
from kb.documents.signals import embedding_model_activated
from kb.platform.actors import system_actor

logger = logging.getLogger(__name__)


def embedding_model_path(*, state: EmbeddingModel.State) -> str | None:
    return EmbeddingModel.objects.filter(state=state).values_list("path", flat=True).first()


BUNDLED_MODEL_NAME = "all-MiniLM-L6-v2"


def active_embedding_model() -> EmbeddingModel:
    """The model whose vectors searches use now (a migration makes the first; a change swaps it in one transaction).
    Without a row (a database emptied after its migrations), the bundled model, as active_model_path has it."""
    return EmbeddingModel.objects.filter(state=EmbeddingModel.State.ACTIVE).first() or EmbeddingModel(
        name=BUNDLED_MODEL_NAME, path="", dimensions=encoders.dimensions_of(""), state=EmbeddingModel.State.ACTIVE
    )


def active_model_path() -> str:
    return embedding_model_path(state=EmbeddingModel.State.ACTIVE) or ""


def passages_embed(texts: list[str], *, model_path: str) -> np.ndarray:
    return encoders.encode(model_path, texts, batch_size=settings.KB_EMBEDDING_BATCH_SIZE)


def passages_embed_for_active_model(texts: list[str]) -> np.ndarray:
    return passages_embed(texts, model_path=active_model_path())


def passages_embed_for_incoming_model(texts: list[str]) -> np.ndarray | None:
    """Vectors from the model being built to replace the active one, or None when no change is under way."""
    path = embedding_model_path(state=EmbeddingModel.State.BUILDING)
    return None if path is None else passages_embed(texts, model_path=path)


def chunking_tokenizer():
    """The configured model's tokenizer, not the active one's: chunk sizes stay stable across model changes."""
    return encoders.chunking_tokenizer(settings.KB_EMBEDDING_MODEL_PATH)


@transaction.atomic
def embedding_model_change_start(*, acting_user: User, path: str) -> EmbeddingModel:
    """Re-embedding every passage of every department: a superuser's decision."""
    if not acting_user.is_superuser:
        raise PermissionDenied("Only a superuser may change the embedding model.")
    if EmbeddingModel.objects.filter(state=EmbeddingModel.State.BUILDING).exists():
        raise ValidationError("a change of embedding model is already under way")
    active = EmbeddingModel.objects.get(state=EmbeddingModel.State.ACTIVE)
    if path == active.path:
        raise ValidationError(f"{path or 'the bundled model'} is already the active embedding model")
    try:
        dimensions = encoders.dimensions_of(path)
    except Exception as error:  # any failure to load is the admin's to fix, reported in words
        raise ValidationError(f"cannot load a sentence-transformers model from {path}: {error}") from error
    incoming = EmbeddingModel.objects.create(
        name=Path(path).name or BUNDLED_MODEL_NAME,
        path=path,
        dimensions=dimensions,
        state=EmbeddingModel.State.BUILDING,
        progress_total=Chunk.objects.count(),
        created_by=acting_user,
    )
    Chunk.objects.update(embedding_next=None)
    audit_record(
        actor=acting_user,
        kind=AuditEvent.Kind.EMBEDDING_MODEL_CHANGE_STARTED,
        subject=incoming,
        before={"active": active.name, "dimensions": active.dimensions},
        after={"incoming": incoming.name, "dimensions": dimensions},
    )
    job_enqueue_on_commit(REEMBED_CHUNKS, incoming.pk)
    return incoming


def embedding_model_reembed_step(*, model_id: int, batch_size: int = 256) -> int:
    """Embed the next batch of chunks that lack the incoming model's vector; returns how many were done."""
    incoming = EmbeddingModel.objects.get(pk=model_id, state=EmbeddingModel.State.BUILDING)
    with transaction.atomic():
        batch = list(
            Chunk.objects.select_for_update(skip_locked=True)
            .filter(embedding_next__isnull=True)
            .order_by("pk")
            .values_list("pk", "heading", "text")[:batch_size]
        )
        if not batch:
            return 0
        vectors = passages_embed([f"{heading}\n{text}" for _, heading, text in batch], model_path=incoming.path)
        Chunk.objects.bulk_update(
            [Chunk(pk=pk, embedding_next=vector) for (pk, _, _), vector in zip(batch, vectors, strict=True)],
            ["embedding_next"],
        )
        done = Chunk.objects.filter(embedding_next__isnull=False).count()
        EmbeddingModel.objects.filter(pk=model_id).update(progress_done=done, progress_total=Chunk.objects.count())
    return len(batch)


@transaction.atomic
def embedding_model_activate(*, model_id: int) -> EmbeddingModel:
    """Switch searches to the incoming model: every chunk's vector and the column's type change together."""
    with connection.cursor() as cursor:
        # New chunks would otherwise slip in without the incoming vector between the last step and the switch.
        cursor.execute(f"LOCK TABLE {_chunk_table()} IN SHARE ROW EXCLUSIVE MODE")
    while embedding_model_reembed_step(model_id=model_id):
        pass
    incoming = EmbeddingModel.objects.select_for_update().get(pk=model_id, state=EmbeddingModel.State.BUILDING)
    outgoing = EmbeddingModel.objects.select_for_update().get(state=EmbeddingModel.State.ACTIVE)
    with connection.cursor() as cursor:
        # Deferred foreign-key checks of this transaction's writes must run before the table can be altered.
        cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")
        # Changing the column's type rebuilds its HNSW index for the new dimensions in the same transaction. It
        # also resets the column's storage to the type's default: vectors are kept in the row again (migration
        # documents 0007) before the same statement rewrites the table.
        cursor.execute(
            f"ALTER TABLE {_chunk_table()} ALTER COLUMN embedding TYPE vector({incoming.dimensions:d}) "
            f"USING embedding_next::vector({incoming.dimensions:d}), ALTER COLUMN embedding SET STORAGE MAIN"
        )
    Chunk.objects.update(embedding_next=None)
    outgoing.state = EmbeddingModel.State.RETIRED
    outgoing.save(update_fields=["state"])
    incoming.state = EmbeddingModel.State.ACTIVE
    incoming.activated_at = timezone.now()
    incoming.save(update_fields=["state", "activated_at"])
    audit_record(
        actor=system_actor(),
        kind=AuditEvent.Kind.EMBEDDING_MODEL_ACTIVATED,
        subject=incoming,
        before={"active": outgoing.name, "dimensions": outgoing.dimensions},
        after={"active": incoming.name, "dimensions": incoming.dimensions, "chunks": incoming.progress_total},
    )
    embedding_model_activated.send(sender=EmbeddingModel, model=incoming)
    logger.info("embedding model %s is now active", incoming)
    return incoming


def embedding_model_change_run(*, model_id: int) -> None:
    while embedding_model_reembed_step(model_id=model_id):
        pass
    embedding_model_activate(model_id=model_id)


def _chunk_table() -> str:
    return connection.ops.quote_name(Chunk._meta.db_table)
