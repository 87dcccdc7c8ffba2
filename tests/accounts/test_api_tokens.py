"""Personal API tokens: kept as a hash, working until revoked, expired or their user deactivated; counted per minute."""

import hashlib
import threading
import time
from datetime import timedelta

import pytest
from django.core.exceptions import ValidationError
from django.db import connection
from django.http import Http404
from django.utils import timezone

from kb.accounts.models import ApiToken, User
from kb.accounts.selectors import api_token_authenticated
from kb.accounts.services import api_token_create, api_token_request_admit, api_token_revoke
from kb.audit.models import AuditEvent
from tests.factories import make_user

pytestmark = pytest.mark.django_db

ALL_SCOPES = ["ask", "search", "embeddings"]


def _issued(user, **options):
    return api_token_create(acting_user=user, name="Build bot", scopes=options.pop("scopes", ALL_SCOPES), **options)


def test_only_the_hash_of_a_token_is_kept_and_it_authenticates_its_owner():
    alice = make_user()

    issued = _issued(alice)

    token = ApiToken.objects.get()
    prefix, secret = issued.plaintext.removeprefix("kb_").split("_", 1)
    assert token.prefix == prefix and len(secret) >= 43
    assert token.secret_hash == hashlib.sha256(issued.plaintext.encode()).hexdigest()
    with connection.cursor() as cursor:
        cursor.execute("SELECT row_to_json(t)::text FROM accounts_apitoken t")
        (stored,) = cursor.fetchone()
    assert secret not in stored
    authenticated = api_token_authenticated(presented=issued.plaintext)
    assert authenticated == token and authenticated.user == alice


def test_two_tokens_never_share_a_secret_or_a_prefix():
    alice = make_user()
    first, second = _issued(alice), _issued(alice)
    assert first.plaintext != second.plaintext and first.token.prefix != second.token.prefix


@pytest.mark.parametrize(
    "presented",
    [
        lambda plaintext: plaintext[:-1] + ("A" if plaintext[-1] != "A" else "B"),  # one character of the secret
        lambda plaintext: "kb_000000000000_" + plaintext.split("_", 2)[2],  # another prefix, the same secret
        lambda plaintext: plaintext + "x",
        lambda plaintext: plaintext.upper(),
        lambda plaintext: "",
        lambda plaintext: "kb_' OR 1=1 --",
    ],
)
def test_anything_but_the_token_itself_authenticates_nobody(presented):
    issued = _issued(make_user())
    assert api_token_authenticated(presented=presented(issued.plaintext)) is None


def test_a_token_works_until_its_expiry_and_not_after():
    issued = _issued(make_user(), expires_at=timezone.now() + timedelta(hours=1))
    assert api_token_authenticated(presented=issued.plaintext) is not None

    ApiToken.objects.filter(pk=issued.token.pk).update(expires_at=timezone.now() - timedelta(seconds=1))

    assert api_token_authenticated(presented=issued.plaintext) is None


def test_a_token_cannot_be_made_already_expired():
    with pytest.raises(ValidationError, match="passed"):
        _issued(make_user(), expires_at=timezone.now() - timedelta(minutes=1))
    assert not ApiToken.objects.exists()


def test_a_revoked_token_stops_working_and_the_revocation_is_audited_without_the_secret():
    alice = make_user()
    issued = _issued(alice)

    api_token_revoke(acting_user=alice, token_id=issued.token.pk)

    assert api_token_authenticated(presented=issued.plaintext) is None
    created, revoked = AuditEvent.objects.filter(subject_type="accounts.ApiToken").order_by("id")
    assert (created.kind, revoked.kind) == (AuditEvent.Kind.API_TOKEN_CREATED, AuditEvent.Kind.API_TOKEN_REVOKED)
    assert created.actor == alice and revoked.actor == alice
    assert created.after == {
        "name": "Build bot",
        "prefix": issued.token.prefix,
        "scopes": ALL_SCOPES,
        "expires_at": None,
    }
    secret = issued.plaintext.split("_", 2)[2]
    assert secret not in str(created.after) + str(revoked.after)
    with pytest.raises(ValidationError, match="revoked already"):
        api_token_revoke(acting_user=alice, token_id=issued.token.pk)


