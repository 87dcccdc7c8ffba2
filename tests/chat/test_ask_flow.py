"""The ask flow with the real CPU model: stop, busy, scope, follow-ups, the context budget and sampling."""

import asyncio
import dataclasses
import re

import pytest
from asgiref.sync import sync_to_async
from django.core.exceptions import ValidationError
from django.db import connections
from django.template.loader import render_to_string
from django.test import Client
from django.urls import reverse

from inference.registry import PRESETS
from inference.router import RouteLimits
from kb.audit.models import QueryRecord
from kb.chat.generation import answer_backend
from kb.chat.models import Question
from kb.chat.services import QuestionScope, answer_stream, question_create, question_stop
from tests.factories import department_with_faq_and_notes, make_department, make_user

pytestmark = pytest.mark.django_db(transaction=True)

QUESTION = "Why does Python use indentation for grouping of statements?"
FOLLOW_UP = "And what about braces instead?"


@pytest.fixture
def engineering(python_docs):
    made = department_with_faq_and_notes(python_docs)
    return made.department, made.faq, made.notes, made.note


def _answer(user, question, *, on_event=None):
    async def run():
        events = []
        async for event in answer_stream(user=user, question=question):
            events.append(event)
            if on_event is not None:
                await on_event(event, events)
        await sync_to_async(connections.close_all)()
        return events

    return asyncio.run(run())


@pytest.fixture
def route():
    """The in-process route's only model, whose limits a test may narrow; put back afterwards."""
    routed = answer_backend().models[0]
    limits = routed.limits
    yield routed
    routed.limits = limits


def test_stop_ends_generation_in_the_engine_and_keeps_the_partial_answer(engineering, route):
    department, *_ = engineering
    alice = make_user(department=department)
    question = question_create(acting_user=alice, text=QUESTION)

    async def stop_after_three_tokens(event, events):
        if event.kind == "token" and [e.kind for e in events].count("token") == 3:
            await sync_to_async(question_stop)(acting_user=alice, question_id=question.pk)

    events = _answer(alice, question, on_event=stop_after_three_tokens)

    record = QueryRecord.objects.get()
    question.refresh_from_db()
    assert question.state == Question.State.STOPPED and question.query_record == record
    assert "stopped" in record.flags and not record.error
    assert record.answer == events[-1].text and record.answer
    assert record.channel == "web" and record.scope["question"] == question.pk
    # Stopped within a poll interval of the request: far fewer tokens than the answer budget of 200.
    assert record.completion_tokens < 100
    assert route.running == 0  # the engine's slot is free again


def test_stop_is_for_the_asker_only(engineering):
    department, *_ = engineering
    alice, mallory = make_user(department=department), make_user(department=department)
    question = question_create(acting_user=alice, text=QUESTION)
    client = Client(enforce_csrf_checks=True)
    client.force_login(mallory)
    assert client.post(reverse("chat:question-stop", args=[question.pk])).status_code == 403  # no CSRF token
    assert not question_stop(acting_user=mallory, question_id=question.pk)
    client.force_login(alice)
    assert client.get(reverse("chat:question-stop", args=[question.pk])).status_code == 405
    question.refresh_from_db()
    assert not question.stop_requested


def test_when_every_model_is_busy_the_ask_is_refused_at_once_and_nothing_is_stored(engineering, route):
    department, *_ = engineering
    client = Client()
    client.force_login(make_user(department=department))
    route.running = route.limits.max_running  # as while another answer is generated
    route.limits = RouteLimits(max_running=1, max_queued=0)
    try:
        response = client.post(reverse("chat:ask"), {"question": QUESTION}, headers={"HX-Request": "true"})
    finally:
        route.running = 0

    assert response.status_code == 503 and response["Retry-After"]
    body = response.content.decode()
    assert "busy" in body and "Retry" in body and f'value="{QUESTION}"' in body
    assert not Question.objects.exists() and not QueryRecord.objects.exists()


