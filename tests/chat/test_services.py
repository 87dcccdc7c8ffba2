"""Answering for real: embedding model, pgvector search, SmolLM2 through llama.cpp, the query record."""

import asyncio

import pytest
from asgiref.sync import sync_to_async
from django.db import connections

from kb.accounts.models import Membership
from kb.accounts.services import membership_delete
from kb.audit.models import QueryRecord
from kb.chat.citations import CITATION
from kb.chat.services import NO_SOURCES_ANSWER, answer_stream, question_create
from kb.platform.actors import system_actor
from tests.factories import ingested_document, make_collection, make_department, make_user

pytestmark = pytest.mark.django_db(transaction=True)

QUESTION = "Why does Python use indentation for grouping of statements?"


def _answer(user, text, **asked):
    question = question_create(acting_user=user, text=text, **asked)

    async def run():
        events = [event async for event in answer_stream(user=user, question=question)]
        await sync_to_async(connections.close_all)()  # the ORM's worker thread keeps its own connection
        return events

    return asyncio.run(run())


@pytest.fixture
def engineering(python_docs):
    department = make_department("Engineering")
    collection = make_collection(owner=department)
    document = ingested_document(
        collection=collection, name="design.html", content=(python_docs / "faq" / "design.html").read_bytes()
    )
    return department, document


def test_answer_streams_sources_then_tokens_then_done_and_is_recorded(engineering):
    department, document = engineering
    alice = make_user(department=department)

    events = _answer(alice, QUESTION)

    kinds = [event.kind for event in events]
    assert kinds[0] == "sources" and kinds[-1] == "done"
    assert kinds.count("token") >= 5
    sources = events[0].passages
    assert [source.number for source in sources] == list(range(1, len(sources) + 1))
    # In reading order now, not rank order: the best hit is among them.
    by_chunk = {source.hit.chunk_id: source.hit for source in sources}
    done = events[-1]
    assert done.text == "".join(event.text for event in events if event.kind == "token")

    record = QueryRecord.objects.get()
    assert done.record.pk == record.pk
    assert (record.user, record.question, record.answer) == (alice, QUESTION, done.text)
    assert record.department_names == ["Engineering"]
    assert record.model == "smollm2-135m" and record.backend == "llama_cpp"
    assert record.completion_tokens > 0 and record.prompt_tokens > 100
    assert 0 < record.retrieval_ms <= record.first_token_ms <= record.total_ms
    passages = list(record.passages.all())
    assert [p.rank for p in passages] == list(range(1, len(passages) + 1))
    # The best hit holds the FAQ entry (its heading may be the page's: the entry starts inside the first passage).
    assert "indentation" in by_chunk[passages[0].chunk_id].text.lower()
    assert passages[0].document_id == document.pk
    assert passages[0].score == pytest.approx(by_chunk[passages[0].chunk_id].score)
    assert {p.chunk_id for p in passages if p.sent_to_model} == {s.hit.chunk_id for s in sources}
    assert record.permission_filter == {
        "role": "employee",
        "departments": [department.pk],
        "department_names": ["Engineering"],
        "collections": [document.collection_id],
    }
    assert record.scope["mode"] == "hybrid" and record.route == {"skipped": []}
    cited = {citation["number"] for citation in record.citations}
    assert cited <= {s.number for s in sources}
    assert ("removed_citations" in record.flags) == bool(
        {int(n) for n in CITATION.findall(record.answer)} - {s.number for s in sources}
    )


def test_the_record_holds_the_filter_the_search_applied_even_if_access_changes_while_answering(engineering):
    department, document = engineering
    alice = make_user(department=department)

    question = question_create(acting_user=alice, text=QUESTION)

    async def run():
        stream = answer_stream(user=alice, question=question)
        first = await anext(stream)
        # Alice leaves the department while the model is still answering from what she could read then.
        membership = await Membership.objects.aget(user=alice)
        actor = await sync_to_async(system_actor)()
        await sync_to_async(membership_delete)(acting_user=actor, membership=membership)
        rest = [event async for event in stream]
        await sync_to_async(connections.close_all)()
        return [first, *rest]

    events = asyncio.run(run())

    assert events[0].kind == "sources" and events[0].passages
    record = QueryRecord.objects.get(user=alice)
    assert record.permission_filter["departments"] == [department.pk]
    assert record.permission_filter["collections"] == [document.collection_id]
    assert record.department_names == ["Engineering"]


def test_a_user_of_another_department_gets_no_passage_and_the_model_is_not_asked_to_invent_one(engineering):
    bob = make_user(department=make_department("Sales"))

    events = _answer(bob, QUESTION)

    assert events[0].kind == "sources" and events[0].passages == ()
    assert events[-1].kind == "done" and events[-1].text == NO_SOURCES_ANSWER
    record = QueryRecord.objects.get(user=bob)
    assert record.passages.count() == 0
    assert "no_passages" in record.flags and record.permission_filter["collections"] == []
    # No model answered: no route, no tokens, the fixed refusal recorded as the answer.
    assert (record.model, record.prompt_tokens, record.completion_tokens) == ("", 0, 0)
    assert record.answer == NO_SOURCES_ANSWER


def test_answers_come_from_the_serving_process_when_one_is_configured(engineering, settings, tmp_path):
    from kb.chat.generation import answer_backend
    from tests.inference.serving import Server

    server = Server(tmp_path)
    server.wait_until(ready=True)
    settings.KB_INFERENCE_URL = server.url
    answer_backend.cache_clear()
    try:
        department, _ = engineering
        events = _answer(make_user(department=department), QUESTION)
    finally:
        answer_backend.cache_clear()
        server.stop()

    done = events[-1]
    assert [event.kind for event in events].count("token") >= 5 and not done.record.error
    record = QueryRecord.objects.get(pk=done.record.pk)
    assert record.model == "smollm2-135m" and record.backend == "llama_cpp" and record.route == {"skipped": []}
    assert record.generation_params["enable_thinking"] is False
    assert record.completion_tokens > 0 and record.prompt_tokens > 50
