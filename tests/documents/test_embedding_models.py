"""Changing the embedding model: the old vectors serve until one switch moves chunks, column and questions over."""

import pytest
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import connection

from embedding.encoders import model_directory
from kb.audit.models import AuditEvent
from kb.documents.embedding_models import (
    embedding_model_activate,
    embedding_model_change_start,
    embedding_model_reembed_step,
)
from kb.documents.models import Chunk, EmbeddingModel
from kb.platform.actors import system_actor
from kb.search.selectors import embed_query, passages_search_for_user
from tests.factories import ingested_document, make_collection, make_department, make_user
from tests.search.test_selectors import vector_storage

pytestmark = pytest.mark.django_db

QUESTION = "Why does Python use indentation for grouping of statements?"


@pytest.fixture(scope="module")
def smaller_model(tmp_path_factory) -> str:
    """A real, different sentence-transformers model made here: the bundled encoder, CLS pooling, a 256-d head."""
    import torch
    from sentence_transformers import SentenceTransformer
    from sentence_transformers.sentence_transformer.modules import Dense, Pooling, Transformer

    torch.manual_seed(0)
    encoder = Transformer(str(model_directory("")))
    pooling = Pooling(encoder.get_embedding_dimension(), pooling_mode="cls")
    head = Dense(encoder.get_embedding_dimension(), 256, activation_function=torch.nn.Identity())
    folder = tmp_path_factory.mktemp("model") / "minilm-cls-256"
    SentenceTransformer(modules=[encoder, pooling, head], device="cpu").save(str(folder))
    return str(folder)


def _column_dimensions() -> int:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT format_type(atttypid, atttypmod) FROM pg_attribute "
            "WHERE attrelid = 'documents_chunk'::regclass AND attname = 'embedding'"
        )
        return int(cursor.fetchone()[0].removeprefix("vector(").removesuffix(")"))


def test_reembedding_serves_old_vectors_until_the_switch_then_the_new_model_everywhere(
    smaller_model, python_docs, django_capture_on_commit_callbacks
):
    department = make_department()
    collection = make_collection(owner=department)
    ingested_document(
        collection=collection, name="design.html", content=(python_docs / "faq" / "design.html").read_bytes()
    )
    alice = make_user(department=department)
    total = Chunk.objects.count()

    with django_capture_on_commit_callbacks() as jobs:
        incoming = embedding_model_change_start(acting_user=system_actor(), path=smaller_model)
    assert len(jobs) == 1 and incoming.dimensions == 256 and incoming.progress_total == total

    assert embedding_model_reembed_step(model_id=incoming.pk, batch_size=10) == 10
    # Half-way: questions still use the old model against the old vectors.
    assert _column_dimensions() == 384
    assert len(embed_query(QUESTION)) == 384
    hits = passages_search_for_user(user=alice, query_text=QUESTION, k=3, mode="dense")
    assert hits[0].heading == QUESTION
    # A document ingested during the change gets vectors from both models.
    late = ingested_document(
        collection=collection, name="general.html", content=(python_docs / "faq" / "general.html").read_bytes()
    )
    assert all(len(chunk.embedding_next) == 256 for chunk in late.chunks.all())

    active = embedding_model_activate(model_id=incoming.pk)

    assert active.state == EmbeddingModel.State.ACTIVE
    assert EmbeddingModel.objects.get(path="").state == EmbeddingModel.State.RETIRED
    assert _column_dimensions() == 256
    assert vector_storage()["storage"] == "m" and vector_storage()["vectors_out_of_line"] == 0
    assert not Chunk.objects.filter(embedding_next__isnull=False).exists()
    assert len(embed_query(QUESTION)) == 256
    hits = passages_search_for_user(user=alice, query_text=QUESTION, k=5, mode="dense")
    assert len(hits) == 5 and all(hit.score > 0 for hit in hits)
    assert AuditEvent.objects.filter(kind=AuditEvent.Kind.EMBEDDING_MODEL_ACTIVATED).exists()


def test_a_model_that_cannot_be_loaded_or_is_already_active_is_refused(tmp_path):
    with pytest.raises(ValidationError, match="cannot load a sentence-transformers model"):
        embedding_model_change_start(acting_user=system_actor(), path=str(tmp_path / "nothing-here"))
    with pytest.raises(ValidationError, match="already the active embedding model"):
        embedding_model_change_start(acting_user=system_actor(), path="")


def test_only_a_superuser_may_change_the_embedding_model(smaller_model):
    department = make_department("Research")
    admin = make_user(department=department, admin=True, username="research-admin")

    with pytest.raises(PermissionDenied, match="Only a superuser"):
        embedding_model_change_start(acting_user=admin, path=smaller_model)

    assert not EmbeddingModel.objects.filter(state=EmbeddingModel.State.BUILDING).exists()
    assert not AuditEvent.objects.filter(kind=AuditEvent.Kind.EMBEDDING_MODEL_CHANGE_STARTED).exists()


def test_the_command_lists_models_and_starts_a_change(smaller_model, capsys):
    from django.core.management import call_command

    call_command("kb_embedding_model")
    assert "active    all-MiniLM-L6-v2 (384 dimensions)" in capsys.readouterr().out

    call_command("kb_embedding_model", smaller_model, "--no-wait")

    assert "the current model keeps serving until the switch" in capsys.readouterr().out
    assert EmbeddingModel.objects.get(state=EmbeddingModel.State.BUILDING).path == smaller_model
