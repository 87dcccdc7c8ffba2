"""kb/settings.py: importing it names things and starts nothing."""

import json
import os
import subprocess
import sys

from tests.conftest import PROJECT_ROOT


def _run_python(code: str, environment: dict[str, str]) -> dict:
    finished = subprocess.run([sys.executable, "-c", code], cwd=PROJECT_ROOT, env=environment, capture_output=True,
                              text=True, timeout=120)
    assert finished.returncode == 0, finished.stderr
    return json.loads(finished.stdout.strip().splitlines()[-1])


def _environment(**variables: str) -> dict[str, str]:
    """This process's environment without the variables that would point settings elsewhere, plus `variables`."""
    kept = {key: value for key, value in os.environ.items()
            if not key.startswith("KB_LLM_") and key not in {"DATABASE_URL", "CELERY_BROKER_URL"}}
    return {**kept, "DJANGO_SETTINGS_MODULE": "kb.settings", **variables}


def test_importing_settings_with_the_embedded_database_starts_nothing_and_writes_no_environment(tmp_path):
    var_dir = tmp_path / "var"
    report = _run_python(
        "import json, os, threading\n"
        "before = dict(os.environ)\n"
        "import kb.settings as settings\n"
        "print(json.dumps({'engine': settings.DATABASES['default']['ENGINE'], 'threads': threading.active_count(),\n"
        "                  'changed': sorted(key for key in {*before, *os.environ}\n"
        "                                    if before.get(key) != os.environ.get(key))}))",
        _environment(KB_VAR_DIR=str(var_dir), DATABASE_URL=""),
    )

    assert report == {"engine": "kb.platform.embedded_pg", "threads": 1, "changed": []}
    assert not var_dir.exists()  # no data folder, no postmaster.pid, no runtime folder: no server
