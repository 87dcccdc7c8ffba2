"""Single sign-on settings from the environment: LDAP (django-auth-ldap) and OpenID Connect (mozilla-django-oidc).

Read by kb/settings.py into its own block; both directories are off unless their variables are set, and local
accounts (Django's ModelBackend) always come last, so that break-glass admins log in with the password kept here.
Importing this module imports neither directory's package: only a configured one is loaded.
"""

import json

import environ
from django.core.exceptions import ImproperlyConfigured

DEPARTMENT_ROLES = ("member", "admin")
USER_ROLES = ("employee", "auditor")
LOCAL_ACCOUNTS_BACKEND = "django.contrib.auth.backends.ModelBackend"
LDAP_BACKEND = "kb.accounts.backends.DirectoryLDAPBackend"
OIDC_BACKEND = "kb.accounts.backends.DirectoryOIDCBackend"
# django-auth-ldap's group classes by the names an administrator knows them by.
LDAP_GROUP_TYPES = {
    "groupOfNames": "GroupOfNamesType",
    "groupOfUniqueNames": "GroupOfUniqueNamesType",
    "posixGroup": "PosixGroupType",
    "activeDirectory": "NestedActiveDirectoryGroupType",
}


def group_map_from_json(name: str, text: str) -> dict[str, dict]:
    """A directory's groups (LDAP group DNs, or the values of the OIDC groups claim) → departments and user role.

    '{"cn=finance,ou=groups,dc=example,dc=org": {"departments": {"Finance": "member"}},
      "cn=auditors,ou=groups,dc=example,dc=org": {"role": "auditor"}}'
    Refused at start-up when malformed, so a typo cannot silently take everyone's departments away at their next login.
    """
    try:
        mapping = json.loads(text or "{}")
    except json.JSONDecodeError as error:
        raise ImproperlyConfigured(f"{name} is not valid JSON: {error}") from None
    if not isinstance(mapping, dict):
        raise ImproperlyConfigured(f"{name} must be a JSON object of group → grants")
    for group, grants in mapping.items():
        if not isinstance(grants, dict) or set(grants) - {"departments", "role"}:
            raise ImproperlyConfigured(f'{name}: group {group!r} must map to {{"departments": {{...}}, "role": ...}}')
        departments = grants.get("departments", {})
        if not isinstance(departments, dict) or any(role not in DEPARTMENT_ROLES for role in departments.values()):
            raise ImproperlyConfigured(f"{name}: group {group!r} gives departments a role other than member or admin")
        if grants.get("role", "employee") not in USER_ROLES:
            raise ImproperlyConfigured(f"{name}: group {group!r} gives a user role other than employee or auditor")
    return mapping


def sso_settings_from_env(env: environ.Env) -> dict[str, object]:
    """AUTHENTICATION_BACKENDS and every directory setting, for kb/settings.py (and tests) to take as they are."""
    backends = []
    values: dict[str, object] = {}
    ldap_uri = env("KB_LDAP_SERVER_URI", default="")
    if ldap_uri:
        backends.append(LDAP_BACKEND)
        values.update(_ldap_settings(env, ldap_uri))
    oidc_client_id = env("KB_OIDC_CLIENT_ID", default="")
    if oidc_client_id:
        backends.append(OIDC_BACKEND)
        values.update(_oidc_settings(env, oidc_client_id))
    values["KB_OIDC_ENABLED"] = bool(oidc_client_id)
    values["AUTHENTICATION_BACKENDS"] = [*backends, LOCAL_ACCOUNTS_BACKEND]
    return values


def _ldap_settings(env: environ.Env, uri: str) -> dict[str, object]:
    import ldap
    from django_auth_ldap import config

    group_type = env("KB_LDAP_GROUP_TYPE", default="groupOfNames")
    if group_type not in LDAP_GROUP_TYPES:
        raise ImproperlyConfigured(f"KB_LDAP_GROUP_TYPE must be one of {', '.join(LDAP_GROUP_TYPES)}")
    return {
        "AUTH_LDAP_SERVER_URI": uri,
        "AUTH_LDAP_START_TLS": env.bool("KB_LDAP_START_TLS", default=False),
        # Who searches for users and groups; empty: anonymous.
        "AUTH_LDAP_BIND_DN": env("KB_LDAP_BIND_DN", default=""),
        "AUTH_LDAP_BIND_PASSWORD": env("KB_LDAP_BIND_PASSWORD", default=""),
        "AUTH_LDAP_USER_SEARCH": config.LDAPSearch(
            env("KB_LDAP_USER_SEARCH_BASE"),
            ldap.SCOPE_SUBTREE,
            env("KB_LDAP_USER_FILTER", default="(uid=%(user)s)"),
        ),
        "AUTH_LDAP_GROUP_SEARCH": config.LDAPSearch(
            env("KB_LDAP_GROUP_SEARCH_BASE"), ldap.SCOPE_SUBTREE, "(objectClass=*)"
        ),
        "AUTH_LDAP_GROUP_TYPE": getattr(config, LDAP_GROUP_TYPES[group_type])(),
        "AUTH_LDAP_USER_ATTR_MAP": {"first_name": "givenName", "last_name": "sn", "email": "mail"},
        # Every login re-reads the user's groups (never from a cache), so a removal counts at the next login.
        "AUTH_LDAP_ALWAYS_UPDATE_USER": True,
        "AUTH_LDAP_FIND_GROUP_PERMS": False,
        "KB_LDAP_GROUP_MAP": group_map_from_json("KB_LDAP_GROUP_MAP", env("KB_LDAP_GROUP_MAP", default="")),
    }


def _oidc_settings(env: environ.Env, client_id: str) -> dict[str, object]:
    return {
        "OIDC_RP_CLIENT_ID": client_id,
        "OIDC_RP_CLIENT_SECRET": env("KB_OIDC_CLIENT_SECRET", default=""),
        "OIDC_OP_AUTHORIZATION_ENDPOINT": env("KB_OIDC_AUTHORIZATION_ENDPOINT"),
        "OIDC_OP_TOKEN_ENDPOINT": env("KB_OIDC_TOKEN_ENDPOINT"),
        "OIDC_OP_USER_ENDPOINT": env("KB_OIDC_USERINFO_ENDPOINT"),
        "OIDC_OP_JWKS_ENDPOINT": env("KB_OIDC_JWKS_ENDPOINT"),
        "OIDC_RP_SIGN_ALGO": env("KB_OIDC_SIGN_ALGO", default="RS256"),
        "OIDC_RP_SCOPES": env("KB_OIDC_SCOPES", default="openid email profile"),
        "OIDC_USE_PKCE": True,
        "LOGIN_REDIRECT_URL_FAILURE": "/accounts/login/?sso=failed",
        "KB_OIDC_PROVIDER_NAME": env("KB_OIDC_PROVIDER_NAME", default="single sign-on"),
        "KB_OIDC_USERNAME_CLAIM": env("KB_OIDC_USERNAME_CLAIM", default="preferred_username"),
        "KB_OIDC_GROUPS_CLAIM": env("KB_OIDC_GROUPS_CLAIM", default="groups"),
        "KB_OIDC_GROUP_MAP": group_map_from_json("KB_OIDC_GROUP_MAP", env("KB_OIDC_GROUP_MAP", default="")),
    }
