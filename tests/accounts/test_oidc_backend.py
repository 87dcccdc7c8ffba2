"""The OpenID Connect backend beside local accounts, in this process (the browser flow: tests/e2e)."""

import environ
import pytest
from django.core.exceptions import SuspiciousOperation

from kb.accounts.backends import DirectoryOIDCBackend
from kb.accounts.models import User
from kb.accounts.sso_settings import sso_settings_from_env
from kb.audit.models import AuditEvent
from kb.platform.actors import system_actor
from tests.conftest import _free_port
from tests.factories import PASSWORD, make_superuser

pytestmark = pytest.mark.django_db


@pytest.fixture
def oidc_configured(settings):
    # A provider that is not there: any attempt to reach it would fail the request.
    provider = f"http://127.0.0.1:{_free_port()}"
    env = environ.Env()
    env.ENVIRON = {
        "KB_OIDC_CLIENT_ID": "kb",
        "KB_OIDC_AUTHORIZATION_ENDPOINT": f"{provider}/authorize/",
        "KB_OIDC_TOKEN_ENDPOINT": f"{provider}/token/",
        "KB_OIDC_USERINFO_ENDPOINT": f"{provider}/userinfo/",
        "KB_OIDC_JWKS_ENDPOINT": f"{provider}/jwks/",
    }
    for name, value in sso_settings_from_env(env).items():
        setattr(settings, name, value)


def test_a_local_login_never_reaches_the_provider_even_with_a_code_in_the_address(client, oidc_configured):
    make_superuser("break-glass")

    response = client.post("/accounts/login/?code=typed&state=typed", {"username": "break-glass", "password": PASSWORD})

    assert response.status_code == 302 and "_auth_user_id" in client.session


def test_an_oidc_login_never_takes_over_the_ldap_user_of_the_same_name(oidc_configured, settings):
    ldap_user = User(username="Carol", directory=User.Directory.LDAP, email="carol@example.com")
    ldap_user.set_unusable_password()  # as the LDAP backend makes its users
    ldap_user.save()
    backend = DirectoryOIDCBackend()
    claims = {settings.KB_OIDC_USERNAME_CLAIM: "carol", "email": "someone@example.com", "groups": ["staff"]}

    [matched] = backend.filter_users_by_claims(claims)  # usernames match whatever their case
    with pytest.raises(SuspiciousOperation, match="LDAP account"):
        backend.update_user(matched, claims)
    ldap_user.refresh_from_db()
    assert ldap_user.email == "carol@example.com" and ldap_user.directory == User.Directory.LDAP


def test_a_login_records_what_the_provider_changed_in_the_name_and_e_mail(oidc_configured, settings):
    backend = DirectoryOIDCBackend()
    claims = {settings.KB_OIDC_USERNAME_CLAIM: "dana", "email": "dana@example.org", "given_name": "Dana"}
    dana = backend.create_user(claims)
    backend.update_user(dana, claims)  # the same claims: nothing recorded
    backend.update_user(dana, {**claims, "email": "dana@new.example.org", "family_name": "Lee"})

    [synced] = AuditEvent.objects.filter(kind=AuditEvent.Kind.USER_PROFILE_SYNCED)
    assert synced.before == {"email": "dana@example.org", "last_name": ""}
    assert synced.after == {"email": "dana@new.example.org", "last_name": "Lee"}
    assert synced.actor == system_actor()
