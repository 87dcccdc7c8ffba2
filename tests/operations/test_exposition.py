"""/metrics's figures: every process's together through the shared folder, and those read when asked."""

import os
import signal
import subprocess
import sys
import time

import pytest

from kb.operations.exposition import app_registry, disk_use
from kb.operations.sampling import totals_and_levels
from kb.platform.metrics import MULTIPROCESS_DIR_VARIABLE, multiprocess_dir_emptied
from tests.conftest import PROJECT_ROOT
from tests.factories import make_collection, make_department, make_user, upload

pytestmark = pytest.mark.django_db

# What a web or worker process does to the figures; the instruments are the app's own.
_COUNTS = """
import sys, time
from kb.platform.metrics import HTTP_REQUEST_SECONDS, HTTP_REQUESTS_IN_PROGRESS, INGESTED_CHUNKS
HTTP_REQUEST_SECONDS.labels(view="chat:page", method="GET", status="200").observe(0.2)
INGESTED_CHUNKS.inc(7)
HTTP_REQUESTS_IN_PROGRESS.inc()
print("counted", flush=True)
if sys.argv[1] == "stay":
    time.sleep(600)
"""


def _process(folder, mode: str) -> subprocess.Popen:
    environment = {**os.environ, MULTIPROCESS_DIR_VARIABLE: str(folder)}
    process = subprocess.Popen(
        [sys.executable, "-c", _COUNTS, mode], cwd=PROJECT_ROOT, env=environment, stdout=subprocess.PIPE, text=True
    )
    assert process.stdout.readline().strip() == "counted"
    return process


def _totals_and_levels(monkeypatch, folder):
    monkeypatch.setenv(MULTIPROCESS_DIR_VARIABLE, str(folder))
    return totals_and_levels(app_registry().collect())


def test_the_figures_of_every_process_sharing_the_folder_are_read_together(tmp_path, monkeypatch):
    folder = multiprocess_dir_emptied(tmp_path / "metrics")
    finished = _process(folder, "exit")
    finished.wait(timeout=30)
    staying = _process(folder, "stay")
    try:
        totals, levels = _totals_and_levels(monkeypatch, folder)
        assert totals["chunks"] == 14 and totals["http:le=+Inf"] == 2
        assert levels["http_in_progress"] == 1  # the live process's request; the one that exited is forgotten
    finally:
        staying.send_signal(signal.SIGKILL)
        staying.wait(timeout=30)

    totals, levels = _totals_and_levels(monkeypatch, folder)

    assert levels.get("http_in_progress", 0) == 0  # killed without a word: its requests in progress went with it
    assert totals["chunks"] == 14  # what it counted stays counted


def test_a_new_deployment_counts_from_zero(tmp_path, monkeypatch):
    folder = multiprocess_dir_emptied(tmp_path / "metrics")
    _process(folder, "exit").wait(timeout=30)

    totals, _ = _totals_and_levels(monkeypatch, multiprocess_dir_emptied(folder))

    assert "chunks" not in totals


def test_the_backlog_and_the_disk_use_are_read_when_asked(settings, tmp_path):
    department = make_department()
    collection = make_collection(owner=department)
    upload(user=make_user(department=department, admin=True), collection=collection, name="a.txt", content=b"a" * 5000)
    settings.MEDIA_ROOT = tmp_path / "media-measured"
    (tmp_path / "media-measured").mkdir()
    (tmp_path / "media-measured" / "original.pdf").write_bytes(b"x" * 100_000)

    _, levels = totals_and_levels(app_registry().collect())

    assert levels["backlog:status=queued"] == 1 and levels["backlog:status=parsing"] == 0
    assert levels["disk:area=media"] >= 100_000 and levels["disk:area=database"] > 10_000_000
    assert disk_use()["media"] == levels["disk:area=media"]


def test_without_an_nvidia_driver_no_gpu_figure_is_made_up():
    pynvml = pytest.importorskip("pynvml")
    try:
        pynvml.nvmlInit()
    except pynvml.NVMLError:
        pass
    else:
        pynvml.nvmlShutdown()
        pytest.skip("this machine has an NVIDIA driver: test_gpu_memory_is_reported covers it")
    names = {family.name for family in app_registry().collect()}

    assert "kb_disk_used_bytes" in names and not any("gpu" in name for name in names)


@pytest.mark.gpu
def test_gpu_memory_is_reported_where_there_is_an_nvidia_driver():
    pynvml = pytest.importorskip("pynvml")
    try:
        pynvml.nvmlInit()
    except pynvml.NVMLError:
        pytest.skip("no NVIDIA driver here")
    pynvml.nvmlShutdown()
    started = time.monotonic()

    _, levels = totals_and_levels(app_registry().collect())

    assert levels["gpu_total"] > levels["gpu_used"] > 0 and time.monotonic() - started < 5
