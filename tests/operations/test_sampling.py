"""From Prometheus figures to the page's figures: percentiles of what an interval added, rates, restarts."""

import pytest
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from kb.operations.sampling import figures_between, increase, quantile, totals_and_levels
from kb.platform.metrics import LATENCY_BUCKETS


class Figures:
    """The app's instruments under their real names, in a registry of the test's own."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.http = Histogram(
            "kb_http_request_duration_seconds",
            "",
            ["view", "method", "status"],
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.answers = Counter("kb_answers", "", ["outcome"], registry=self.registry)
        self.refused = Counter("kb_asks_refused_busy", "", registry=self.registry)
        self.tokens = Counter("kb_answer_output_tokens", "", registry=self.registry)
        self.generation = Counter("kb_answer_generation_seconds", "", registry=self.registry)
        self.documents = Counter("kb_ingested_documents", "", ["outcome"], registry=self.registry)
        self.queued = Gauge("kb_inference_queued_requests", "", ["model"], registry=self.registry)

    def read(self):
        return totals_and_levels(self.registry.collect())


def test_percentiles_and_rates_are_of_what_the_interval_added():
    figures = Figures()
    for _ in range(100):  # before the interval: slow requests that must not weigh on it
        figures.http.labels(view="search:page", method="GET", status="200").observe(20.0)
    before, _ = figures.read()
    for index in range(100):
        figures.http.labels(view="chat:page", method="GET", status="200").observe(0.04 if index < 90 else 0.8)
    figures.http.labels(view="chat:ask", method="POST", status="503").observe(0.02)
    figures.answers.labels(outcome="answered").inc(3)
    figures.answers.labels(outcome="engine_error").inc()
    figures.answers.labels(outcome="busy").inc(2)
    figures.refused.inc()
    figures.tokens.inc(400)
    figures.generation.inc(8.0)
    figures.documents.labels(outcome="ready").inc(4)
    figures.queued.labels(model="qwen3.5-9b").set(3)
    figures.queued.labels(model="qwen3.5-4b").set(2)
    after, levels = figures.read()

    result = figures_between(before, after, levels, seconds=120)

    assert 0.025 < result["http_p50"] <= 0.05  # inside the bucket that holds the median
    assert 0.5 < result["http_p95"] <= 1.0 and result["http_p99"] <= 1.0  # the 20 s requests were before
    assert result["http_requests"] == pytest.approx(101 / 2)
    assert result["http_errors"] == pytest.approx(0.5)  # one 503 in two minutes
    assert result["answers"] == pytest.approx(3.0) and result["answer_faults"] == pytest.approx(0.5)
    assert result["busy"] == pytest.approx(1.5)  # two busy answers and one ask refused, in two minutes
    assert result["tokens_per_second"] == pytest.approx(50.0)
    assert result["documents"] == pytest.approx(2.0) and result["document_failures"] == 0
    assert result["engine_queued"] == 5  # both models' queues


def test_without_an_earlier_sample_only_the_levels_are_known():
    figures = Figures()
    figures.http.labels(view="chat:page", method="GET", status="200").observe(0.1)
    figures.queued.labels(model="smollm2-135m").set(1)
    totals, levels = figures.read()

    result = figures_between(None, totals, levels, seconds=0)

    assert result["engine_queued"] == 1
    assert result["http_p50"] is None and result["http_requests"] is None and result["tokens_per_second"] is None


def test_a_group_of_totals_that_fell_restarted_and_counts_from_zero():
    before = {"http:le=0.1": 50.0, "http:le=+Inf": 60.0, "chunks": 900.0, "answers:outcome=busy": 2.0}
    after = {"http:le=0.1": 3.0, "http:le=+Inf": 4.0, "chunks": 950.0, "answers:outcome=busy": 2.0}

    assert increase(before, after) == {
        "http:le=0.1": 3.0,
        "http:le=+Inf": 4.0,
        "chunks": 50.0,
        "answers:outcome=busy": 0.0,
    }


def test_quantiles_interpolate_inside_a_bucket_and_stop_at_the_last_finite_bound():
    buckets = [(0.1, 50.0), (0.5, 100.0), (float("inf"), 100.0)]
    assert quantile(0.5, buckets) == pytest.approx(0.1)
    assert quantile(0.75, buckets) == pytest.approx(0.3)
    assert quantile(0.99, [(0.1, 0.0), (1.0, 0.0), (float("inf"), 10.0)]) == 1.0
    assert quantile(0.5, [(0.1, 0.0), (float("inf"), 0.0)]) is None
