"""The Operations page in a browser: its charts drawn by the vendored uPlot, redrawn when another span is chosen."""

from datetime import timedelta

import pytest
from django.utils import timezone

from kb.operations.models import OperationsSample
from tests.e2e.pages import log_in
from tests.factories import make_superuser

sync_api = pytest.importorskip("playwright.sync_api")

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]


def test_the_charts_are_drawn_from_the_sampled_figures_with_nothing_from_elsewhere(live_stack, browser):
    make_superuser("ops-root")
    for minutes_ago, p95 in ((3, 0.2), (2, 0.4), (1, 0.3)):
        OperationsSample.objects.create(
            taken_at=timezone.now() - timedelta(minutes=minutes_ago),
            figures={"http_p50": 0.1, "http_p95": p95, "busy": 1.0, "documents": 2.0},
            totals={},
        )
    page = log_in(browser, live_stack["url"], "ops-root")
    requested: list[str] = []
    page.on("request", lambda request: requested.append(request.url))

    page.goto("/operations/")
    charts = page.locator("#operations-charts .uplot")
    sync_api.expect(charts).to_have_count(9)
    sync_api.expect(page.locator("#operations-charts .uplot canvas").first).to_be_visible()

    page.select_option("select[name=hours]", "24")  # htmx swaps the figures in; the charts are drawn again
    sync_api.expect(page.locator("#operations h2", has_text="The last 24 hours")).to_be_visible()
    sync_api.expect(charts).to_have_count(9)
    assert requested and all(url.startswith(live_stack["url"]) for url in requested)
