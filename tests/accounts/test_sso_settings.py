"""The single sign-on settings block: off by default, and a malformed group map stops start-up instead of logins."""

import environ
import pytest
from django.core.exceptions import ImproperlyConfigured

from kb.accounts.sso_settings import LOCAL_ACCOUNTS_BACKEND, OIDC_BACKEND, sso_settings_from_env


def _settings(**variables: str) -> dict:
    env = environ.Env()
    env.ENVIRON = variables
    return sso_settings_from_env(env)


OIDC = {
    "KB_OIDC_CLIENT_ID": "kb",
    "KB_OIDC_AUTHORIZATION_ENDPOINT": "https://id.example.org/authorize",
    "KB_OIDC_TOKEN_ENDPOINT": "https://id.example.org/token",
    "KB_OIDC_USERINFO_ENDPOINT": "https://id.example.org/userinfo",
    "KB_OIDC_JWKS_ENDPOINT": "https://id.example.org/jwks",
}


def test_without_variables_only_local_accounts_log_in():
    assert _settings() == {"KB_OIDC_ENABLED": False, "AUTHENTICATION_BACKENDS": [LOCAL_ACCOUNTS_BACKEND]}


def test_a_configured_provider_comes_before_local_accounts_and_uses_pkce():
    values = _settings(**OIDC, KB_OIDC_GROUP_MAP='{"finance": {"departments": {"Finance": "admin"}}}')
    assert values["AUTHENTICATION_BACKENDS"] == [OIDC_BACKEND, LOCAL_ACCOUNTS_BACKEND]
    assert values["OIDC_USE_PKCE"] and values["KB_OIDC_GROUP_MAP"]["finance"]["departments"] == {"Finance": "admin"}


@pytest.mark.parametrize(
    ("group_map", "complaint"),
    [
        ("{finance: Finance}", "not valid JSON"),
        ('["finance"]', "JSON object"),
        ('{"finance": {"department": {"Finance": "member"}}}', "must map to"),
        ('{"finance": {"departments": {"Finance": "owner"}}}', "member or admin"),
        ('{"auditors": {"role": "superuser"}}', "employee or auditor"),
    ],
)
def test_a_malformed_group_map_is_refused_with_the_reason(group_map, complaint):
    with pytest.raises(ImproperlyConfigured, match=complaint):
        _settings(**OIDC, KB_OIDC_GROUP_MAP=group_map)
