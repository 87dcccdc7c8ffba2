"""A tiny OpenID Connect provider (django-oauth-toolkit) that the single sign-on tests log in through.

A separate Django project, started as its own process by tests/e2e/test_single_sign_on.py: the app talks to it over
HTTP as it would to a company's identity provider. Its folder (RSA key made at test time) is OIDC_PROVIDER_DIR; its
tables are in a database of its own (OIDC_PROVIDER_DATABASE) on the test suite's PostgreSQL
(OIDC_PROVIDER_DATABASE_HOST, the server's socket folder), never in the app's.
"""

import os
from pathlib import Path

FOLDER = Path(os.environ["OIDC_PROVIDER_DIR"])

SECRET_KEY = "test-identity-provider-only"
DEBUG = False
ALLOWED_HOSTS = ["127.0.0.1", "localhost"]
ROOT_URLCONF = "tests.oidc_provider.urls"
INSTALLED_APPS = [
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "oauth2_provider",
]
MIDDLEWARE = [
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
]
TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [Path(__file__).parent / "templates"],
        "OPTIONS": {"context_processors": ["django.template.context_processors.request"]},
    }
]
DATABASES = {
    "default": {
        "ENGINE": "django.db.backends.postgresql",
        "NAME": os.environ["OIDC_PROVIDER_DATABASE"],
        "HOST": os.environ["OIDC_PROVIDER_DATABASE_HOST"],
        "USER": "postgres",
    }
}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
# The app runs on the same host (127.0.0.1, another port) and cookies are per host: the provider's get own names.
SESSION_COOKIE_NAME = "provider_sessionid"
CSRF_COOKIE_NAME = "provider_csrftoken"
LOGIN_URL = "/login/"
USE_TZ = True
OAUTH2_PROVIDER = {
    "OIDC_ENABLED": True,
    "OIDC_RSA_PRIVATE_KEY": (FOLDER / "signing-key.pem").read_text() if (FOLDER / "signing-key.pem").exists() else "",
    "OAUTH2_VALIDATOR_CLASS": "tests.oidc_provider.validators.DirectoryClaims",
    "SCOPES": {"openid": "OpenID Connect", "profile": "Profile", "email": "E-mail"},
    "ALLOWED_REDIRECT_URI_SCHEMES": ["http"],
}
