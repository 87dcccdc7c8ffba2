import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from django.conf import settings

PYTHON_DOCS = Path("/usr/share/doc/python3.11/html")
PROJECT_ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(autouse=True)
def _media_root(settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path / "media"


@pytest.fixture(scope="session")
def python_docs() -> Path:
    if not (PYTHON_DOCS / "faq" / "design.html").exists():
        pytest.fail("Debian's python3.11-doc is needed for real test text: apt-get install python3.11-doc")
    return PYTHON_DOCS


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _wait_until_answering(url: str, processes: list[subprocess.Popen], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for process in processes:
            if process.poll() is not None:
                raise RuntimeError(f"{process.args} exited with {process.returncode} during start-up")
        try:
            with urllib.request.urlopen(url, timeout=2):
                return
        except OSError:
            time.sleep(0.5)
    raise TimeoutError(f"{url} did not answer within {timeout} s")


@pytest.fixture(scope="session")
def live_stack(django_db_setup, django_db_blocker, tmp_path_factory):
    """The real web server (ASGI, with the LLM) and a real Celery worker, on the test database and broker."""
    from django.db import connection

    with django_db_blocker.unblock():
        database = connection.settings_dict
    # The embedded server is reached through its socket directory, which the URL carries as `host`.
    host = database["HOST"] or database.get("OPTIONS", {}).get("host", "")
    media_root = tmp_path_factory.mktemp("live-media")
    port = _free_port()
    environment = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "tests.settings",
        "DATABASE_URL": f"postgres://{database['USER']}@/{database['NAME']}?host={host}",
        "CELERY_BROKER_URL": settings.CELERY_BROKER_URL,
        "KB_MEDIA_ROOT": str(media_root),
        "LOG_LEVEL": "WARNING",
    }
    from kb.celery import app

    app.control.purge()  # messages left by an interrupted earlier run name rows that no longer exist
    logs = tmp_path_factory.mktemp("live-logs")
    worker_log = open(logs / "worker.log", "wb")
    web_log = open(logs / "web.log", "wb")
    worker = subprocess.Popen(
        [sys.executable, "-m", "celery", "-A", "kb", "worker", "--pool=solo", "--loglevel=INFO",
         "--hostname=test@%h", "--without-mingle", "--without-gossip"],
        cwd=PROJECT_ROOT, env=environment, stdout=worker_log, stderr=subprocess.STDOUT,
    )
    web = subprocess.Popen(
        [sys.executable, "-m", "uvicorn", "kb.asgi:application", "--host", "127.0.0.1", "--port", str(port)],
        cwd=PROJECT_ROOT, env=environment, stdout=web_log, stderr=subprocess.STDOUT,
    )
    base_url = f"http://127.0.0.1:{port}"
    try:
        _wait_until_answering(f"{base_url}/accounts/login/", [worker, web], timeout=180)
        yield {"url": base_url, "media_root": media_root, "worker": worker, "logs": logs}
    finally:
        for process in (web, worker):
            process.terminate()
        for process in (web, worker):
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()
        worker_log.close()
        web_log.close()
