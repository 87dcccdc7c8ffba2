"""The ask flow: a question is created by a CSRF-protected POST and answered once, by its asker's stream."""

import asyncio
import re

import pytest
from asgiref.sync import sync_to_async
from django.db import connections
from django.test import AsyncClient, Client
from django.urls import reverse

from kb.audit.models import QueryRecord
from kb.chat.models import Conversation, Question
from kb.chat.services import question_create
from tests.factories import (
    PASSWORD,
    answer_recorded,
    ingested_document,
    make_collection,
    make_department,
    make_user,
)

pytestmark = pytest.mark.django_db(transaction=True)

QUESTION = "Why does Python use indentation for grouping of statements?"
# A document and a question that try to put markup into the page: each must show as the text it is. The document is
# short, one passage, whose heading is the section it starts in; the title is the first level-1 heading, wherever it is.
HOSTILE_HANDBOOK = b"""## <script>alert('heading')</script> Connecting to the office VPN

To connect to the office VPN, install the WireGuard client and import the profile of the Berlin gateway.
The gateway listens on port 51820; ask the service desk for a profile.

# <img src=x onerror=alert('title')> VPN handbook
"""
HOSTILE_QUESTION = "<b onmouseover=alert('question')>How do I connect to the office VPN?</b>"


@pytest.fixture
def engineering(python_docs):
    department = make_department("Engineering")
    collection = make_collection(owner=department)
    ingested_document(
        collection=collection, name="design.html", content=(python_docs / "faq" / "design.html").read_bytes()
    )
    return department


def _ask(client: Client, question: str, **fields) -> tuple[int, str]:
    response = client.post(reverse("chat:ask"), {"question": question, **fields}, headers={"HX-Request": "true"})
    return response.status_code, response.content.decode()


def _stream(user, question_id: int) -> tuple[int, str]:
    """Read a question's stream to its end as the browser would, through the ASGI request path."""

    async def run():
        client = AsyncClient()
        await sync_to_async(client.force_login)(user)
        response = await client.get(reverse("chat:question-stream", args=[question_id]))
        body = ""
        if response.status_code == 200:
            body = "".join([chunk.decode() async for chunk in response.streaming_content])
        await sync_to_async(connections.close_all)()
        return response.status_code, body

    return asyncio.run(run())


def test_the_post_stores_the_question_and_the_stream_url_carries_only_its_id(engineering):
    alice = make_user(department=engineering)
    client = Client(enforce_csrf_checks=True)
    client.force_login(alice)
    page = client.get(reverse("chat:page")).content.decode()
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page).group(1)

    status, partial = _ask(client, QUESTION, csrfmiddlewaretoken=token)

    question = Question.objects.get()
    assert status == 200 and question.text == QUESTION and question.state == Question.State.PENDING
    assert question.conversation.user == alice
    stream_url = reverse("chat:question-stream", args=[question.pk])
    assert f'sse-connect="{stream_url}"' in partial
    assert "indentation" not in stream_url and "?" not in stream_url
    assert not QueryRecord.objects.exists()  # nothing is asked of the model until the stream opens


def test_a_cross_site_post_without_the_csrf_token_asks_nothing(engineering):
    client = Client(enforce_csrf_checks=True)
    client.force_login(make_user(department=engineering))

    status, _ = _ask(client, QUESTION)

    assert status == 403 and not Question.objects.exists()
    assert client.get(reverse("chat:ask"), {"question": QUESTION}).status_code == 405


def test_the_first_stream_answers_and_any_later_one_replays_without_asking_again(engineering):
    alice = make_user(department=engineering)
    client = Client()
    client.force_login(alice)
    _ask(client, QUESTION)
    question = Question.objects.get()

    status, first = _stream(alice, question.pk)

    assert status == 200 and "event: sources" in first and "event: token" in first and "event: done" in first
    record = QueryRecord.objects.get()
    question.refresh_from_db()
    assert question.state == Question.State.ANSWERED and question.query_record == record
    assert record.question == QUESTION and record.scope["question"] == question.pk

    status, again = _stream(alice, question.pk)

    assert status == 200 and "event: done" in again and "event: token" not in again
    assert f'data-query-record="{record.pk}"' in again
    assert QueryRecord.objects.count() == 1


def test_a_stream_opened_while_the_answer_is_being_written_does_not_ask_twice(engineering):
    alice = make_user(department=engineering)
    client = Client()
    client.force_login(alice)
    _ask(client, QUESTION)
    question = Question.objects.get()
    Question.objects.filter(pk=question.pk).update(state=Question.State.ANSWERING)

    status, body = _stream(alice, question.pk)

    assert status == 200 and "being answered in another window" in body
    assert not QueryRecord.objects.exists()


