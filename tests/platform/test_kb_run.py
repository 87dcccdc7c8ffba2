"""`manage.py kb_run` (what `./kbctl run` ends in): everything comes up, Ctrl-C stops it all, data survives."""

import os
import signal
import stat
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import psutil
import pytest

from inference.config import API_KEY_FILE
from tests.conftest import PROJECT_ROOT, _free_port

pytestmark = pytest.mark.e2e


def _start(var_dir: Path, port: int, inference_port: int) -> subprocess.Popen:
    environment = {
        key: value
        for key, value in os.environ.items()
        if key not in {"DATABASE_URL", "CELERY_BROKER_URL", "KB_MEDIA_ROOT", "KB_INFERENCE_URL", "KB_INFERENCE_API_KEY"}
    }
    environment.update(
        {
            "DJANGO_SETTINGS_MODULE": "kb.settings",
            "KB_VAR_DIR": str(var_dir),
            "KB_PORT": str(port),
            "KB_INFERENCE_PORT": str(inference_port),
        }
    )
    return subprocess.Popen(
        [sys.executable, "manage.py", "kb_run"],
        cwd=PROJECT_ROOT,
        env=environment,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def _read_until(process: subprocess.Popen, marker: str, timeout: float) -> str:
    lines, deadline = [], time.monotonic() + timeout
    while time.monotonic() < deadline:
        line = process.stdout.readline()
        if not line and process.poll() is not None:
            break
        lines.append(line)
        if marker in line:
            return "".join(lines)
    raise AssertionError(f"{marker!r} not seen; output was:\n{''.join(lines)}")


def _interrupt_and_collect(process: subprocess.Popen) -> str:
    process.send_signal(signal.SIGINT)
    output, _ = process.communicate(timeout=90)
    return output


def _postgres_running_in(var_dir: Path) -> bool:
    return any(
        str(var_dir) in " ".join(p.info["cmdline"] or [])
        for p in psutil.process_iter(["name", "cmdline"])
        if p.info["name"] == "postgres"
    )


def test_run_starts_everything_stops_on_ctrl_c_and_keeps_data(tmp_path):
    var_dir = tmp_path / "var"
    port, inference_port = _free_port(), _free_port()

    first = _start(var_dir, port, inference_port)
    startup = _read_until(first, "The knowledge base is ready at", timeout=300)
    children = psutil.Process(first.pid).children(recursive=True)
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/accounts/login/") as response:
        assert response.status == 200
    # the model lives in its own serving process, which the web server reaches over localhost with the key they share
    key_file = var_dir / API_KEY_FILE
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    api_key = key_file.read_text().strip()
    ready = urllib.request.Request(
        f"http://127.0.0.1:{inference_port}/ready", headers={"Authorization": f"Bearer {api_key}"}
    )
    with urllib.request.urlopen(ready) as response:
        assert b'"smollm2-135m":"ready"' in response.read()
    with pytest.raises(urllib.error.HTTPError) as refused:  # and nothing else on the host does
        urllib.request.urlopen(f"http://127.0.0.1:{inference_port}/v1/models")
    assert refused.value.code == 401
    assert any("inference" in child.cmdline() for child in children)
    shutdown = _interrupt_and_collect(first)

    assert "Demo users (these passwords are shown only this once)" in startup
    assert "alice" in startup and "bob" in startup
    assert first.returncode == 0, shutdown
    assert "stopped cleanly" in shutdown
    assert not any(child.is_running() and child.status() != psutil.STATUS_ZOMBIE for child in children)
    assert not _postgres_running_in(var_dir)

    second = _start(var_dir, port, inference_port)
    again = _read_until(second, "The knowledge base is ready at", timeout=300)
    _interrupt_and_collect(second)

    assert "demo organisation present" in again
    assert key_file.read_text().strip() == api_key  # the key is kept, not made anew
    assert "Demo users" not in again
    assert not _postgres_running_in(var_dir)
