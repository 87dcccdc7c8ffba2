"""The figures /metrics shows and the sampler reads: every web and worker process's own (kb.platform.metrics), the
ones read at the moment of asking (disk use, ingestion backlog, this machine's GPU memory), and the engines', relayed
from the serving process so that a scraper needs one address and one token, never the inference key.
"""

import logging
import os
import time
from collections.abc import Iterator
from pathlib import Path

from django.conf import settings
from django.db import DatabaseError, connection
from prometheus_client import REGISTRY, CollectorRegistry, generate_latest, multiprocess
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.metrics_core import Metric
from prometheus_client.parser import text_string_to_metric_families

from inference.engine import ChatBackend
from inference.metrics import GpuMemoryCollector
from inference.types import EngineError
from kb.documents.selectors import ingestion_backlog
from kb.operations.engines import engine_backend
from kb.platform.metrics import MULTIPROCESS_DIR_VARIABLE

logger = logging.getLogger(__name__)

# Walking the uploads' folder costs time on a large library: its size is measured at most this often.
DISK_USE_TTL_SECONDS = 60.0
_ENGINE_PREFIX = "kb_inference_"


def multiprocess_dir() -> Path | None:
    directory = os.environ.get(MULTIPROCESS_DIR_VARIABLE)
    return Path(directory) if directory else None


class _ProcessesFigures:
    """Every web and worker process's figures where they share a folder, else this process's own."""

    def collect(self) -> Iterator[Metric]:
        directory = multiprocess_dir()
        if directory is None:
            families = REGISTRY.collect()
        else:
            _dead_processes_forgotten(directory)
            families = multiprocess.MultiProcessCollector(None, path=str(directory)).collect()
        # An engine hosted in a web process (the single-process mode) is relayed with the engines' figures.
        yield from (family for family in families if not family.name.startswith(_ENGINE_PREFIX))


def _dead_processes_forgotten(directory: Path) -> None:
    """A process that died without saying so (killed) leaves its requests-in-progress behind: the files of live
    gauges whose process is gone are removed. The folder belongs to the processes of one machine."""
    for path in directory.glob("gauge_live*_*.db"):
        pid = int(path.stem.rpartition("_")[2])
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            multiprocess.mark_process_dead(pid, str(directory))
        except PermissionError:  # alive, another user's
            pass


class _MomentFigures:
    """Figures read when asked: disk use, the ingestion backlog (from the database), this machine's GPU memory."""

    def collect(self) -> Iterator[Metric]:
        disk = GaugeMetricFamily(
            "kb_disk_used_bytes", "Disk used by the uploads (media) and the database", labels=["area"]
        )
        for area, used in disk_use().items():
            disk.add_metric([area], used)
        yield disk
        try:
            backlog = ingestion_backlog()
        except DatabaseError as error:
            logger.warning("ingestion backlog unknown: %s", error)
        else:
            family = GaugeMetricFamily(
                "kb_ingestion_backlog", "Document versions waiting for or in ingestion", labels=["status"]
            )
            for status, count in backlog.items():
                family.add_metric([status], count)
            yield family
        yield from GpuMemoryCollector(prefix="kb").collect()


# Measured at (monotonic seconds), by the folders measured.
_disk_use: dict[tuple[str, str], tuple[float, dict[str, int]]] = {}


def disk_use() -> dict[str, int]:
    """Bytes on disk of the uploads and of the database: the embedded server's folder (var/pg: its databases and
    write-ahead log), or an external database's own size as PostgreSQL reports it."""
    folders = (str(settings.MEDIA_ROOT), "" if settings.DATABASE_URL_FROM_ENV else str(settings.EMBEDDED_PG_DIR))
    measured_at, use = _disk_use.get(folders, (-DISK_USE_TTL_SECONDS, {}))
    if time.monotonic() - measured_at < DISK_USE_TTL_SECONDS:
        return use
    use = {"media": _folder_bytes(Path(settings.MEDIA_ROOT))}
    if settings.DATABASE_URL_FROM_ENV:
        try:
            with connection.cursor() as cursor:
                cursor.execute("SELECT pg_database_size(current_database())")
                use["database"] = cursor.fetchone()[0]
        except DatabaseError as error:
            logger.warning("database size unknown: %s", error)
    else:
        use["database"] = _folder_bytes(settings.EMBEDDED_PG_DIR)
    _disk_use[folders] = (time.monotonic(), use)
    return use


def _folder_bytes(folder: Path) -> int:
    """What the files under `folder` occupy on disk (allocated blocks, as du counts), 0 for a missing folder."""
    total = 0
    for root, _, files in os.walk(folder):
        for name in files:
            try:
                total += os.lstat(os.path.join(root, name)).st_blocks * 512
            except FileNotFoundError:  # removed while walking
                continue
    return total


def app_registry() -> CollectorRegistry:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_ProcessesFigures())
    registry.register(_MomentFigures())
    return registry


def engine_exposition(backend: ChatBackend | None) -> tuple[str, str]:
    """The engines' figures in Prometheus text form, and why there are none ("" when read)."""
    if backend is None:
        return "", "the engines run inside the web process (KB_INFERENCE_URL is empty): see its /metrics"
    try:
        return backend.metrics_exposition(), ""
    except EngineError as error:  # the serving process down or refusing us: its figures are missing, ours are not
        return "", str(error)


def engine_families(backend: ChatBackend | None) -> list[Metric]:
    text, _ = engine_exposition(backend)
    return list(text_string_to_metric_families(text))


def metrics_exposition() -> bytes:
    """What /metrics answers: the app's figures, then the engines' as the serving process gave them, with
    kb_serving_up saying whether it did."""
    engines, problem = engine_exposition(engine_backend(load_here=True))
    registry = app_registry()
    registry.register(_ServingUp(up=not problem))
    return generate_latest(registry) + engines.encode()


class _ServingUp:
    # A family made when asked: a Gauge would be written to the processes' shared folder in multiprocess mode.
    def __init__(self, *, up: bool) -> None:
        self.up = up

    def collect(self) -> Iterator[Metric]:
        yield GaugeMetricFamily("kb_serving_up", "Whether the engines' figures could be read just now", value=self.up)
