"""Logins are throttled per username and address (django-axes): wrong passwords lock that pair out for a while, with
a page that says so; the user elsewhere and others from that address go on logging in."""

import pytest
from django.conf import settings

from tests.factories import PASSWORD, make_superuser, make_user

pytestmark = pytest.mark.django_db

LOGIN = "/accounts/login/"
ADMIN_LOGIN = "/admin/login/"
ATTACKER = "203.0.113.7"


def _try(client, url: str, username: str, password: str, address: str = ATTACKER):
    return client.post(url, {"username": username, "password": password}, REMOTE_ADDR=address)


def _logged_in(client) -> bool:
    return "_auth_user_id" in client.session


def test_after_the_failure_limit_even_the_right_password_is_refused_with_a_page_saying_for_how_long(client):
    alice = make_user(username="alice")
    for _ in range(settings.AXES_FAILURE_LIMIT - 1):
        assert _try(client, LOGIN, "alice", "wrong guess").status_code == 200  # the form again, "didn't match"

    locked = _try(client, LOGIN, "alice", "another wrong guess")
    after = _try(client, LOGIN, "alice", PASSWORD)

    for response in (locked, after):
        assert response.status_code == 429
        assert "Too many failed login attempts" in response.content.decode()
        assert "Try again in\n    15 minutes" in response.content.decode()
    assert not _logged_in(client) and alice.last_login is None


def test_a_lockout_holds_for_that_username_from_that_address_only(client):
    make_user(username="alice")
    make_user(username="bob")
    for _ in range(settings.AXES_FAILURE_LIMIT):
        _try(client, LOGIN, "alice", "wrong guess")
    assert _try(client, LOGIN, "alice", PASSWORD).status_code == 429

    assert _try(client, LOGIN, "bob", PASSWORD).status_code == 302  # another user from the attacker's address
    client.logout()
    assert _try(client, LOGIN, "alice", PASSWORD, address="198.51.100.20").status_code == 302  # alice elsewhere
    assert _logged_in(client)


def test_a_successful_login_starts_the_count_again(client):
    make_user(username="alice")
    for _ in range(settings.AXES_FAILURE_LIMIT - 1):
        _try(client, LOGIN, "alice", "wrong guess")
    assert _try(client, LOGIN, "alice", PASSWORD).status_code == 302
    client.logout()

    for _ in range(settings.AXES_FAILURE_LIMIT - 1):
        assert _try(client, LOGIN, "alice", "wrong guess").status_code == 200
    assert _try(client, LOGIN, "alice", PASSWORD).status_code == 302


def test_the_admin_login_is_throttled_too_and_shares_the_count(client):
    make_superuser("root")
    for _ in range(settings.AXES_FAILURE_LIMIT - 1):
        assert _try(client, ADMIN_LOGIN, "root", "wrong guess").status_code == 200
    _try(client, LOGIN, "root", "wrong guess")

    for url in (ADMIN_LOGIN, LOGIN):
        response = _try(client, url, "root", PASSWORD)
        assert response.status_code == 429 and "Too many failed login attempts" in response.content.decode()
    assert not _logged_in(client)
