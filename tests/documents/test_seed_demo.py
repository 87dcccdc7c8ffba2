"""manage.py kb_seed_demo: the demo users' passwords go to a terminal, or to an owner-only file, never into output
that may be a log."""

import io
import stat

import pytest
from django.contrib.auth import authenticate
from django.core.management import call_command

from kb.documents.management.commands.kb_seed_demo import DEMO_PASSWORDS_FILE

pytestmark = pytest.mark.django_db


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def _password_of(username: str, listing: str) -> str:
    return listing.split(f"    {username} ", 1)[1].split()[0]


def test_output_that_is_no_terminal_gets_no_password_and_an_owner_only_file_gets_them(settings, tmp_path):
    settings.VAR_DIR = tmp_path
    output = io.StringIO()

    call_command("kb_seed_demo", stdout=output)

    listing = (tmp_path / DEMO_PASSWORDS_FILE).read_text()
    password = _password_of("alice", listing)
    assert authenticate(username="alice", password=password) is not None
    assert password not in output.getvalue() and str(tmp_path / DEMO_PASSWORDS_FILE) in output.getvalue()
    assert stat.S_IMODE((tmp_path / DEMO_PASSWORDS_FILE).stat().st_mode) == 0o600
    assert {"admin", "auditor", "eng-admin", "alice", "ops-admin", "bob"} <= {
        line.split()[0] for line in listing.splitlines()[1:]
    }


def test_a_terminal_is_shown_the_passwords_and_no_file_is_made(settings, tmp_path):
    settings.VAR_DIR = tmp_path
    terminal = Terminal()

    call_command("kb_seed_demo", stdout=terminal)

    password = _password_of("bob", terminal.getvalue())
    assert authenticate(username="bob", password=password) is not None
    assert not (tmp_path / DEMO_PASSWORDS_FILE).exists()
