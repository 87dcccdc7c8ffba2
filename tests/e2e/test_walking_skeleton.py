"""The whole path in a real browser: upload → Celery ingestion → ask → streamed, cited answer → permissions."""

import re

import pytest

from kb.audit.models import QueryRecord
from kb.documents.models import Document, DocumentVersion
from tests.e2e.pages import log_in
from tests.factories import make_collection, make_department, make_user

sync_api = pytest.importorskip("playwright.sync_api")

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

QUESTION = "Why does Python use indentation for grouping of statements?"

# Records every server-sent event the page handles, in order: a short answer streams for a fraction of a second,
# too briefly for polling the DOM to be sure of seeing it.
RECORD_SSE_EVENTS = """
window.sseEvents = [];
document.body.addEventListener("htmx:sseMessage", (event) => window.sseEvents.push(event.detail.type));
"""


def _ask(page, question: str):
    page.goto("/")
    page.evaluate(RECORD_SSE_EVENTS)
    page.fill("input[name=question]", question)
    page.click("form.ask button[type=submit]")


def test_upload_ingest_ask_stream_cite_and_other_departments_see_nothing(live_stack, browser, python_docs, tmp_path):
    engineering, sales = make_department("Engineering"), make_department("Sales")
    collection = make_collection(owner=engineering)
    make_user(department=engineering, admin=True, username="eng-admin")
    make_user(department=engineering, username="alice")
    make_user(department=sales, username="bob")
    corrupt = tmp_path / "corrupt.txt"
    corrupt.write_bytes(b"\x00\x01\x02binary junk\xff")

    admin_page = log_in(browser, live_stack["url"], "eng-admin")
    admin_page.goto("/documents/")
    admin_page.select_option("select[name=collection]", str(collection.pk))
    admin_page.set_input_files("input[name=files]", [str(python_docs / "faq" / "design.html"), str(corrupt)])
    admin_page.click("#workspace button[type=submit]")
    design_row = admin_page.locator("tr", has_text="design.html")
    corrupt_row = admin_page.locator("tr", has_text="corrupt.txt")
    # The rows poll with htmx until the Celery worker has finished with each file.
    sync_api.expect(design_row.locator(".status")).to_have_text(re.compile("Ready"), timeout=120_000)
    sync_api.expect(corrupt_row.locator(".status")).to_contain_text("binary", timeout=60_000)
    design = Document.objects.select_related("current_version").get(original_name="design.html")
    assert design.current_version.status == DocumentVersion.Status.READY and design.current_version.chunk_count > 10

    alice_page = log_in(browser, live_stack["url"], "alice")
    _ask(alice_page, QUESTION)
    sync_api.expect(alice_page.locator(".exchange.done")).to_be_visible(timeout=120_000)
    events = alice_page.evaluate("window.sseEvents")
    # Sources first, then the answer token by token; the closing event replaced the streaming block with the final
    # answer (.exchange.done above), detaching it before its own message event could reach the page.
    assert events[0] == "sources" and events.count("token") >= 3
    assert set(events[1:]) <= {"token", "done"} and events.count("done") <= 1
    answer = alice_page.locator(".exchange.done .answer-text").inner_text()
    assert len(answer.split()) >= 3
    sources = alice_page.locator(".exchange.done .source-list li")
    sync_api.expect(sources.first.locator("a.citation")).to_have_text("[1]")  # numbered in the prompt's order
    # The passages go to the model in reading order; the one about indentation is among them.
    indentation = sources.filter(has_text="Why does Python use indentation").first.locator("a.citation")
    passage_url = indentation.get_attribute("href")
    indentation.click()
    sync_api.expect(alice_page.locator("#passage-panel .passage-text")).to_contain_text("indentation")
    sync_api.expect(alice_page.locator("#passage-panel")).to_contain_text("Design and History FAQ")

    bob_page = log_in(browser, live_stack["url"], "bob")
    _ask(bob_page, QUESTION)
    sync_api.expect(bob_page.locator(".exchange.done")).to_be_visible(timeout=120_000)
    sync_api.expect(bob_page.locator(".exchange.done")).to_contain_text("No passage you can read matches")
    assert bob_page.locator("a.citation").count() == 0
    assert bob_page.goto(passage_url).status == 404

    alice_record = QueryRecord.objects.get(user__username="alice")
    assert alice_record.question == QUESTION
    assert alice_record.answer.strip() and alice_record.first_token_ms is not None
    assert alice_record.passages.filter(document_id=design.pk, rank=1).exists()
    bob_record = QueryRecord.objects.get(user__username="bob")
    assert bob_record.passages.count() == 0
