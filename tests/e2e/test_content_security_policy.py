"""The Content-Security-Policy in a real browser: the main pages, an answer streaming in, a PDF passage drawn by
pdf.js (its worker included), the evaluation chart and the admin, with no violation reported."""

from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from kb.documents.models import Chunk
from kb.evaluation.models import EvaluationRun, EvaluationSet
from tests.e2e.pages import ingested_by_the_worker, log_in
from tests.factories import make_collection, make_department, make_superuser, make_user, upload
from tests.pdfs import faq_handbook_pdf

sync_api = pytest.importorskip("playwright.sync_api")

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

# What the page reports itself; Chromium also says "Refused to ..." on the console, workers' refusals included.
RECORD_VIOLATIONS = """
window.cspViolations = [];
document.addEventListener("securitypolicyviolation", (event) => window.cspViolations.push(
  `${event.violatedDirective} blocked ${event.blockedURI} at ${event.sourceFile}:${event.lineNumber}`));
"""


class Violations:
    def __init__(self) -> None:
        self.console: list[str] = []

    def prepare(self, context) -> None:
        context.add_init_script(RECORD_VIOLATIONS)
        context.on("console", self._console)

    def _console(self, message) -> None:
        if "Content Security Policy" in message.text or "Refused to" in message.text:
            self.console.append(message.text)

    def on(self, page, where: str) -> list[str]:
        return [f"{where}: {line}" for line in page.evaluate("window.cspViolations")]


def _finished_run(evaluation_set: EvaluationSet, *, recall: float, minutes_ago: int) -> None:
    run = EvaluationRun.objects.create(
        evaluation_set=evaluation_set,
        owner=evaluation_set.created_by,
        status=EvaluationRun.Status.DONE,
        summary={"hybrid": {"recall@5": recall, "mrr@10": recall / 2}},
    )
    finished = timezone.now() - timedelta(minutes=minutes_ago)
    EvaluationRun.objects.filter(pk=run.pk).update(created_at=finished, finished_at=finished)


def test_the_main_pages_work_under_the_policy_without_a_violation(live_stack, browser, settings, python_docs):
    settings.MEDIA_ROOT = live_stack["media_root"]  # where the worker and the web server read the originals
    department = make_department("Engineering")
    lead = make_user(department=department, admin=True, username="eng-lead")
    make_user(department=department, username="erin")
    root_user = make_superuser("root")
    root_user.is_staff = True  # the admin's pages too
    root_user.save()
    make_department("Platform", parent=department)  # the organisation page indents it
    data, _ = faq_handbook_pdf(python_docs)
    version = upload(user=lead, collection=make_collection(owner=department), name="python-faq.pdf", content=data)
    evaluation_set = EvaluationSet.objects.create(name="FAQ", department=department, created_by=lead)
    _finished_run(evaluation_set, recall=0.5, minutes_ago=10)
    _finished_run(evaluation_set, recall=0.75, minutes_ago=5)
    ingested_by_the_worker(version)
    violations = Violations()
    found: list[str] = []

    erin = log_in(browser, live_stack["url"], "erin", prepare=violations.prepare)
    erin.get_by_label("Question").fill("Why does Python use indentation for grouping of statements?")
    erin.get_by_role("button", name="Ask").click()
    sync_api.expect(erin.locator(".exchange.done .answer-text")).not_to_be_empty(timeout=120_000)
    found += violations.on(erin, "ask")
    erin.goto(reverse("search:passage", args=[Chunk.objects.filter(version=version).first().pk]))
    sync_api.expect(erin.locator("[data-pdf-passage].rendered")).to_be_visible(timeout=30_000)
    found += violations.on(erin, "pdf passage")

    lead_page = log_in(browser, live_stack["url"], "eng-lead", prepare=violations.prepare)
    lead_page.goto(reverse("evaluation:set", args=[evaluation_set.pk]))
    sync_api.expect(lead_page.locator(".evaluation-chart[data-drawn=yes] canvas")).to_be_visible(timeout=10_000)
    found += violations.on(lead_page, "evaluation chart")
    lead_page.goto(reverse("accounts:organisation"))
    sync_api.expect(lead_page.locator(".department.depth-1")).to_contain_text("Platform")  # indented by its class
    found += violations.on(lead_page, "organisation")
    for name in ("documents:page", "documents:batches", "documents:access", "audit:history"):
        lead_page.goto(reverse(name))
        lead_page.wait_for_load_state("networkidle")
        found += violations.on(lead_page, name)

    root = log_in(browser, live_stack["url"], "root", prepare=violations.prepare)
    for url in (reverse("audit:queries"), reverse("admin:index"), reverse("admin:accounts_user_changelist")):
        root.goto(url)
        root.wait_for_load_state("networkidle")
        found += violations.on(root, url)

    assert found == [] and violations.console == []
