"""Each request's latency by the name of its route; requests in progress until a stream's last byte."""

import asyncio

import pytest
from asgiref.sync import sync_to_async
from django.db import connections
from django.test import AsyncClient
from django.urls import reverse
from prometheus_client import REGISTRY

from kb.chat.services import question_create
from tests.factories import answer_recorded, make_department, make_user

pytestmark = pytest.mark.django_db


def _count(view: str, method: str = "GET", status: str = "200") -> float:
    labels = {"view": view, "method": method, "status": status}
    return REGISTRY.get_sample_value("kb_http_request_duration_seconds_count", labels) or 0.0


def _in_progress() -> float:
    return REGISTRY.get_sample_value("kb_http_requests_in_progress")


def test_a_request_is_timed_under_its_route_name(client):
    before = _count("login")

    assert client.get(reverse("login")).status_code == 200

    assert _count("login") == before + 1


def test_what_someone_typed_never_becomes_a_label(client, settings):
    settings.KB_METRICS_TOKEN = "scraper-token"
    unmatched, refused = _count("unmatched", status="404"), _count("unmatched", method="other", status="404")

    client.get("/no-such-page/confidential-merger-plans")
    client.generic("PROPFIND", "/another/made-up-path")
    exposition = client.get(reverse("operations:metrics"), headers={"Authorization": "Bearer scraper-token"})

    assert _count("unmatched", status="404") == unmatched + 1
    assert _count("unmatched", method="other", status="404") == refused + 1
    text = exposition.content.decode()
    assert "confidential" not in text and "made-up" not in text and "PROPFIND" not in text


@pytest.mark.django_db(transaction=True)
def test_a_stream_is_in_progress_until_its_last_byte_under_asgi():
    alice = make_user(department=make_department(), username="alice")
    question = question_create(acting_user=alice, text="What is the notice period?")
    answer_recorded(question=question, answer="Three months [1].")
    idle = _in_progress()

    async def read():
        client = AsyncClient()
        await sync_to_async(client.force_login)(alice)
        response = await client.get(reverse("chat:question-stream", args=[question.pk]))
        while_streaming = _in_progress()
        body = b"".join([chunk async for chunk in response.streaming_content])
        await sync_to_async(connections.close_all)()
        return response, while_streaming, body

    response, while_streaming, body = asyncio.run(read())

    assert response.streaming and while_streaming == idle + 1
    assert b"Three months" in body and _in_progress() == idle
    assert _count("chat:question-stream") >= 1
