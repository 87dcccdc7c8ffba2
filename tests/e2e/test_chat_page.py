"""The ask page in a browser: on a phone-width screen nothing overflows sideways, answers render (lists, code that
scrolls in its own box) and every control reads without an emoji font; a conversation's follow-up is asked with its
first question and both come back, in order, after a reload."""

import re

import pytest

from kb.audit.models import QueryFeedback, QueryRecord
from kb.chat.models import Question
from tests.e2e.pages import log_in
from tests.factories import answer_recorded, ingested_document, make_collection, make_department, make_user

sync_api = pytest.importorskip("playwright.sync_api")

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

PHONE = {"width": 375, "height": 740}
FIRST = "Why does Python use indentation for grouping statements?"
FOLLOW_UP = "And what about braces instead?"


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


def test_enter_in_the_feedback_comment_rates_nothing_and_a_refused_question_stays_in_its_box(live_stack, browser):
    make_user(department=make_department("Field service"), username="dave")
    page = log_in(browser, live_stack["url"], "dave")
    page.get_by_label("Question").fill("Where is the VPN handbook?")
    page.get_by_role("button", name="Ask").click()
    answered = page.locator(".exchange.done")
    sync_api.expect(answered).to_be_visible(timeout=60_000)

    answered.get_by_label("Comment").fill("this is wrong")
    answered.get_by_label("Comment").press("Enter")
    page.wait_for_timeout(1000)  # time for a submission, were one made
    assert not QueryFeedback.objects.exists()  # Enter used to submit the first button: "Helpful"
    answered.get_by_role("button", name="Not helpful", exact=True).click()
    sync_api.expect(page.locator(".feedback-verdict")).to_contain_text("not helpful")
    assert QueryFeedback.objects.get().comment == "this is wrong"

    page.get_by_label("Question").fill("   ")  # the browser sends it (required is met), the server refuses it
    page.get_by_role("button", name="Ask").click()
    sync_api.expect(page.locator("#exchanges .error")).to_contain_text("Type a question first.")
    assert page.get_by_label("Question").input_value() == "   "


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


@pytest.fixture
def engineering(python_docs):
    department = make_department("Engineering")
    collection = make_collection(owner=department)
    ingested_document(
        collection=collection, name="design.html", content=(python_docs / "faq" / "design.html").read_bytes()
    )
    return department


def _ask_and_wait(page, question: str, answered: int) -> None:
    page.get_by_label("Question").fill(question)
    page.get_by_role("button", name="Ask").click()
    sync_api.expect(page.locator("#exchanges > .exchange.done")).to_have_count(answered, timeout=120_000)


def test_a_follow_up_is_asked_within_its_conversation_which_reopens_in_order_at_its_newest_exchange(
    live_stack, browser, engineering
):
    make_user(department=engineering, username="dana")
    page = log_in(browser, live_stack["url"], "dana", viewport={"width": 1280, "height": 400})

    _ask_and_wait(page, FIRST, answered=1)
    # The first question started a conversation: the address is now its page, and the list shows it.
    sync_api.expect(page).to_have_url(re.compile(r"/conversations/\d+/$"))
    conversation_id = int(re.search(r"/conversations/(\d+)/$", page.url).group(1))
    sync_api.expect(page.locator("#conversation-items")).to_contain_text(FIRST)
    _ask_and_wait(page, FOLLOW_UP, answered=2)

    page.reload()
    exchanges = page.locator("#exchanges > .exchange")
    sync_api.expect(exchanges).to_have_count(2)
    sync_api.expect(exchanges.locator(".question")).to_have_text([FIRST, FOLLOW_UP])
    sync_api.expect(page.locator("#conversation-header h1")).to_have_text(FIRST)
    sync_api.expect(page.locator("#conversation-items a[aria-current=page]")).to_have_text(FIRST)
    assert exchanges.nth(0).bounding_box()["y"] < exchanges.nth(1).bounding_box()["y"]
    sync_api.expect(exchanges.nth(1)).to_be_in_viewport()  # scrolled to the newest, at the bottom
    assert page.evaluate("window.scrollY") > 0
    assert page.locator("#conversation-field").input_value() == str(conversation_id)

    first, follow_up = QueryRecord.objects.filter(user__username="dana").order_by("pk")
    assert QueryRecord.objects.count() == 2  # the reload replayed both answers without asking the model again
    assert follow_up.scope["conversation"] == conversation_id
    # The follow-up's prompt carries the first exchange (its answer shortened when the history budget is small), and
    # the record names the turn sent.
    assert follow_up.scope["turns"] == [first.pk]
    # The follow-up alone names nothing to search for: the previous question is joined to it (or it is rewritten).
    assert {"indentation", "grouping"} <= set(follow_up.scope["standalone_query"].lower().replace("?", "").split())