def test_without_javascript_the_busy_page_is_whole_and_keeps_the_question_for_a_retry(engineering, route):
    department, faq, *_ = engineering
    client = Client()
    client.force_login(make_user(department=department))
    route.running = route.limits.max_running
    route.limits = RouteLimits(max_running=1, max_queued=0)
    try:
        response = client.post(reverse("chat:ask"), {"question": QUESTION, "collection": faq.pk})
    finally:
        route.running = 0

    body = response.content.decode()
    assert response.status_code == 503 and "Your question was not sent." in body
    assert f'name="question" value="{QUESTION}"' in body and f'name="collection" value="{faq.pk}"' in body
    assert faq.name in body and "Conversations" in body  # the page around it: its scope choices and conversations


def test_a_question_that_waits_past_the_limit_is_told_busy_and_answered_on_retry(engineering, route):
    department, *_ = engineering
    alice = make_user(department=department)
    question = question_create(acting_user=alice, text=QUESTION)
    route.running = 1
    route.limits = RouteLimits(max_running=1, max_queued=4, queue_timeout_seconds=0.5)
    try:
        events = _answer(alice, question)
    finally:
        route.running = 0

    kinds = [event.kind for event in events]
    assert "waiting" in kinds and kinds[-2:] == ["busy", "done"]
    question.refresh_from_db()
    assert question.state == Question.State.PENDING and question.query_record is None
    busy = QueryRecord.objects.get()
    assert "busy" in busy.flags and busy.error and busy.completion_tokens == 0

    retried = _answer(alice, question)

    assert [event.kind for event in retried].count("token") >= 3
    question.refresh_from_db()
    assert question.state == Question.State.ANSWERED and question.query_record.pk != busy.pk


class _FailsAfterTheFirstTokens:
    """The real route, with a fault no one foresaw (a bug, not an engine's failure) after its first tokens."""

    def __init__(self, backend):
        self._backend = backend

    def __getattr__(self, name):
        return getattr(self._backend, name)

    async def stream_chat(self, *args, **kwargs):
        tokens = 0
        async for delta in self._backend.stream_chat(*args, **kwargs):
            yield delta
            tokens += bool(delta.text)
            if tokens == 3:
                raise RuntimeError("a fault no one foresaw")


def test_an_unforeseen_fault_mid_answer_is_recorded_as_a_failure_and_the_stream_still_closes(engineering, caplog):
    department, *_ = engineering
    alice = make_user(department=department)
    question = question_create(acting_user=alice, text=QUESTION)

    async def run():
        events = [
            event
            async for event in answer_stream(
                user=alice, question=question, backend=_FailsAfterTheFirstTokens(answer_backend())
            )
        ]
        await sync_to_async(connections.close_all)()
        return events

    events = asyncio.run(run())

    assert [event.kind for event in events].count("token") == 3 and events[-1].kind == "done"
    record = QueryRecord.objects.get()
    assert "internal error" in record.error and record.answer == events[-1].text
    question.refresh_from_db()
    assert question.state == Question.State.FAILED and question.query_record == record
    assert "a fault no one foresaw" in caplog.text  # the traceback is for the administrators, not the asker


def test_a_follow_up_searches_with_the_question_before_and_carries_the_earlier_turn(engineering):
    department, *_ = engineering
    alice = make_user(department=department)
    first = question_create(acting_user=alice, text=QUESTION)
    _answer(alice, first)
    follow_up = question_create(acting_user=alice, text=FOLLOW_UP, conversation_id=first.conversation_id)

    _answer(alice, follow_up)

    first_record, record = QueryRecord.objects.order_by("id")
    assert record.scope["conversation"] == first.conversation_id
    assert record.scope["rewrite"] == "joined" and record.scope["standalone_query"] == f"{QUESTION} {FOLLOW_UP}"
    assert record.scope["turns"] == [first_record.pk]
    # The search found the indentation passages for "braces" only through the question before it.
    assert any("indentation" in passage.text.lower() for passage in record.passages.all())
    assert record.prompt_tokens > first_record.prompt_tokens


def test_a_follow_up_can_be_rewritten_by_the_model(engineering, settings):
    settings.KB_QUESTION_REWRITE = "model"
    department, *_ = engineering
    alice = make_user(department=department)
    first = question_create(acting_user=alice, text=QUESTION)
    _answer(alice, first)
    follow_up = question_create(acting_user=alice, text=FOLLOW_UP, conversation_id=first.conversation_id)

    _answer(alice, follow_up)

    record = QueryRecord.objects.order_by("id").last()
    assert record.scope["rewrite"] == "model"
    assert record.scope["standalone_query"] and record.scope["standalone_query"] != FOLLOW_UP


