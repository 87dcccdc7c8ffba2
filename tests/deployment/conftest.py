"""The deployment files of docker/, read as Docker and Compose would read them, without a Docker engine."""

import json
import os
import re
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

from tests.conftest import PROJECT_ROOT

DOCKER_DIR = PROJECT_ROOT / "docker"
COMPOSE_FILE = DOCKER_DIR / "compose.yaml"
DOCKERFILES = sorted(DOCKER_DIR.glob("*.Dockerfile"))


@dataclass(frozen=True)
class Instruction:
    keyword: str  # upper case: FROM, RUN, COPY, ...
    arguments: str
    comments: tuple[str, ...]  # the comment lines just above it


def dockerfile_instructions(path: Path) -> list[Instruction]:
    """A Dockerfile's instructions, continuation lines joined, with the comments just above each."""
    instructions: list[Instruction] = []
    comments: list[str] = []
    pending = ""
    for line in path.read_text().splitlines():
        stripped = line.strip()
        if not pending and (not stripped or stripped.startswith("#")):
            comments = comments + [stripped] if stripped else []
            continue
        if stripped.startswith("#"):  # a comment inside a continued instruction
            continue
        pending += " " + stripped.removesuffix("\\").strip() if pending else stripped.removesuffix("\\").strip()
        if stripped.endswith("\\"):
            continue
        keyword, _, arguments = pending.partition(" ")
        instructions.append(Instruction(keyword.upper(), arguments.strip(), tuple(comments)))
        pending, comments = "", []
    return instructions


def exec_form(arguments: str) -> list[str]:
    """The argument list of CMD or ENTRYPOINT in exec form (a JSON array)."""
    return json.loads(arguments)


def compose() -> dict:
    return yaml.safe_load(COMPOSE_FILE.read_text())


def interpolated_names(text: str) -> set[str]:
    """The variables a Compose file interpolates (${NAME}, ${NAME:-default}, ${NAME:?error}); $$ is a literal $."""
    return set(re.findall(r"(?<!\$)\$\{([A-Za-z_][A-Za-z0-9_]*)", text))


def tool(name: str) -> str:
    """A command-line tool of the test extras, installed beside this Python."""
    found = shutil.which(name, path=os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")]))
    if found is None:
        pytest.fail(f"{name} is not installed: install the project's test extras (pip install -e '.[test]')")
    return found
