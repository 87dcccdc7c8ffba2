"""The ask page on a phone-width screen: nothing overflows sideways, answers render (lists, code that scrolls in its
own box), and every control reads without an emoji font."""

import pytest

from kb.chat.models import Question
from tests.e2e.pages import log_in
from tests.factories import answer_recorded, make_department, make_user

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


WIDE_CODE_ANSWER = (
    "Connect in two steps:\n\n"
    "1. Install WireGuard.\n"
    "2. Bring the tunnel up:\n\n"
    f"```\nwg-quick up office --endpoint berlin.vpn.example:51820 {'--allowed-ips 10.0.0.0/8 ' * 6}\n```\n\n"
    "<img src=x onerror=\"document.title='script ran'\">"
)
# Every value the transcript's aria-busy takes, in order: it is a live region that screen readers read once the
# answer is complete.
RECORD_BUSY = """
window.busyStates = [];
new MutationObserver(() => window.busyStates.push(document.getElementById("exchanges").getAttribute("aria-busy")))
  .observe(document.getElementById("exchanges"), { attributes: true, attributeFilter: ["aria-busy"] });
"""


def test_an_answer_s_list_and_wide_code_block_render_within_a_phone_screen(live_stack, browser):
    dave = make_user(department=make_department("Field service"), username="dave")
    phone = {"width": 390, "height": 800}
    page = log_in(browser, live_stack["url"], "dave", viewport=phone)
    page.evaluate(RECORD_BUSY)

    def answered_before_its_stream_opens(route):
        # The stored answer is in place when the page gets the question back, so the stream it opens replays it:
        # what is tested is the rendering of a known answer, not what the model happens to say.
        response = route.fetch()
        answer_recorded(question=Question.objects.get(conversation__user=dave), answer=WIDE_CODE_ANSWER)
        route.fulfill(response=response)

    page.route("**/ask/", answered_before_its_stream_opens)
    page.get_by_label("Question").fill("How do I connect to the office VPN?")
    page.get_by_label("Question").press("Enter")
    answer = page.locator(".exchange.done .answer-text")
    sync_api.expect(answer.locator("ol > li")).to_have_count(2, timeout=30_000)

    code = answer.locator("pre code")
    sync_api.expect(code).to_contain_text("wg-quick up office")
    assert code.evaluate("code => code.parentElement.scrollWidth > code.parentElement.clientWidth")  # scrolls inside
    assert not _overflows_sideways(page)
    assert answer.locator("img").count() == 0 and page.title() != "script ran"
    assert page.evaluate("window.busyStates") == ["true", "false"]
    sync_api.expect(page.get_by_label("Question")).to_have_value("")
