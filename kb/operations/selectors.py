"""Reads of operations telemetry: the sampled figures as the page's charts, and the workers' heartbeats. Neither
holds anything of a user's, so they take no acting user; the page that shows them is for superusers."""

from dataclasses import dataclass
from datetime import timedelta

from django.conf import settings
from django.utils import timezone

from kb.operations.models import OperationsSample, WorkerHeartbeat

# How far back the page can look; the table keeps KB_OPERATIONS_RETENTION_HOURS.
HOURS_SHOWN = (1, 6, 24, 48)
# A worker is taken for gone after missing this many heartbeats.
MISSED_HEARTBEATS = 3
GIB = 1024**3


@dataclass(frozen=True)
class ChartSpec:
    key: str
    title: str
    unit: str
    series: dict[str, str]  # label → figure (kb.operations.sampling.FIGURES)
    scale: float = 1.0


CHARTS = (
    ChartSpec("latency", "Page latency", "seconds", {"median": "http_p50", "95th": "http_p95", "99th": "http_p99"}),
    ChartSpec(
        "answer-latency",
        "Retrieval and first token",
        "seconds",
        {
            "retrieval median": "retrieval_p50",
            "retrieval 95th": "retrieval_p95",
            "first token median": "ttft_p50",
            "first token 95th": "ttft_p95",
        },
    ),
    ChartSpec("tokens", "Output tokens per second", "tokens/s", {"tokens/s": "tokens_per_second"}),
    ChartSpec(
        "errors",
        "Errors and busy notices",
        "per minute",
        {"server errors (5xx)": "http_errors", "failed answers": "answer_faults", "busy": "busy"},
    ),
    ChartSpec(
        "traffic",
        "Traffic",
        "per minute / now",
        {"requests/min": "http_requests", "answers/min": "answers", "requests in progress": "http_in_progress"},
    ),
    ChartSpec(
        "ingestion",
        "Ingestion throughput",
        "documents per minute",
        {"ingested": "documents", "failed": "document_failures"},
    ),
    ChartSpec("passages", "Passages ingested", "per minute", {"passages": "chunks"}),
    ChartSpec(
        "queues",
        "Ingestion backlog and engine queue",
        "count",
        {
            "documents queued": "backlog_queued",
            "documents in ingestion": "backlog_in_progress",
            "engine: waiting": "engine_queued",
            "engine: generating": "engine_running",
        },
    ),
    ChartSpec(
        "memory",
        "GPU memory and disk",
        "GiB",
        {"GPU used": "gpu_used_bytes", "uploads": "media_bytes", "database": "database_bytes"},
        scale=1 / GIB,
    ),
)


@dataclass(frozen=True)
class Chart:
    key: str
    title: str
    unit: str
    data: dict  # {"x": [Unix seconds], "series": {label: [value or None]}}, as kb/static/charts.js draws it

    @property
    def element_id(self) -> str:
        return f"operations-chart-{self.key}"


def operations_charts(*, hours: int) -> list[Chart]:
    samples = list(
        OperationsSample.objects.filter(taken_at__gte=timezone.now() - timedelta(hours=hours)).order_by("taken_at")
    )
    x = [int(sample.taken_at.timestamp()) for sample in samples]
    charts = []
    for spec in CHARTS:
        series = {
            label: [_scaled(sample.figures.get(figure), spec.scale) for sample in samples]
            for label, figure in spec.series.items()
        }
        charts.append(Chart(spec.key, spec.title, spec.unit, {"x": x, "series": series}))
    return charts


def _scaled(value: float | None, scale: float) -> float | None:
    return None if value is None else round(value * scale, 4)


def worker_silence_limit() -> timedelta:
    return timedelta(seconds=MISSED_HEARTBEATS * settings.KB_WORKER_HEARTBEAT_SECONDS)


def workers_alive() -> list[WorkerHeartbeat]:
    return list(WorkerHeartbeat.objects.filter(seen_at__gte=timezone.now() - worker_silence_limit(), stopped_at=None))


def workers_seen() -> list[WorkerHeartbeat]:
    """Every worker that has reported, alive or not, as the page lists them."""
    return list(WorkerHeartbeat.objects.all())
