import logging
import threading

from celery import shared_task
from celery.signals import worker_ready, worker_shutdown

OPERATIONS_SAMPLE = "kb.operations.tasks.operations_sample"
logger = logging.getLogger(__name__)


@shared_task(name=OPERATIONS_SAMPLE)
def operations_sample() -> None:
    """Every KB_OPERATIONS_SAMPLE_SECONDS from the scheduler, on its own queue so that a long ingestion queue does
    not hold it back (kb.settings: CELERY_TASK_QUEUES)."""
    from kb.operations.services import operations_sample_take

    operations_sample_take()


class _Heartbeat(threading.Thread):
    """Says the worker is alive from a thread of its own: a solo worker's main thread is busy for as long as a
    document takes to ingest, and that is no reason to call it gone."""

    def __init__(self, hostname: str) -> None:
        super().__init__(name="kb-worker-heartbeat", daemon=True)
        self.hostname = hostname
        self.stopping = threading.Event()

    def run(self) -> None:
        from django.conf import settings
        from django.db import DatabaseError, connections
        from django.utils import timezone

        from kb.operations.services import worker_heartbeat_record

        started_at = timezone.now()
        while True:
            try:
                worker_heartbeat_record(hostname=self.hostname, started_at=started_at)
            except DatabaseError as error:  # the database is down: readiness will say so by the silence
                logger.warning("worker heartbeat not recorded: %s", error)
            finally:
                connections.close_all()  # this thread's own connections, not held between beats
            if self.stopping.wait(settings.KB_WORKER_HEARTBEAT_SECONDS):
                return


_heartbeats: dict[str, _Heartbeat] = {}


@worker_ready.connect
def heartbeat_start(sender, **_) -> None:
    heartbeat = _heartbeats[sender.hostname] = _Heartbeat(sender.hostname)
    heartbeat.start()


@worker_shutdown.connect
def heartbeat_stop(**_) -> None:
    from django.db import DatabaseError, connections

    from kb.operations.services import worker_heartbeat_stop

    for hostname, heartbeat in list(_heartbeats.items()):
        heartbeat.stopping.set()
        heartbeat.join(timeout=5)
        try:
            worker_heartbeat_stop(hostname=hostname)
        except DatabaseError as error:
            logger.warning("worker stop not recorded: %s", error)
        finally:
            connections.close_all()
        del _heartbeats[hostname]
