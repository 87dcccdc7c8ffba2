"""What the operations page reads: the figures of each minute, and which Celery workers are alive.

Both are telemetry with their own retention, not records: they are written without audit rows (one a minute would
bury the audit trail) and hold no user's name, question or document.
"""

from django.db import models


class OperationsSample(models.Model):
    """The operating figures of one sampling interval, as the page plots them (kept KB_OPERATIONS_RETENTION_HOURS)."""

    taken_at = models.DateTimeField(db_index=True)
    # Per-minute rates and percentiles over the interval since the previous sample, and levels at `taken_at`
    # (kb.operations.sampling.FIGURES); null where there was nothing to measure.
    figures = models.JSONField(default=dict)
    # The cumulative counters and histogram buckets at `taken_at`, which the next sample's figures are the increase of.
    totals = models.JSONField(default=dict)

    class Meta:
        ordering = ["taken_at"]

    def __str__(self) -> str:
        return f"operations figures at {self.taken_at:%Y-%m-%d %H:%M:%S}"


class WorkerHeartbeat(models.Model):
    """A Celery worker process says it is alive every KB_WORKER_HEARTBEAT_SECONDS, from a thread of its own, so a
    long ingestion does not silence it; worker readiness reads the last time it did."""

    hostname = models.CharField(max_length=255, unique=True)  # Celery's node name, e.g. ingest@host
    pid = models.PositiveIntegerField()
    started_at = models.DateTimeField()
    seen_at = models.DateTimeField()
    stopped_at = models.DateTimeField(null=True, blank=True)  # a clean shutdown; a crash just stops the heartbeat

    class Meta:
        ordering = ["hostname"]

    def __str__(self) -> str:
        return self.hostname
