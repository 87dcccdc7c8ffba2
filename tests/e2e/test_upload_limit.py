"""An upload over the server's request limit (KB_REQUEST_MAX_BYTES) in a real browser: the form says so before
sending, and a refusal by the server (413, the connection closed with the body unread) is said with its reason, never
as a server that could not be reached."""

import re

import pytest
from django.conf import settings

from tests.conftest import (
    _free_port,
    _wait_until_answering,
    app_process_environment,
    database_url_for_app_processes,
    start_web_server,
    stop_processes,
)
from tests.e2e.pages import log_in
from tests.factories import make_collection, make_department, make_user

sync_api = pytest.importorskip("playwright.sync_api")

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

LIMIT = 1024 * 1024
TOO_LARGE = b"# Minutes\n" + b"The meeting went on. " * 75_000  # about 1.5 MB of Markdown
SMALL = b"# Minutes\nShort.\n"


@pytest.fixture(scope="module")
def small_limit_server(django_db_setup, django_db_blocker, tmp_path_factory):
    """The app's web server (uvicorn, ASGI, with its request guard) taking requests of at most LIMIT bytes."""
    with django_db_blocker.unblock():
        database_url = database_url_for_app_processes()
    environment = app_process_environment(
        database_url=database_url,
        broker_url=settings.CELERY_BROKER_URL,
        media_root=tmp_path_factory.mktemp("upload-limit-media"),
    )
    environment["KB_REQUEST_MAX_BYTES"] = str(LIMIT)
    port = _free_port()
    web = start_web_server(environment, tmp_path_factory.mktemp("upload-limit-logs") / "web.log", port)
    base_url = f"http://127.0.0.1:{port}"
    try:
        _wait_until_answering(f"{base_url}/accounts/login/", [web], timeout=180)
        yield base_url
    finally:
        stop_processes(web)


@pytest.fixture
def documents_page(small_limit_server, browser):
    department = make_department("Records")
    make_collection(owner=department, name="Minutes")
    make_user(department=department, admin=True, username="records-admin")
    page = log_in(browser, small_limit_server, "records-admin")
    page.goto("/documents/")
    return page


def _choose(page, content: bytes) -> None:
    page.set_input_files("input[name=files]", [{"name": "minutes.md", "mimeType": "text/markdown", "buffer": content}])


def test_files_over_the_limit_are_refused_in_the_form_before_anything_is_sent(documents_page):
    page = documents_page
    uploads = []
    page.on("request", lambda request: uploads.append(request) if request.method == "POST" else None)
    assert "at most 1.0 MB together" in " ".join(page.locator("#workspace form").inner_text().split())

    _choose(page, TOO_LARGE)
    said = page.locator("#upload-problem")
    sync_api.expect(said).to_have_text(re.compile(r"This file comes to 1\.\d MB; an upload may be at most 1\.0 MB"))
    page.click("#workspace button[type=submit]")
    page.wait_for_timeout(500)

    assert uploads == []
    assert page.locator("#request-problem").is_hidden()
    _choose(page, SMALL)  # other files: the form may be sent again
    sync_api.expect(said).to_be_hidden()
    assert page.locator("input[name=files]").evaluate("field => field.validity.valid")


def test_a_refusal_by_the_server_is_said_with_its_reason(documents_page):
    page = documents_page
    # The form is told of a larger limit than the server's, as a stale page would be: the server refuses (413) and
    # closes the connection with the body unread. Whether the browser reads that answer before the connection
    # closes, or sees only the closed connection, the banner gives the size as the reason.
    page.locator("#workspace form").evaluate("form => form.dataset.maxBytes = String(10 * 1024 * 1024)")
    _choose(page, TOO_LARGE)
    page.click("#workspace button[type=submit]")

    banner = page.locator("#request-problem")
    sync_api.expect(banner).to_have_text(
        re.compile(r"larger than the limit of 1 MB and was not read|closed the connection before it took the files")
    )
    sync_api.expect(page.locator("#workspace form")).to_be_visible()  # the page stays as it was


def test_the_server_s_413_and_a_dropped_upload_are_each_said_in_the_banner(documents_page):
    page = documents_page
    page.locator("#workspace form").evaluate("form => form.dataset.maxBytes = String(10 * 1024 * 1024)")
    reason = "The request is larger than the limit of 1 MB and was not read. Send fewer or smaller files at a time."
    page.route(
        "**/documents/upload/",
        lambda route: route.fulfill(
            status=413, body=reason, headers={"Content-Type": "text/plain; charset=utf-8", "HX-Reswap": "none"}
        ),
    )
    _choose(page, SMALL)
    page.click("#workspace button[type=submit]")
    banner = page.locator("#request-problem")
    sync_api.expect(banner).to_have_text(reason)

    page.unroute("**/documents/upload/")
    page.route("**/documents/upload/", lambda route: route.abort("connectionreset"))
    page.click("#workspace button[type=submit]")
    sync_api.expect(banner).to_contain_text("An upload may be at most 10.0 MB together")
