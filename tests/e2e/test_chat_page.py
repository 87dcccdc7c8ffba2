"""The ask page on a phone-width screen: nothing overflows sideways, and every control reads without an emoji font."""

import pytest

from tests.e2e.pages import log_in
from tests.factories import make_department, make_user

sync_api = pytest.importorskip("playwright.sync_api")

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

PHONE = {"width": 375, "height": 740}


def _overflows_sideways(page) -> bool:
    return page.evaluate("document.documentElement.scrollWidth > window.innerWidth")


def test_asking_on_a_phone_width_screen_stays_within_the_screen(live_stack, browser):
    make_user(department=make_department("Field service"), username="carol")
    page = log_in(browser, live_stack["url"], "carol", viewport=PHONE)
    assert not _overflows_sideways(page)

    long_word = "Configuration" * 12  # one unbroken word, wider than the screen
    page.get_by_label("Question").fill(f"Where is the {long_word} of the VPN described?")
    page.get_by_role("button", name="Ask").click()
    answered = page.locator(".exchange.done")
    sync_api.expect(answered).to_be_visible(timeout=60_000)

    sync_api.expect(answered).to_contain_text("do not say")  # carol may read nothing: no model was asked
    sync_api.expect(answered.get_by_role("button", name="Helpful", exact=True)).to_be_visible()
    assert answered.bounding_box()["x"] + answered.bounding_box()["width"] <= PHONE["width"]
    assert not _overflows_sideways(page)
