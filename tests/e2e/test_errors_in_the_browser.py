"""What a person sees in the browser when a request goes wrong: the reason, never a click that seems to do nothing."""

import pytest

from tests.e2e.pages import log_in
from tests.factories import make_department, make_user

sync_api = pytest.importorskip("playwright.sync_api")

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def admin_page(live_stack, browser):
    make_user(department=make_department("Legal"), admin=True, username="legal-admin")
    page = log_in(browser, live_stack["url"], "legal-admin")
    page.goto("/organisation/")
    return page


def _add_member(page, username: str) -> None:
    form = page.locator("form", has=page.get_by_label("User to add to Legal"))
    form.get_by_label("User to add to Legal").fill(username)
    form.locator("button[type=submit]").click()


def test_bad_input_sent_by_htmx_shows_the_views_reason(admin_page):
    _add_member(admin_page, "nobody-by-that-name")  # answered 400 with the page's own error partial

    sync_api.expect(admin_page.locator("#organisation .error")).to_have_text("No user has that username.")
    assert admin_page.locator("#request-problem").is_hidden()


def test_a_server_error_or_an_unreachable_server_is_said_in_a_banner_and_cleared_by_the_next_answer(admin_page):
    # The browser gets a real 500, then a dropped connection, for this form's requests only.
    admin_page.route("**/members/", lambda route: route.fulfill(status=500, body="Server Error (500)"))
    _add_member(admin_page, "someone")
    banner = admin_page.locator("#request-problem")
    sync_api.expect(banner).to_contain_text("could not complete that request (status 500)")

    admin_page.unroute("**/members/")
    admin_page.route("**/members/", lambda route: route.abort())
    _add_member(admin_page, "someone")
    sync_api.expect(banner).to_contain_text("could not be reached")

    admin_page.unroute("**/members/")
    _add_member(admin_page, "nobody-by-that-name")
    sync_api.expect(admin_page.locator("#organisation .error")).to_have_text("No user has that username.")
    sync_api.expect(banner).to_be_hidden()


def test_a_form_sent_after_the_session_ended_is_refused_unread_and_said_in_the_banner(admin_page):
    admin_page.context.clear_cookies()  # the session ended (expired, logged out elsewhere)

    _add_member(admin_page, "someone")

    banner = admin_page.locator("#request-problem")
    sync_api.expect(banner).to_contain_text("You are not logged in, or your session has ended")
    sync_api.expect(admin_page.locator("#organisation")).to_be_visible()  # the page stays as it was
