"""From Prometheus figures to what the operations page plots: cumulative totals at a moment, and the figures of the
interval between two moments (rates per minute, latency percentiles, levels).

Counters and histograms only ever grow while their processes live; a total that fell means its processes restarted
(or the figures folder was emptied), and the interval's increase is then the new total, as Prometheus's rate() takes
it. Percentiles come from the increase of histogram buckets, interpolated inside a bucket as histogram_quantile does.
"""

import math
from collections import defaultdict
from collections.abc import Iterable

from prometheus_client.metrics_core import Metric

# Histograms whose increase gives percentiles: Prometheus name → key in the totals.
_HISTOGRAMS = {
    "kb_http_request_duration_seconds": "http",
    "kb_retrieval_seconds": "retrieval",
    "kb_answer_time_to_first_token_seconds": "ttft",
}
# Counters, summed over their labels, or split by the one label named.
_COUNTERS = {
    "kb_answer_output_tokens_total": ("answer_tokens", None),
    "kb_answer_generation_seconds_total": ("generation_seconds", None),
    "kb_asks_refused_busy_total": ("asks_refused_busy", None),
    "kb_ingested_chunks_total": ("chunks", None),
    "kb_answers_total": ("answers", "outcome"),
    "kb_ingested_documents_total": ("documents", "outcome"),
}
# Levels at the moment of sampling (gauges), summed over their labels, or split by the one label named.
_GAUGES = {
    "kb_http_requests_in_progress": ("http_in_progress", None),
    "kb_ingestion_backlog": ("backlog", "status"),
    "kb_disk_used_bytes": ("disk", "area"),
    "kb_inference_queued_requests": ("engine_queued", None),
    "kb_inference_running_requests": ("engine_running", None),
    "kb_inference_gpu_memory_used_bytes": ("engine_gpu_used", None),
    "kb_inference_gpu_memory_total_bytes": ("engine_gpu_total", None),
    "kb_gpu_memory_used_bytes": ("gpu_used", None),
    "kb_gpu_memory_total_bytes": ("gpu_total", None),
}
# Answers that ended in a fault of the model or the app, and with a busy notice.
_FAULT_OUTCOMES = ("engine_error", "failed")

# Every figure a sample holds, with what it means; the page's charts name them.
FIGURES = {
    "http_p50": "page latency, median (s)",
    "http_p95": "page latency, 95th percentile (s)",
    "http_p99": "page latency, 99th percentile (s)",
    "http_requests": "requests per minute",
    "http_errors": "server errors (5xx) per minute",
    "http_in_progress": "requests in progress",
    "retrieval_p50": "retrieval, median (s)",
    "retrieval_p95": "retrieval, 95th percentile (s)",
    "ttft_p50": "first token, median (s)",
    "ttft_p95": "first token, 95th percentile (s)",
    "tokens_per_second": "output tokens per second",
    "answers": "answers per minute",
    "answer_faults": "answers failed per minute (engine faults included)",
    "busy": "busy notices per minute",
    "documents": "documents ingested per minute",
    "document_failures": "documents failed per minute",
    "chunks": "passages ingested per minute",
    "backlog_queued": "documents queued",
    "backlog_in_progress": "documents being ingested",
    "engine_queued": "engine queue: requests waiting",
    "engine_running": "engine: requests generating",
    "gpu_used_bytes": "GPU memory used",
    "gpu_total_bytes": "GPU memory in all",
    "media_bytes": "uploads on disk",
    "database_bytes": "database on disk",
}


def totals_and_levels(families: Iterable[Metric]) -> tuple[dict[str, float], dict[str, float]]:
    """The cumulative totals (keys "http:le=0.5", "answers:outcome=busy", "chunks") and the gauges' levels."""
    totals: dict[str, float] = defaultdict(float)
    levels: dict[str, float] = defaultdict(float)
    for family in families:
        for sample in family.samples:
            if sample.name.removesuffix("_bucket") in _HISTOGRAMS and sample.name.endswith("_bucket"):
                totals[f"{_HISTOGRAMS[sample.name.removesuffix('_bucket')]}:le={sample.labels['le']}"] += sample.value
                if sample.labels.get("status", "").startswith("5") and sample.labels["le"] == "+Inf":
                    totals["http_errors"] += sample.value
            elif sample.name in _COUNTERS:
                key, label = _COUNTERS[sample.name]
                totals[f"{key}:{label}={sample.labels.get(label, '')}" if label else key] += sample.value
            elif sample.name in _GAUGES:
                key, label = _GAUGES[sample.name]
                levels[f"{key}:{label}={sample.labels.get(label, '')}" if label else key] += sample.value
    return dict(totals), dict(levels)


