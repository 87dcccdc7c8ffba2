import re

from tests.factories import PASSWORD


def log_in(browser, base_url: str, username: str, *, viewport: dict | None = None):
    page = browser.new_context(base_url=base_url, viewport=viewport).new_page()
    page.goto("/accounts/login/")
    page.fill("input[name=username]", username)
    page.fill("input[name=password]", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url(re.compile(r"/$"))
    return page
