"""The Content-Security-Policy: scripts and styles from the app's own files only, and templates that keep to it (the
browser's view of it: tests/e2e/test_content_security_policy.py)."""

import re

import pytest

from tests.conftest import PROJECT_ROOT

TEMPLATES = sorted([*PROJECT_ROOT.glob("templates/**/*.html"), *PROJECT_ROOT.glob("kb/*/templates/**/*.html")])


def test_every_page_gets_a_policy_without_inline_script_or_style(client):
    policy = client.get("/accounts/login/")["Content-Security-Policy"]

    directives = dict(directive.strip().split(" ", 1) for directive in policy.split(";"))
    assert directives["script-src"] == "'self'" and directives["style-src"] == "'self'"
    assert directives["default-src"] == "'self'" and directives["object-src"] == "'none'"
    assert "unsafe" not in policy


@pytest.mark.parametrize("template", TEMPLATES, ids=lambda path: str(path.relative_to(PROJECT_ROOT)))
def test_templates_hold_no_inline_script_style_or_event_handler(template):
    html = template.read_text()

    scripts = re.findall(r"<script\b[^>]*>", html)
    assert all("src=" in tag or 'type="application/json"' in tag for tag in scripts), scripts
    assert not re.search(r"<style\b", html)
    assert not re.search(r"\sstyle=", html)
    assert not re.search(r"\son[a-z]+=", html)
    assert not re.search(r"\shx-on", html)


def test_htmx_is_told_to_add_no_inline_styles_nor_to_eval():
    base = (PROJECT_ROOT / "templates" / "base.html").read_text()

    assert '"includeIndicatorStyles": false' in base and '"allowEval": false' in base
