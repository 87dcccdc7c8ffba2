"""The embedded PostgreSQL starts when a process first needs it (a connection, a worker), never at an import."""

import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import psycopg
from django.conf import settings

from kb.platform.embedded_pg import server_running, server_stop, socket_dir_of
from tests.conftest import PROJECT_ROOT


def _run_python(code: str, var_dir) -> None:
    environment = {key: value for key, value in os.environ.items() if key not in {"DATABASE_URL", "CELERY_BROKER_URL"}}
    environment.update({"DJANGO_SETTINGS_MODULE": "kb.settings", "KB_VAR_DIR": str(var_dir)})
    finished = subprocess.run(
        [sys.executable, "-c", code], cwd=PROJECT_ROOT, env=environment, capture_output=True, text=True, timeout=180
    )
    assert finished.returncode == 0, finished.stderr


def _databases(data_dir) -> set[str]:
    with psycopg.connect(host=str(socket_dir_of(data_dir)), user="postgres", dbname="postgres") as connection:
        return {name for (name,) in connection.execute("SELECT datname FROM pg_database")}


def test_a_worker_start_and_a_first_connection_each_start_the_server_with_its_databases():
    # Not under pytest's tmp_path: as root the server runs as another user, who loses its way in whenever a pytest
    # session starting meanwhile sets /tmp/pytest-of-root back to 0700.
    var_dir = Path(tempfile.mkdtemp(prefix="embedded-pg-", dir=settings.VAR_DIR)) / "var"
    data_dir = var_dir / "pg"
    try:
        # A Celery worker, before it reaches its broker (a database of this server).
        _run_python(
            "import django; django.setup()\n"
            "from celery.signals import celeryd_init\n"
            "from kb.celery import app\n"
            "from django.db import connection\n"
            "celeryd_init.send(sender='test@host', instance=None, conf=app.conf, options={})\n"
            "assert connection.connection is None  # the server, without a connection of Django's",
            var_dir,
        )
        assert server_running(data_dir)
        assert {"kb", "kb_broker"} <= _databases(data_dir)

        assert server_stop(data_dir)
        assert not server_running(data_dir)
        # Any process's first connection, through the database backend.
        _run_python(
            "import django; django.setup()\n"
            "from django.db import connection\n"
            "with connection.cursor() as cursor:\n"
            "    cursor.execute('SELECT 1')",
            var_dir,
        )
        assert server_running(data_dir)
        server_stop(data_dir)
        assert not server_running(data_dir)
        assert not server_stop(data_dir)  # stopping a stopped server is a no-op
    finally:
        server_stop(data_dir)
        shutil.rmtree(var_dir.parent)
