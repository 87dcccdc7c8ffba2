import re
import time
from collections.abc import Callable

from kb.documents.models import DocumentVersion
from tests.factories import PASSWORD


def log_in(browser, base_url: str, username: str, *, viewport: dict | None = None, prepare: Callable | None = None):
    """A new browser context logged in as `username`; `prepare` gets the context first (listeners, init scripts)."""
    context = browser.new_context(base_url=base_url, viewport=viewport)
    if prepare is not None:
        prepare(context)
    page = context.new_page()
    page.goto("/accounts/login/")
    page.fill("input[name=username]", username)
    page.fill("input[name=password]", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url(re.compile(r"/$"))
    return page


def ingested_by_the_worker(version: DocumentVersion, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        version.refresh_from_db()
        if version.is_finished:
            assert version.status == DocumentVersion.Status.READY, version.failure_reason
            return
        time.sleep(0.5)
    raise TimeoutError(f"the worker did not ingest {version} within {timeout} s")
