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
from kb.documents.management.commands.kb_seed_demo import DEMO_PASSWORDS_FILE
from kb.platform.secret_keys import SECRET_FILES
from tests.conftest import PROJECT_ROOT, _free_port

pytestmark = pytest.mark.e2e


def _start(var_dir: Path, port: int, inference_port: int) -> subprocess.Popen:
    environment = {
        key: value
        for key, value in os.environ.items()
        if key
        not in {
            "DATABASE_URL",
            "CELERY_BROKER_URL",
            "KB_MEDIA_ROOT",
            "KB_INFERENCE_URL",
            "KB_INFERENCE_API_KEY",
            *SECRET_FILES,  # the launcher makes them on its first run
        }
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

    # its output is no terminal here (it could be a log file): the passwords went to an owner-only file instead
    passwords = (var_dir / DEMO_PASSWORDS_FILE).read_text()
    demo_password = passwords.split("alice", 1)[1].split()[0]
    assert "alice" in passwords and "bob" in passwords and demo_password not in startup
    assert f"their passwords are in {var_dir / DEMO_PASSWORDS_FILE}" in startup
    assert stat.S_IMODE((var_dir / DEMO_PASSWORDS_FILE).stat().st_mode) == 0o600
    # the secrets settings read, made on this first run, owner-only; and what the app writes is its owner's only
    secrets = {name: (var_dir / file_name).read_text().strip() for name, file_name in SECRET_FILES.items()}
    assert all(len(secret) >= 50 for secret in secrets.values())
    assert {stat.S_IMODE((var_dir / file_name).stat().st_mode) for file_name in SECRET_FILES.values()} == {0o600}
    assert stat.S_IMODE((var_dir / "media").stat().st_mode) == 0o700
    assert [path for path in var_dir.rglob("*") if path.is_file() and path.stat().st_mode & 0o077] == []
    assert first.returncode == 0, shutdown
    assert "stopped cleanly" in shutdown
    assert not any(child.is_running() and child.status() != psutil.STATUS_ZOMBIE for child in children)
    assert not _postgres_running_in(var_dir)

    second = _start(var_dir, port, inference_port)
    again = _read_until(second, "The knowledge base is ready at", timeout=300)
    _interrupt_and_collect(second)

    assert "demo organisation present" in again
    assert key_file.read_text().strip() == api_key  # the key is kept, not made anew
    assert {name: (var_dir / file_name).read_text().strip() for name, file_name in SECRET_FILES.items()} == secrets
    assert "Demo users" not in again
    assert not _postgres_running_in(var_dir)
