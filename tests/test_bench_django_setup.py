"""Benchmark scripts load the settings against a var folder of their own, where nothing has made the secrets yet."""

import hashlib
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

LOAD_SETTINGS = """
import hashlib, sys
sys.path.insert(0, sys.argv[1])
from bench.django_setup import django_setup
django_setup()
from django.conf import settings
print(*(hashlib.sha256(key.encode()).hexdigest() for key in (settings.SECRET_KEY, settings.KB_AUDIT_CHAIN_KEY)))
"""


def test_a_bench_var_folder_gets_its_own_owner_only_secrets(tmp_path):
    environment = {
        name: value
        for name, value in os.environ.items()
        if name not in {"DJANGO_SECRET_KEY", "KB_AUDIT_CHAIN_KEY", "DJANGO_SETTINGS_MODULE"}
    }
    environment["KB_VAR_DIR"] = str(tmp_path)
    runs = [
        subprocess.run(
            [sys.executable, "-c", LOAD_SETTINGS, str(ROOT)],
            cwd=tmp_path,
            env=environment,
            capture_output=True,
            text=True,
            check=True,
        )
        for _ in range(2)
    ]
    files = [tmp_path / "django-secret-key", tmp_path / "audit-chain-key"]
    made = [hashlib.sha256(file.read_text().strip().encode()).hexdigest() for file in files]
    assert runs[0].stdout.split() == made  # what the settings use is what was made in the var folder
    assert made[0] != made[1]
    assert all(file.stat().st_mode & 0o077 == 0 for file in files)
    assert runs[1].stdout == runs[0].stdout  # the second run reads the secrets the first one made
