"""Settings for the test suite: its own embedded PostgreSQL under var/test, so a running demo is never touched."""

import os
from pathlib import Path

os.environ.setdefault("KB_VAR_DIR", str(Path(__file__).resolve().parent.parent / "var" / "test"))

from kb.settings import *  # noqa: F403

KB_LLM_SEED = 7
