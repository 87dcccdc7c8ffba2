"""Sampling the figures into the table the page reads, and the workers' heartbeat."""

import time
from datetime import timedelta
from types import SimpleNamespace

import pytest
from django.urls import reverse
from django.utils import timezone

from kb.operations.models import OperationsSample, WorkerHeartbeat
from kb.operations.services import operations_sample_take
from kb.operations.tasks import heartbeat_start, heartbeat_stop
from tests.factories import PARKING_NOTE, ingested_document, make_collection, make_department


@pytest.mark.django_db
def test_a_sample_holds_the_ingestion_and_traffic_of_the_interval_since_the_last(client, settings):
    settings.KB_OPERATIONS_SAMPLE_SECONDS = 0.1
    collection = make_collection(owner=make_department())
    first = operations_sample_take()

    document = ingested_document(collection=collection, name="parking.md", content=PARKING_NOTE)
    for _ in range(3):
        client.get(reverse("login"))
    time.sleep(0.1)
    second = operations_sample_take()

    per_minute = 60 / (second.taken_at - first.taken_at).total_seconds()
    assert first.figures["documents"] is None and first.figures["http_p50"] is None  # no interval yet
    assert second.figures["documents"] == pytest.approx(per_minute)
    assert second.figures["chunks"] == pytest.approx(document.current_version.chunk_count * per_minute)
    assert second.figures["http_requests"] == pytest.approx(3 * per_minute)
    assert 0 < second.figures["http_p50"] < 10
    assert second.figures["backlog_queued"] == 0 and second.figures["database_bytes"] > 0


@pytest.mark.django_db
def test_a_sample_asked_again_too_soon_is_not_taken_and_old_ones_go(settings):
    settings.KB_OPERATIONS_SAMPLE_SECONDS = 60
    settings.KB_OPERATIONS_RETENTION_HOURS = 48
    expired = OperationsSample.objects.create(taken_at=timezone.now() - timedelta(hours=49), figures={}, totals={})

    taken = operations_sample_take()

    assert taken is not None and operations_sample_take() is None  # a late task right behind it
    assert list(OperationsSample.objects.all()) == [taken]
    assert not OperationsSample.objects.filter(pk=expired.pk).exists()


@pytest.mark.django_db(transaction=True)
def test_a_worker_beats_from_its_own_thread_until_it_stops(settings):
    settings.KB_WORKER_HEARTBEAT_SECONDS = 0.2
    heartbeat_start(sender=SimpleNamespace(hostname="ingest@test-host"))
    try:
        deadline = time.monotonic() + 10
        while not WorkerHeartbeat.objects.filter(hostname="ingest@test-host").exists():
            assert time.monotonic() < deadline, "no heartbeat recorded"
            time.sleep(0.05)
        first_seen = WorkerHeartbeat.objects.get().seen_at
        time.sleep(0.6)
        assert WorkerHeartbeat.objects.get().seen_at > first_seen  # it keeps beating
    finally:
        heartbeat_stop()

    assert WorkerHeartbeat.objects.get().stopped_at is not None
