"""Settings for the test suite: its own embedded PostgreSQL under var/test, so a running demo is never touched."""

import os
from pathlib import Path

os.environ.setdefault("KB_VAR_DIR", str(Path(__file__).resolve().parent.parent / "var" / "test"))
# The suite's own secrets, in the environment so that the app processes it starts (live_stack) read the same ones.
os.environ.setdefault("DJANGO_SECRET_KEY", "tests-secret-key-" + "x" * 50)
os.environ.setdefault("KB_AUDIT_CHAIN_KEY", "tests-audit-chain-key")

from kb.settings import *  # noqa: F403

KB_LLM_SEED = 7
AUTHENTICATION_BACKENDS = ["tests.login_backends.RequestOptionalAxesBackend", *AUTHENTICATION_BACKENDS[1:]]  # noqa: F405
