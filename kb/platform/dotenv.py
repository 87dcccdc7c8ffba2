"""The project's .env file (see .env.example), read without writing it into os.environ."""

import os
from collections.abc import Mapping
from pathlib import Path

import environ


def environment_with_dotenv(path: Path, base: Mapping[str, str] = os.environ) -> dict[str, str]:
    """`base` and the variables of a .env file that it lacks: what settings read, and what kb_run's children get."""
    environment = dict(base)
    # django-environ's parser, pointed at this mapping instead of os.environ (read_env only adds, as setdefault).
    type("DotenvReader", (environ.Env,), {"ENVIRON": environment}).read_env(path)
    return environment
