"""Writes of operations telemetry: a sample of the figures, a worker's heartbeat. No audit rows: they record the
machine, not anyone's action, every minute (kb.operations.models)."""

import os
from datetime import datetime, timedelta

from django.conf import settings
from django.db import connection, transaction
from django.utils import timezone

from kb.operations.engines import engine_backend
from kb.operations.exposition import app_registry, engine_families
from kb.operations.models import OperationsSample, WorkerHeartbeat
from kb.operations.sampling import figures_between, totals_and_levels

# pg_advisory_xact_lock's key for taking a sample: two schedulers (or a retried task) never interleave.
_SAMPLE_LOCK = 0x6B62_6F70  # "kbop"


def operations_sample_take() -> OperationsSample | None:
    """Read the figures of every process and the engines now, and store the interval since the last sample; None
    when the last is younger than half the sampling interval (a late task behind another, a second scheduler)."""
    families = [*app_registry().collect(), *engine_families(engine_backend(load_here=False))]
    totals, levels = totals_and_levels(families)
    return _sample_store(taken_at=timezone.now(), totals=totals, levels=levels)


@transaction.atomic
def _sample_store(*, taken_at: datetime, totals: dict[str, float], levels: dict[str, float]) -> OperationsSample | None:
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_advisory_xact_lock(%s)", [_SAMPLE_LOCK])
    previous = OperationsSample.objects.order_by("-taken_at").first()
    seconds = (taken_at - previous.taken_at).total_seconds() if previous else 0.0
    if previous and seconds < settings.KB_OPERATIONS_SAMPLE_SECONDS / 2:
        return None
    sample = OperationsSample.objects.create(
        taken_at=taken_at,
        totals=totals,
        figures=figures_between(previous.totals if previous else None, totals, levels, seconds=seconds),
    )
    OperationsSample.objects.filter(
        taken_at__lt=taken_at - timedelta(hours=settings.KB_OPERATIONS_RETENTION_HOURS)
    ).delete()
    return sample


def worker_heartbeat_record(*, hostname: str, started_at: datetime) -> None:
    WorkerHeartbeat.objects.update_or_create(
        hostname=hostname,
        defaults={"pid": os.getpid(), "started_at": started_at, "seen_at": timezone.now(), "stopped_at": None},
    )


def worker_heartbeat_stop(*, hostname: str) -> None:
    WorkerHeartbeat.objects.filter(hostname=hostname, pid=os.getpid()).update(stopped_at=timezone.now())
