"""The auditor's query log in a browser: filters and pages travel in POST bodies (the address bar never shows the
words looked for), and an export is a download that the audit trail records."""

import pytest

from kb.audit.models import AuditEvent
from tests.audit.test_selectors import ask, make_auditor
from tests.e2e.pages import log_in
from tests.factories import make_department, make_user

sync_api = pytest.importorskip("playwright.sync_api")

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]


def test_an_auditor_filters_pages_and_exports_with_nothing_in_the_address_bar(live_stack, browser):
    alice = make_user(department=make_department("Finance"), username="alice")
    for number in range(51):
        ask(alice, f"Where is the travel policy, take {number}?")
    ask(alice, "Who approves overtime?")
    make_auditor("log-reader")
    page = log_in(browser, live_stack["url"], "log-reader")
    addresses: list[str] = []
    page.on("request", lambda request: addresses.append(request.url))

    page.goto("/audit/queries/")
    page.fill("input[name=text]", "travel policy")
    page.press("input[name=text]", "Enter")
    sync_api.expect(page.locator("#results")).to_contain_text("51 questions")
    sync_api.expect(page.locator("#results")).not_to_contain_text("Who approves overtime?")
    page.click("button[name=page][value='2']")
    sync_api.expect(page.locator("#results .pagination")).to_contain_text("Page 2 of 2")
    with page.expect_download() as download:
        page.locator(".export-form button", has_text="CSV").click()
    exported = download.value.path().read_text()

    assert exported.count("travel policy") == 51 and "overtime" not in exported
    assert page.url.endswith("/audit/queries/")
    assert not [address for address in addresses if "travel" in address or "?" in address]
    event = AuditEvent.objects.get(kind=AuditEvent.Kind.AUDIT_EXPORTED)
    assert event.actor.username == "log-reader" and event.after["filters"] == {"text": "travel policy"}
