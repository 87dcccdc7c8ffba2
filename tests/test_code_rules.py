"""The rules of ARCHITECTURE.md, checked on every run of the test suite: style by ruff, layering by import-linter."""

import subprocess
import sys
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parent.parent
TOOLS = Path(sys.executable).parent


def _run(*command: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(TOOLS / command[0]), *command[1:]], cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=300
    )


def test_ruff_finds_nothing_to_report():
    result = _run("ruff", "check", "--no-cache", ".")
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_code_is_formatted_as_ruff_formats_it():
    result = _run("ruff", "format", "--check", "--no-cache", ".")
    assert result.returncode == 0, result.stdout + result.stderr


def test_every_import_linter_contract_is_kept():
    """Django-free packages stay Django-free, apps call downwards only, and no package has an import circle."""
    result = _run("lint-imports", "--no-cache")
    assert result.returncode == 0, result.stdout + result.stderr
