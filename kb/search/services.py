"""Changing the embedding model: re-embed every chunk in the background while the old vectors keep serving,
then switch all of them, and the question side with them, in one transaction."""

import logging
from pathlib import Path

from django.core.exceptions import ValidationError
from django.db import connection, transaction
from django.utils import timezone

from kb.accounts.models import User
from kb.audit.models import AuditEvent
from kb.audit.services import audit_record
from kb.documents.models import Chunk
from kb.search.embeddings import encode, load_model
from kb.search.models import EmbeddingModel

logger = logging.getLogger(__name__)


@transaction.atomic
def embedding_model_change_start(*, acting_user: User | None, path: str) -> EmbeddingModel:
    if EmbeddingModel.objects.filter(state=EmbeddingModel.State.BUILDING).exists():
        raise ValidationError("a change of embedding model is already under way")
    active = EmbeddingModel.objects.get(state=EmbeddingModel.State.ACTIVE)
    if path == active.path:
        raise ValidationError(f"{path or 'the bundled model'} is already the active embedding model")
    try:
        dimensions = load_model(path).get_embedding_dimension()
    except Exception as error:  # any failure to load is the admin's to fix, reported in words
        raise ValidationError(f"cannot load a sentence-transformers model from {path}: {error}") from error
    incoming = EmbeddingModel.objects.create(
        name=Path(path).name or "all-MiniLM-L6-v2", path=path, dimensions=dimensions,
        state=EmbeddingModel.State.BUILDING, progress_total=Chunk.objects.count(), created_by=acting_user,
    )
    Chunk.objects.update(embedding_next=None)
    audit_record(actor=acting_user, kind=AuditEvent.Kind.EMBEDDING_MODEL_CHANGE_STARTED, subject=incoming,
                 before={"active": active.name, "dimensions": active.dimensions},
                 after={"incoming": incoming.name, "dimensions": dimensions})
    from kb.search.tasks import reembed_chunks

    transaction.on_commit(lambda: reembed_chunks.delay(incoming.pk))
    return incoming


def embedding_model_reembed_step(*, model_id: int, batch_size: int = 256) -> int:
    """Embed the next batch of chunks that lack the incoming model's vector; returns how many were done."""
    incoming = EmbeddingModel.objects.get(pk=model_id, state=EmbeddingModel.State.BUILDING)
    with transaction.atomic():
        batch = list(
            Chunk.objects.select_for_update(skip_locked=True).filter(embedding_next__isnull=True)
            .order_by("pk").values_list("pk", "heading", "text")[:batch_size]
        )
        if not batch:
            return 0
        vectors = encode(incoming.path, [f"{heading}\n{text}" for _, heading, text in batch])
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
        cursor.execute("LOCK TABLE documents_chunk IN SHARE ROW EXCLUSIVE MODE")
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
            f"ALTER TABLE documents_chunk ALTER COLUMN embedding TYPE vector({incoming.dimensions:d}) "
            f"USING embedding_next::vector({incoming.dimensions:d}), ALTER COLUMN embedding SET STORAGE MAIN"
        )
    Chunk.objects.update(embedding_next=None)
    outgoing.state = EmbeddingModel.State.RETIRED
    outgoing.save(update_fields=["state"])
    incoming.state = EmbeddingModel.State.ACTIVE
    incoming.activated_at = timezone.now()
    incoming.save(update_fields=["state", "activated_at"])
    audit_record(actor=None, kind=AuditEvent.Kind.EMBEDDING_MODEL_ACTIVATED, subject=incoming,
                 before={"active": outgoing.name, "dimensions": outgoing.dimensions},
                 after={"active": incoming.name, "dimensions": incoming.dimensions,
                        "chunks": incoming.progress_total})
    logger.info("embedding model %s is now active", incoming)
    return incoming


def embedding_model_change_run(*, model_id: int) -> None:
    while embedding_model_reembed_step(model_id=model_id):
        pass
    embedding_model_activate(model_id=model_id)
