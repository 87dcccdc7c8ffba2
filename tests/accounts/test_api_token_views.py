"""The API tokens page: everyone makes, sees and revokes their own tokens; a new token is shown once."""

import pytest
from django.urls import reverse

from kb.accounts.models import ApiToken
from kb.accounts.selectors import api_token_authenticated
from kb.accounts.services import api_token_create
from tests.factories import PASSWORD, make_user

pytestmark = pytest.mark.django_db

HTMX = {"HX-Request": "true"}


@pytest.fixture
def alice(client):
    user = make_user(username="alice")
    assert client.login(username="alice", password=PASSWORD)
    return user


def test_a_new_token_is_shown_once_with_the_scopes_and_expiry_chosen(client, alice):
    response = client.post(
        reverse("api_tokens:create"),
        {"name": "Notebook", "scope": ["ask", "search"], "expires_on": "2099-01-31"},
        headers=HTMX,
    )

    assert response.status_code == 200 and response["Cache-Control"] == "no-store"
    token = ApiToken.objects.get(user=alice)
    assert token.scopes == ["ask", "search"]
    assert token.expires_at.date().isoformat() == "2099-02-01"  # valid through the 31st
    page = response.content.decode()
    plaintext = page.split("<code>", 1)[1].split("</code>", 1)[0]
    assert plaintext.startswith(f"kb_{token.prefix}_") and api_token_authenticated(presented=plaintext) == token
    assert "shown this once" in page and "<html" not in page

    again = client.get(reverse("api_tokens:page")).content.decode()
    assert "Notebook" in again and f"kb_{token.prefix}_…" in again
    assert plaintext not in again


def test_the_page_lists_the_user_s_own_tokens_only(client, alice):
    api_token_create(acting_user=alice, name="Mine", scopes=["ask"])
    api_token_create(acting_user=make_user(), name="Someone else's", scopes=["ask"])

    page = client.get(reverse("api_tokens:page")).content.decode()

    assert "Mine" in page and "Someone else" not in page
    assert "API tokens" in page


def test_a_token_without_a_scope_or_with_a_past_expiry_is_refused_with_the_reason(client, alice):
    no_scope = client.post(reverse("api_tokens:create"), {"name": "Bot"}, headers=HTMX)
    past = client.post(
        reverse("api_tokens:create"), {"name": "Bot", "scope": "ask", "expires_on": "2001-01-01"}, headers=HTMX
    )
    not_a_date = client.post(
        reverse("api_tokens:create"), {"name": "Bot", "scope": "ask", "expires_on": "soon"}, headers=HTMX
    )

    assert no_scope.status_code == past.status_code == not_a_date.status_code == 400
    assert "at least one scope" in no_scope.content.decode()
    assert "passed" in past.content.decode()
    assert "not a date" in not_a_date.content.decode()
    assert not ApiToken.objects.exists()


def test_revoking_is_a_post_by_the_owner(client, alice):
    issued = api_token_create(acting_user=alice, name="Bot", scopes=["ask"])
    url = reverse("api_tokens:revoke", args=[issued.token.pk])

    assert client.get(url).status_code == 405
    assert api_token_authenticated(presented=issued.plaintext) is not None

    response = client.post(url, headers=HTMX)

    assert response.status_code == 200 and "Revoked" in response.content.decode()
    assert api_token_authenticated(presented=issued.plaintext) is None


def test_someone_else_s_token_cannot_be_revoked(client, alice):
    issued = api_token_create(acting_user=make_user(), name="Theirs", scopes=["ask"])

    response = client.post(reverse("api_tokens:revoke", args=[issued.token.pk]), headers=HTMX)

    assert response.status_code == 404
    assert api_token_authenticated(presented=issued.plaintext) is not None


def test_the_page_is_for_logged_in_users(client):
    response = client.get(reverse("api_tokens:page"))
    assert response.status_code == 302 and reverse("login") in response["Location"]