def test_only_its_owner_revokes_a_token():
    issued = _issued(make_user())
    mallory = make_user()

    with pytest.raises(Http404):
        api_token_revoke(acting_user=mallory, token_id=issued.token.pk)

    assert api_token_authenticated(presented=issued.plaintext) is not None
    assert not AuditEvent.objects.filter(kind=AuditEvent.Kind.API_TOKEN_REVOKED).exists()


def test_a_deactivated_user_s_tokens_stop_working_at_once():
    alice = make_user()
    issued = _issued(alice)

    alice.is_active = False
    alice.save(update_fields=["is_active"])

    assert api_token_authenticated(presented=issued.plaintext) is None


@pytest.mark.parametrize(
    ("name", "scopes", "reason"),
    [
        ("   ", ["ask"], "Name the token"),
        ("Bot", [], "at least one scope"),
        ("Bot", ["ask", "admin"], "Unknown scope: admin"),
        ("B" * 101, ["ask"], "at most 100 characters"),
    ],
)
def test_a_token_needs_a_name_and_known_scopes(name, scopes, reason):
    with pytest.raises(ValidationError, match=reason):
        api_token_create(acting_user=make_user(), name=name, scopes=scopes)
    assert not ApiToken.objects.exists() and not AuditEvent.objects.filter(subject_type="accounts.ApiToken").exists()


def test_scopes_are_kept_in_one_order_whatever_order_they_come_in():
    issued = api_token_create(acting_user=make_user(), name="Bot", scopes=["embeddings", "ask"])
    assert issued.token.scopes == ["ask", "embeddings"]


def _wait_for_a_fresh_minute_if_this_one_ends_soon(seconds_needed: float) -> None:
    """The limit counts per minute of the database's clock (this machine's): a count must not straddle two."""
    now = time.time()
    if now % 60 > 60 - seconds_needed:
        time.sleep(60 - now % 60 + 0.1)


def test_requests_over_the_limit_wait_for_the_next_minute_and_each_notes_its_use():
    issued = _issued(make_user())
    _wait_for_a_fresh_minute_if_this_one_ends_soon(5)

    admitted = [api_token_request_admit(token=issued.token, per_minute=3) for _ in range(3)]
    refused = api_token_request_admit(token=issued.token, per_minute=3)

    assert admitted == [0, 0, 0]
    assert 1 <= refused <= 60
    issued.token.refresh_from_db()
    user = User.objects.get(pk=issued.token.user_id)
    assert issued.token.last_used_at is not None and user.api_window_requests == 4
    # The next minute counts afresh.
    User.objects.filter(pk=user.pk).update(api_window_started_at=user.api_window_started_at - timedelta(minutes=1))
    assert api_token_request_admit(token=issued.token, per_minute=3) == 0


def test_the_limit_is_the_user_s_over_all_their_tokens_and_not_another_user_s():
    owner = make_user()
    first, second = _issued(owner), _issued(owner)
    other = _issued(make_user())
    _wait_for_a_fresh_minute_if_this_one_ends_soon(5)

    tokens = (first.token, second.token, first.token)
    admitted = [api_token_request_admit(token=token, per_minute=3) for token in tokens]

    assert admitted == [0, 0, 0]
    assert api_token_request_admit(token=second.token, per_minute=3) > 0
    assert api_token_request_admit(token=_issued(owner).token, per_minute=3) > 0  # a new token brings no new minute
    assert api_token_request_admit(token=other.token, per_minute=3) == 0
    second.token.refresh_from_db()
    assert second.token.last_used_at is not None


def test_no_limit_when_it_is_zero():
    issued = _issued(make_user())
    assert {api_token_request_admit(token=issued.token, per_minute=0) for _ in range(5)} == {0}


@pytest.mark.django_db(transaction=True)
def test_the_limit_holds_for_requests_on_many_connections_at_once():
    """As requests to several web processes would come: each thread has its own database connection."""
    issued = _issued(make_user())
    _wait_for_a_fresh_minute_if_this_one_ends_soon(15)
    outcomes: list[int] = []
    start = threading.Barrier(6)

    def requests() -> None:
        from django.db import connections

        start.wait()
        try:
            outcomes.extend(api_token_request_admit(token=issued.token, per_minute=20) for _ in range(6))
        finally:
            connections.close_all()

    threads = [threading.Thread(target=requests) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert len(outcomes) == 36
    assert outcomes.count(0) == 20