def increase(before: dict[str, float] | None, after: dict[str, float]) -> dict[str, float]:
    """What each total grew by; a group of totals (the part of a key before ':') of which one fell restarted, and
    its increase is its new value."""
    before = before or {}
    groups: dict[str, list[str]] = defaultdict(list)
    for key in after:
        groups[key.partition(":")[0]].append(key)
    grown: dict[str, float] = {}
    for keys in groups.values():
        restarted = any(after[key] < before.get(key, 0.0) for key in keys)
        for key in keys:
            grown[key] = after[key] if restarted else after[key] - before.get(key, 0.0)
    return grown


def quantile(q: float, buckets: list[tuple[float, float]]) -> float | None:
    """The q-quantile of observations counted in cumulative buckets [(upper bound, count)], sorted by bound; None
    when nothing was observed. Inside a bucket, linear; in the last (+Inf) one, its lower bound."""
    if not buckets or buckets[-1][1] <= 0:
        return None
    rank = q * buckets[-1][1]
    lower, below = 0.0, 0.0
    for bound, count in buckets:
        if count >= rank:
            if math.isinf(bound):
                return lower
            if count == below:
                return bound
            return lower + (bound - lower) * (rank - below) / (count - below)
        lower, below = bound, count
    return lower


def _buckets(grown: dict[str, float], histogram: str) -> list[tuple[float, float]]:
    prefix = f"{histogram}:le="
    return sorted((float(key.removeprefix(prefix)), value) for key, value in grown.items() if key.startswith(prefix))


def _labelled(values: dict[str, float], key: str) -> dict[str, float]:
    prefix = f"{key}:"
    return {name.partition("=")[2]: value for name, value in values.items() if name.startswith(prefix)}


def figures_between(
    before: dict[str, float] | None, after: dict[str, float], levels: dict[str, float], *, seconds: float
) -> dict[str, float | None]:
    """The figures of one interval (FIGURES). Without a previous sample (`before` None) or time between them, the
    rates and percentiles are None: there is no interval to measure."""
    figures: dict[str, float | None] = dict.fromkeys(FIGURES)
    backlog = _labelled(levels, "backlog")
    disk = _labelled(levels, "disk")
    figures.update(
        http_in_progress=levels.get("http_in_progress"),
        backlog_queued=backlog.get("queued"),
        backlog_in_progress=sum(count for status, count in backlog.items() if status != "queued") if backlog else None,
        engine_queued=levels.get("engine_queued"),
        engine_running=levels.get("engine_running"),
        # The serving process's GPU where it reports one, else this machine's.
        gpu_used_bytes=levels.get("engine_gpu_used", levels.get("gpu_used")),
        gpu_total_bytes=levels.get("engine_gpu_total", levels.get("gpu_total")),
        media_bytes=disk.get("media"),
        database_bytes=disk.get("database"),
    )
    if before is None or seconds <= 0:
        return figures
    grown = increase(before, after)
    per_minute = 60.0 / seconds
    answers = _labelled(grown, "answers")
    documents = _labelled(grown, "documents")
    http = _buckets(grown, "http")
    for name, q in (("http_p50", 0.5), ("http_p95", 0.95), ("http_p99", 0.99)):
        figures[name] = quantile(q, http)
    for histogram in ("retrieval", "ttft"):
        buckets = _buckets(grown, histogram)
        figures[f"{histogram}_p50"], figures[f"{histogram}_p95"] = quantile(0.5, buckets), quantile(0.95, buckets)
    generation_seconds = grown.get("generation_seconds", 0.0)
    figures.update(
        http_requests=(http[-1][1] if http else 0.0) * per_minute,
        http_errors=grown.get("http_errors", 0.0) * per_minute,
        tokens_per_second=grown.get("answer_tokens", 0.0) / generation_seconds if generation_seconds > 0 else None,
        answers=sum(answers.values()) * per_minute,
        answer_faults=sum(answers.get(outcome, 0.0) for outcome in _FAULT_OUTCOMES) * per_minute,
        busy=(answers.get("busy", 0.0) + grown.get("asks_refused_busy", 0.0)) * per_minute,
        documents=documents.get("ready", 0.0) * per_minute,
        document_failures=documents.get("failed", 0.0) * per_minute,
        chunks=grown.get("chunks", 0.0) * per_minute,
    )
    return figures
