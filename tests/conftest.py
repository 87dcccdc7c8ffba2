import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import kombu
import psycopg
import pytest
from django.conf import settings

PYTHON_DOCS = Path("/usr/share/doc/python3.11/html")
PROJECT_ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(autouse=True)
def _media_root(settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path / "media"


@pytest.fixture(scope="session", autouse=True)
def _keyword_searchers_disconnected_before_the_test_database_is_dropped(django_db_setup):
    yield
    from kb.search.selectors import keyword_connections_close

    keyword_connections_close()


@pytest.fixture(scope="module", autouse=True)
def _chunk_index_vacuumed(django_db_setup, django_db_blocker):
    """Every test's passages are rolled back, and stay in the HNSW index as dead entries until a vacuum: after
    hundreds of ingesting tests a filtered vector search walks past pgvector's hnsw.max_scan_tuples of them before it
    reaches a live readable row, and returns fewer than k. Autovacuum clears them in a running installation; here
    each module starts from a vacuumed index."""
    from django.db import connection

    if not connection.settings_dict["NAME"].startswith("test_"):
        return  # no test in this run uses the database, so none was set up: this is not the test database
    with django_db_blocker.unblock():
        with connection.cursor() as cursor:
            cursor.execute("VACUUM documents_chunk")


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


def database_url_for_app_processes() -> str:
    """The test database as a URL for the app's own processes (the embedded server's socket directory is `host`)."""
    from django.db import connection

    database = connection.settings_dict
    host = database["HOST"] or database.get("OPTIONS", {}).get("host", "")
    return f"postgres://{database['USER']}@/{database['NAME']}?host={host}"


def fresh_database(name: str) -> str:
    """A new, empty database `name` on the suite's PostgreSQL (one a run left behind is dropped first); the host to
    reach it by (the server's socket folder)."""
    from django.db import connection

    host = connection.settings_dict["HOST"] or connection.settings_dict["OPTIONS"]["host"]
    with psycopg.connect(host=host, user="postgres", dbname="postgres", autocommit=True) as admin_connection:
        admin_connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin_connection.execute(f'CREATE DATABASE "{name}"')
    return host


def fresh_broker(name: str) -> str:
    """A broker of a test's own (kombu's SQLAlchemy transport on a fresh database), so that no other worker of the
    session takes its jobs, with kombu's tables made here: a worker and a process sending it jobs would otherwise both
    create them at once, and the loser of that race (a duplicate CREATE SEQUENCE) dies."""
    url = f"sqla+postgresql+psycopg://postgres@/{name}?host={fresh_database(name)}"
    with kombu.Connection(url) as broker:
        broker.default_channel.session.close()
    return url


def app_process_environment(*, database_url: str, broker_url: str, media_root: Path) -> dict[str, str]:
    return {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "tests.settings",
        "DATABASE_URL": database_url,
        "CELERY_BROKER_URL": broker_url,
        "KB_MEDIA_ROOT": str(media_root),
        "LOG_LEVEL": "WARNING",
    }


def start_worker(environment: dict[str, str], log_path: Path) -> subprocess.Popen:
    with open(log_path, "wb") as log:
        return subprocess.Popen(
            [
                sys.executable,
                "-m",
                "celery",
                "-A",
                "kb",
                "worker",
                "--pool=solo",
                "--loglevel=INFO",
                "--hostname=test@%h",
                "--without-mingle",
                "--without-gossip",
            ],
            cwd=PROJECT_ROOT,
            env=environment,
            stdout=log,
            stderr=subprocess.STDOUT,
        )


def start_web_server(environment: dict[str, str], log_path: Path, port: int) -> subprocess.Popen:
    """The app's real web server (uvicorn, ASGI) on 127.0.0.1:port."""
    with open(log_path, "wb") as log:
        return subprocess.Popen(
            [sys.executable, "-m", "uvicorn", "kb.asgi:application", "--host", "127.0.0.1", "--port", str(port)],
            cwd=PROJECT_ROOT,
            env=environment,
            stdout=log,
            stderr=subprocess.STDOUT,
        )


def stop_processes(*processes: subprocess.Popen) -> None:
    for process in processes:
        process.terminate()
    for process in processes:
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()


@pytest.fixture(scope="session")
def live_stack(django_db_setup, django_db_blocker, tmp_path_factory):
    """The real web server (ASGI, with the LLM) and a real Celery worker, on the test database and broker."""
    from kb.celery import app

    with django_db_blocker.unblock():
        database_url = database_url_for_app_processes()
    media_root = tmp_path_factory.mktemp("live-media")
    environment = app_process_environment(
        database_url=database_url, broker_url=settings.CELERY_BROKER_URL, media_root=media_root
    )
    app.control.purge()  # messages left by an interrupted earlier run name rows that no longer exist
    logs = tmp_path_factory.mktemp("live-logs")
    worker = start_worker(environment, logs / "worker.log")
    port = _free_port()
    web = start_web_server(environment, logs / "web.log", port)
    base_url = f"http://127.0.0.1:{port}"
    try:
        _wait_until_answering(f"{base_url}/accounts/login/", [worker, web], timeout=180)
        yield {"url": base_url, "media_root": media_root, "worker": worker, "logs": logs}
    finally:
        stop_processes(web, worker)
