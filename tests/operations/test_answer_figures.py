"""Answers and their failures reach the figures where they happen: busy refusals, busy answers, engine faults, time
to first token, tokens/s, retrieval; and the sampled figures the page plots."""

import asyncio
import time

import pytest
from asgiref.sync import sync_to_async
from django.db import connections
from django.test import Client
from django.urls import reverse
from prometheus_client import REGISTRY

from inference.router import RouteLimits
from kb.audit.models import QueryRecord
from kb.chat.generation import answer_backend
from kb.chat.services import answer_stream, question_create
from kb.operations.models import OperationsSample
from kb.operations.services import operations_sample_take
from tests.factories import department_with_faq_and_notes, make_user
from tests.inference.serving import Server

pytestmark = pytest.mark.django_db(transaction=True)

QUESTION = "Why does Python use indentation for grouping of statements?"


def _value(name: str, **labels) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


@pytest.fixture
def engineering(python_docs):
    return department_with_faq_and_notes(python_docs).department


@pytest.fixture
def route():
    routed = answer_backend().models[0]
    limits = routed.limits
    yield routed
    routed.limits, routed.running = limits, 0


def _answer(user, question, *, on_event=None):
    async def run():
        events = []
        async for event in answer_stream(user=user, question=question):
            events.append(event)
            if on_event is not None:
                await on_event(event)
        await sync_to_async(connections.close_all)()
        return events

    return asyncio.run(run())


def test_an_answer_counts_its_retrieval_first_token_and_tokens(engineering):
    alice = make_user(department=engineering)
    before = {
        name: _value(name)
        for name in (
            "kb_retrieval_seconds_count",
            "kb_answer_time_to_first_token_seconds_count",
            "kb_answer_output_tokens_total",
            "kb_answer_generation_seconds_total",
        )
    }
    answered = _value("kb_answers_total", outcome="answered")

    _answer(alice, question_create(acting_user=alice, text=QUESTION))

    record = QueryRecord.objects.get()
    assert _value("kb_answers_total", outcome="answered") == answered + 1
    assert _value("kb_retrieval_seconds_count") == before["kb_retrieval_seconds_count"] + 1
    assert (
        _value("kb_answer_time_to_first_token_seconds_count")
        == before["kb_answer_time_to_first_token_seconds_count"] + 1
    )
    tokens = _value("kb_answer_output_tokens_total") - before["kb_answer_output_tokens_total"]
    assert tokens == record.completion_tokens - 1  # those after the first, whose time is measured
    assert _value("kb_answer_generation_seconds_total") > before["kb_answer_generation_seconds_total"]


def test_busy_refusals_and_busy_answers_are_counted_and_sampled(engineering, route, settings):
    settings.KB_OPERATIONS_SAMPLE_SECONDS = 0.1
    alice = make_user(department=engineering)
    client = Client()
    client.force_login(alice)
    refused, busy = _value("kb_asks_refused_busy_total"), _value("kb_answers_total", outcome="busy")
    operations_sample_take()

    route.running, route.limits = 1, RouteLimits(max_running=1, max_queued=0)
    assert client.post(reverse("chat:ask"), {"question": QUESTION}).status_code == 503
    route.limits = RouteLimits(max_running=1, max_queued=4, queue_timeout_seconds=0.3)
    events = _answer(alice, question_create(acting_user=alice, text=QUESTION))
    time.sleep(0.1)
    sample = operations_sample_take()

    assert [event.kind for event in events][-2:] == ["busy", "done"]
    assert _value("kb_asks_refused_busy_total") == refused + 1
    assert _value("kb_answers_total", outcome="busy") == busy + 1
    first = OperationsSample.objects.order_by("taken_at").first()
    minutes = (sample.taken_at - first.taken_at).total_seconds() / 60
    assert sample.figures["busy"] == pytest.approx(2 / minutes)
    assert sample.figures["answers"] == pytest.approx(1 / minutes)  # the busy answer; the refusal never streamed


def test_an_engine_that_fails_mid_answer_is_counted_as_a_fault(engineering, settings, tmp_path):
    server = Server(tmp_path, KB_VAR_DIR=str(tmp_path / "var"), KB_LLM_THREADS="1")
    try:
        server.wait_until(ready=True)
        settings.KB_INFERENCE_URL, settings.KB_INFERENCE_API_KEY = server.url, server.api_key
        answer_backend.cache_clear()
        alice = make_user(department=engineering)
        faults = _value("kb_answers_total", outcome="engine_error")

        async def kill_the_server_at_the_first_token(event):
            if event.kind == "token" and server.process.poll() is None:
                server.process.kill()

        _answer(alice, question_create(acting_user=alice, text=QUESTION), on_event=kill_the_server_at_the_first_token)
    finally:
        server.process.kill()
        server.process.wait(timeout=30)
        answer_backend.cache_clear()

    record = QueryRecord.objects.get()
    assert "went away mid-answer" in record.error
    assert _value("kb_answers_total", outcome="engine_error") == faults + 1
