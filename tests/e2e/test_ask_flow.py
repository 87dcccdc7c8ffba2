"""The ask flow in a real browser against the live server and the CPU model: Stop, a reconnect that does not ask
again, a stream that is not the user's, a cross-site form, and the scope selector."""

import re

import pytest

from kb.audit.models import QueryRecord
from kb.chat.models import Question
from tests.e2e.pages import log_in
from tests.factories import department_with_faq_and_notes, make_user

sync_api = pytest.importorskip("playwright.sync_api")

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

QUESTION = "Why does Python use indentation for grouping of statements?"


@pytest.fixture
def engineering(python_docs):
    department = department_with_faq_and_notes(python_docs).department
    make_user(department=department, username="alice")
    make_user(department=department, username="mallory")
    return department


def _ask(page, question: str):
    page.get_by_label("Question").fill(question)
    page.get_by_role("button", name="Ask").click()


def test_stop_ends_the_answer_and_keeps_what_was_written(live_stack, browser, engineering):
    page = log_in(browser, live_stack["url"], "alice")
    _ask(page, QUESTION)
    streaming = page.locator(".exchange.streaming")
    sync_api.expect(streaming.locator(".answer-text")).not_to_be_empty(timeout=60_000)

    streaming.get_by_role("button", name="Stop").click()

    done = page.locator(".exchange.done")
    sync_api.expect(done).to_contain_text("Stopped", timeout=30_000)
    record = QueryRecord.objects.get()
    assert "stopped" in record.flags and record.answer
    assert Question.objects.get().state == Question.State.STOPPED
    assert record.completion_tokens < 150  # the answer budget is 200: generation ended in the engine


def test_a_reconnect_replays_the_answer_and_does_not_ask_again(live_stack, browser, engineering):
    page = log_in(browser, live_stack["url"], "alice")
    _ask(page, QUESTION)
    sync_api.expect(page.locator(".exchange.done")).to_be_visible(timeout=90_000)
    question = Question.objects.get()
    stream_url = f"/questions/{question.pk}/stream/"

    # What the browser does after a dropped connection: open the same stream again.
    events = page.evaluate(
        """url => new Promise(resolve => {
             const seen = [];
             const source = new EventSource(url);
             for (const kind of ["sources", "token", "done"]) {
               source.addEventListener(kind, () => {
                 seen.push(kind);
                 if (kind === "done") { source.close(); resolve(seen); }
               });
             }
           })""",
        stream_url,
    )

    assert events == ["done"]
    assert QueryRecord.objects.count() == 1


def test_a_stream_that_is_not_the_user_s_ends_once_without_retrying(live_stack, browser, engineering):
    alice = log_in(browser, live_stack["url"], "alice")
    _ask(alice, QUESTION)
    sync_api.expect(alice.locator(".exchange.done")).to_be_visible(timeout=90_000)
    alices_question = Question.objects.get()
    page = log_in(browser, live_stack["url"], "mallory")
    requests: list[str] = []
    page.on("request", lambda request: requests.append(request.url) if "/stream/" in request.url else None)

    for question_id in (alices_question.pk, alices_question.pk + 1000):  # someone else's, and one that never was
        page.evaluate(
            """url => {
                 const exchange = document.createElement("article");
                 exchange.className = "exchange streaming";
                 exchange.setAttribute("hx-ext", "sse");
                 exchange.setAttribute("sse-connect", url);
                 exchange.setAttribute("sse-close", "done");
                 document.getElementById("exchanges").append(exchange);
                 htmx.process(exchange);
               }""",
            f"/questions/{question_id}/stream/",
        )
    sync_api.expect(page.locator(".exchange.failed")).to_have_count(2, timeout=10_000)
    page.wait_for_timeout(4000)  # the extension's retries would come after 0.5, 1 and 2 s

    assert len(requests) == 2
    assert "not one of yours" in page.locator(".exchange.failed").first.inner_text()
    assert QueryRecord.objects.count() == 1 and QueryRecord.objects.get().question == QUESTION


def test_a_form_on_another_site_cannot_ask_in_the_user_s_name(live_stack, browser, engineering):
    page = log_in(browser, live_stack["url"], "alice")
    # A page from another origin (here: a data: URL) that posts the ask form to the knowledge base.
    page.goto(
        "data:text/html,"
        f'<form method="post" action="{live_stack["url"]}/ask/"><input name="question" value="{QUESTION}">'
        '<button type="submit">Go</button></form>'
    )
    with page.expect_navigation():
        page.get_by_role("button", name="Go").click()

    assert not Question.objects.exists() and not QueryRecord.objects.exists()
    assert re.search(r"403|Forbidden|log in", page.content(), re.IGNORECASE)


def test_the_scope_selector_limits_the_sources_to_the_chosen_collection(live_stack, browser, engineering):
    page = log_in(browser, live_stack["url"], "alice")
    page.locator("details.scope summary").click()
    page.get_by_label("Office notes").check()
    sync_api.expect(page.locator("[data-scope-summary]")).to_have_text("Office notes")

    _ask(page, "where can visitors leave their car")

    done = page.locator(".exchange.done")
    sync_api.expect(done).to_be_visible(timeout=90_000)
    sync_api.expect(done.locator(".source-list")).to_contain_text("Office notes")
    assert "Python FAQ" not in done.locator(".source-list").inner_text()
    assert QueryRecord.objects.get().scope["filters"]["collection_ids"] == [
        Question.objects.get().scope["collection_ids"][0]
    ]