def test_a_short_document_goes_in_whole_and_the_budget_is_recorded(engineering):
    department, _, notes, note = engineering
    alice = make_user(department=department)
    question = question_create(
        acting_user=alice, text="where do visitors park in leeds", scope=QuestionScope(collection_ids=(notes.pk,))
    )

    _answer(alice, question)

    record = QueryRecord.objects.get()
    assert record.scope["whole_documents"] == [note.pk]
    assert record.scope["filters"] == {"collection_ids": [notes.pk]}
    sent = {passage.chunk_id for passage in record.passages.all() if passage.sent_to_model}
    assert sent == set(note.chunks.values_list("id", flat=True)) and all(
        passage.document_id == note.pk for passage in record.passages.all()
    )
    budget = record.scope["budget"]
    assert budget["packed_tokens"] <= budget["passage_tokens"] <= budget["prompt_tokens"]
    assert budget["context_length"] == 2048 and budget["answer_tokens"] == 200


def test_the_scope_names_only_collections_the_asker_may_read(engineering):
    department, faq, *_ = engineering
    outsider = make_user(department=make_department("Sales"))
    with pytest.raises(ValidationError):
        question_create(acting_user=outsider, text=QUESTION, scope=QuestionScope(collection_ids=(faq.pk,)))
    client = Client()
    client.force_login(outsider)
    response = client.post(
        reverse("chat:ask"), {"question": QUESTION, "collection": str(faq.pk)}, headers={"HX-Request": "true"}
    )
    assert response.status_code == 400 and not Question.objects.exists()
    # Log filters are checked too.
    response = client.post(
        reverse("chat:ask"), {"question": QUESTION, "time_from": "yesterday"}, headers={"HX-Request": "true"}
    )
    assert response.status_code == 400 and "date and time" in response.content.decode()


def test_the_page_offers_readable_collections_and_no_thinking_toggle_for_a_model_that_cannot_think(engineering):
    department, faq, notes, _ = engineering
    client = Client()
    client.force_login(make_user(department=department))
    page = client.get(reverse("chat:page")).content.decode()
    assert "Python FAQ" in page and "Office notes" in page
    assert 'name="thinking"' not in page  # SmolLM2 has no thinking mode


def test_each_model_gets_its_presets_sampling_unless_an_administrator_overrides_it(engineering, settings):
    department, *_ = engineering
    alice = make_user(department=department)
    _answer(alice, question_create(acting_user=alice, text=QUESTION))
    settings.KB_LLM = dataclasses.replace(settings.KB_LLM, temperature=0.7)
    _answer(alice, question_create(acting_user=alice, text=QUESTION, thinking=True))

    preset, overridden = QueryRecord.objects.order_by("id")
    recommended = PRESETS["smollm2-135m"].recommended
    assert preset.generation_params["temperature"] == recommended.temperature
    assert preset.generation_params["max_tokens"] == recommended.max_tokens
    assert preset.generation_params["repetition_penalty"] == recommended.repetition_penalty
    assert overridden.generation_params["temperature"] == 0.7
    assert overridden.generation_params["enable_thinking"] is False  # asked for, but this model cannot think


def test_the_thinking_toggle_is_offered_for_a_model_that_can_think_and_starts_as_configured(engineering, rf):
    department, *_ = engineering
    request = rf.get("/")
    request.user = make_user(department=department)
    request.htmx = False
    context = {"collections": [], "log_collection_ids": set(), "severities": (), "max_question_chars": 10}

    thinking_model = render_to_string(
        "chat/chat.html", {**context, "model_thinks": True, "thinking_default": True}, request
    )
    quick_by_default = render_to_string("chat/chat.html", {**context, "model_thinks": True}, request)

    assert re.search(r'<input type="checkbox" name="thinking" checked>', thinking_model)
    assert 'name="thinking"' in quick_by_default and 'name="thinking" checked' not in quick_by_default
