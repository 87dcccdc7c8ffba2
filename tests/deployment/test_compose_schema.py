"""docker/compose.yaml follows the Compose specification: checked against its JSON schema, which check-jsonschema
ships (vendor.compose-spec, from github.com/compose-spec/compose-spec, Apache-2.0)."""

import subprocess
import sys
from pathlib import Path

from tests.deployment.conftest import COMPOSE_FILE


def check_against_compose_spec(path: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "check_jsonschema", "--builtin-schema", "vendor.compose-spec", str(path)],
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_compose_file_follows_the_compose_specification():
    checked = check_against_compose_spec(COMPOSE_FILE)

    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert "validation done" in checked.stdout


def test_the_check_refuses_what_compose_would_refuse(tmp_path):
    # A healthcheck key misspelt and a volume given as a number: both mistakes compose itself rejects.
    broken = tmp_path / "compose.yaml"
    broken.write_text(
        COMPOSE_FILE.read_text()
        .replace("      start_period: 2m\n", "      start_perod: 2m\n", 1)
        .replace("      - redis-data:/data\n", "      - 6379\n", 1)
    )

    checked = check_against_compose_spec(broken)

    assert checked.returncode != 0
    assert "start_perod" in checked.stdout and "6379" in checked.stdout