def test_an_answer_the_retention_period_removed_says_so_instead_of_being_answered_elsewhere():
    alice = make_user(department=make_department("Field service"))
    question = question_create(acting_user=alice, text="How do I connect to the office VPN?")
    answer_recorded(question=question, answer="Install WireGuard.")
    Question.objects.filter(pk=question.pk).update(query_record=None)  # what the purge's ON DELETE SET NULL leaves

    status, replayed = _stream(alice, question.pk)

    assert status == 200 and "no longer kept" in replayed and "another window" not in replayed
    client = Client()
    client.force_login(alice)
    assert "no longer kept" in client.get(reverse("chat:question", args=[question.pk])).content.decode()


def test_someone_else_s_question_is_not_found_and_not_answered(engineering):
    alice = make_user(department=engineering)
    mallory = make_user(department=engineering)
    client = Client()
    client.force_login(alice)
    _ask(client, QUESTION)
    question = Question.objects.get()

    assert _stream(mallory, question.pk)[0] == 404
    assert Client().get(reverse("chat:question-stream", args=[question.pk])).status_code == 401
    question.refresh_from_db()
    assert question.state == Question.State.PENDING and not QueryRecord.objects.exists()


def test_a_follow_up_joins_the_asker_s_conversation_and_never_someone_else_s(engineering):
    alice = make_user(department=engineering)
    bob = make_user(department=engineering)
    client = Client()
    client.force_login(alice)
    _, partial = _ask(client, QUESTION)
    conversation = Conversation.objects.get()
    assert f'name="conversation" id="conversation-field" value="{conversation.pk}"' in partial

    _ask(client, "And what about braces instead?", conversation=str(conversation.pk))
    bob_client = Client()
    bob_client.force_login(bob)
    _ask(bob_client, "Can I join that conversation?", conversation=str(conversation.pk))
    _ask(bob_client, "And with a broken id?", conversation="abc")

    assert list(conversation.questions.values_list("text", flat=True)) == [QUESTION, "And what about braces instead?"]
    assert Conversation.objects.filter(user=bob).count() == 2


@pytest.mark.parametrize(("question", "reason"), [("   ", "Type a question first."), ("x" * 2001, "limited to 2000")])
def test_an_empty_or_overlong_question_is_refused_with_its_reason(engineering, question, reason):
    client = Client()
    client.force_login(make_user(department=engineering))

    status, partial = _ask(client, question)

    assert status == 400 and reason in partial and not Question.objects.exists()


def test_the_page_puts_the_newest_exchange_at_the_bottom(engineering):
    client = Client()
    assert client.login(username=make_user(department=engineering).username, password=PASSWORD)
    page = client.get(reverse("chat:page")).content.decode()
    assert 'hx-swap="beforeend show:bottom"' in page
    assert page.index('id="exchanges"') < page.index('class="ask"')


def test_markup_in_a_question_or_in_a_document_s_title_and_heading_is_shown_as_text():
    department = make_department("Field service")
    ingested_document(collection=make_collection(owner=department), name="vpn.md", content=HOSTILE_HANDBOOK)
    alice = make_user(department=department)
    client = Client()
    client.force_login(alice)

    _, partial = _ask(client, HOSTILE_QUESTION)
    question = Question.objects.get()
    _, streamed = _stream(alice, question.pk)
    _, replayed = _stream(alice, question.pk)

    shown_question = "&lt;b onmouseover=alert(&#x27;question&#x27;)&gt;How do I connect to the office VPN?&lt;/b&gt;"
    for html in (partial, streamed, replayed):
        assert shown_question in html
        assert "<b " not in html and "<img" not in html and "<script" not in html
    sources = streamed[streamed.index("event: sources") : streamed.index("event: token")]
    assert "&lt;img src=x onerror=alert(&#x27;title&#x27;)&gt; VPN handbook" in sources
    assert "&lt;script&gt;alert(&#x27;heading&#x27;)&lt;/script&gt; Connecting to the office VPN" in sources


def test_a_stored_answer_is_replayed_as_rendered_sanitised_markdown_with_its_citations_linked():
    alice = make_user(department=make_department("Field service"))
    question = question_create(acting_user=alice, text="How do I connect to the office VPN?")
    answer_recorded(
        question=question,
        answer="Two steps [1]:\n\n1. Install WireGuard.\n2. Run `wg-quick up office`.\n\n<script>alert(1)</script> [4]",
        citations=[{"number": 1, "chunk_id": 4242, "document_id": 1}],
    )

    status, replayed = _stream(alice, question.pk)

    url = reverse("search:passage", args=[4242])
    assert status == 200 and "event: token" not in replayed
    assert f'<a class="citation" href="{url}" hx-get="{url}"' in replayed and "[4]" not in replayed
    assert "<ol>" in replayed and "<code>wg-quick up office</code>" in replayed
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in replayed and "<script" not in replayed
