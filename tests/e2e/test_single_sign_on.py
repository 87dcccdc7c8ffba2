"""OpenID Connect in a real browser: the app's web server, configured by its KB_OIDC_* variables, logs users in
through a real identity provider (django-oauth-toolkit, tests/oidc_provider) running as a process of its own."""

import json
import os
import re
import subprocess
import sys
from dataclasses import dataclass

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from django.conf import settings

from kb.accounts.models import Membership, User
from kb.accounts.services import user_deactivate
from tests.conftest import (
    PROJECT_ROOT,
    _free_port,
    _wait_until_answering,
    app_process_environment,
    database_url_for_app_processes,
    fresh_database,
    start_web_server,
    stop_processes,
)
from tests.e2e.pages import log_in
from tests.factories import make_department, make_superuser

sync_api = pytest.importorskip("playwright.sync_api")

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

CLIENT_ID, CLIENT_SECRET = "knowledge-base", "a-client-secret-for-the-tests"
PROVIDER_DATABASE = "kb_test_identity_provider"
GROUP_MAP = {
    "finance": {"departments": {"Finance": "member"}},
    "engineering-leads": {"departments": {"Engineering": "admin"}},
    "auditors": {"role": "auditor"},
}


@dataclass
class IdentityProvider:
    url: str
    environment: dict[str, str]

    def run(self, *arguments: str) -> None:
        subprocess.run(
            [sys.executable, "-m", "tests.oidc_provider.directory", *arguments],
            cwd=PROJECT_ROOT,
            env=self.environment,
            check=True,
            capture_output=True,
        )

    def user_set(self, username: str, password: str, groups: list[str]) -> None:
        self.run("user", username, password, f"{username}@example.org", *groups)


@pytest.fixture(scope="session")
def identity_provider(tmp_path_factory, django_db_setup, django_db_blocker):
    folder = tmp_path_factory.mktemp("identity-provider")
    # Its own database on the suite's PostgreSQL, made afresh: the provider's users and clients are not the app's.
    with django_db_blocker.unblock():
        host = fresh_database(PROVIDER_DATABASE)
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    (folder / "signing-key.pem").write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    environment = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "tests.oidc_provider.settings",
        "OIDC_PROVIDER_DIR": str(folder),
        "OIDC_PROVIDER_DATABASE": PROVIDER_DATABASE,
        "OIDC_PROVIDER_DATABASE_HOST": host,
    }
    subprocess.run(
        [sys.executable, "-m", "django", "migrate", "--noinput"],
        cwd=PROJECT_ROOT,
        env=environment,
        check=True,
        capture_output=True,
    )
    port = _free_port()
    with open(folder / "provider.log", "wb") as log:
        server = subprocess.Popen(
            [sys.executable, "-m", "django", "runserver", f"127.0.0.1:{port}", "--noreload", "--skip-checks"],
            cwd=PROJECT_ROOT,
            env=environment,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    provider = IdentityProvider(url=f"http://127.0.0.1:{port}", environment=environment)
    try:
        _wait_until_answering(f"{provider.url}/login/", [server], timeout=60)
        yield provider
    finally:
        stop_processes(server)


@pytest.fixture(scope="session")
def sso_live_server(identity_provider, django_db_setup, django_db_blocker, tmp_path_factory):
    """The app's web server with single sign-on through the identity provider (no worker: nothing is ingested)."""
    with django_db_blocker.unblock():
        database_url = database_url_for_app_processes()
    logs = tmp_path_factory.mktemp("sso-logs")
    port = _free_port()
    base_url = f"http://127.0.0.1:{port}"
    identity_provider.run("client", CLIENT_ID, CLIENT_SECRET, f"{base_url}/oidc/callback/")
    provider = f"{identity_provider.url}/o"
    environment = {
        **app_process_environment(
            database_url=database_url, broker_url=settings.CELERY_BROKER_URL, media_root=logs / "media"
        ),
        "KB_OIDC_CLIENT_ID": CLIENT_ID,
        "KB_OIDC_CLIENT_SECRET": CLIENT_SECRET,
        "KB_OIDC_AUTHORIZATION_ENDPOINT": f"{provider}/authorize/",
        "KB_OIDC_TOKEN_ENDPOINT": f"{provider}/token/",
        "KB_OIDC_USERINFO_ENDPOINT": f"{provider}/userinfo/",
        "KB_OIDC_JWKS_ENDPOINT": f"{provider}/.well-known/jwks.json",
        "KB_OIDC_PROVIDER_NAME": "Example ID",
        "KB_OIDC_GROUP_MAP": json.dumps(GROUP_MAP),
    }
    web = start_web_server(environment, logs / "web.log", port)
    try:
        _wait_until_answering(f"{base_url}/accounts/login/", [web], timeout=180)
        yield {"url": base_url, "logs": logs}
    finally:
        stop_processes(web)


def _single_sign_on(browser, base_url: str, username: str, password: str):
    page = browser.new_context(base_url=base_url).new_page()
    page.goto("/accounts/login/")
    page.click("#single-sign-on")
    page.wait_for_url(re.compile(r"/login/\?next="))  # the provider's own login page
    page.fill("input[name=username]", username)
    page.fill("input[name=password]", password)
    page.click("#provider-login")
    return page


def _memberships(username: str) -> dict[str, str]:
    return dict(Membership.objects.filter(user__username=username).values_list("department__name", "role"))


def _app_page(base_url: str) -> re.Pattern:
    return re.compile(re.escape(base_url) + r"/(\?.*)?$")


def test_provider_login_creates_the_user_with_mapped_departments_and_updates_them_at_the_next_login(
    sso_live_server, identity_provider, browser
):
    base_url = sso_live_server["url"]
    make_department("Finance")
    make_department("Engineering")
    identity_provider.user_set("dana", "dana-provider-pw", ["finance", "auditors"])

    page = _single_sign_on(browser, base_url, "dana", "dana-provider-pw")
    page.wait_for_url(_app_page(base_url))
    sync_api.expect(page.get_by_role("button", name="Log out dana")).to_be_visible()
    dana = User.objects.get(username="dana")
    assert (dana.email, dana.role, dana.has_usable_password()) == ("dana@example.org", User.Role.AUDITOR, False)
    assert _memberships("dana") == {"Finance": "member"}

    identity_provider.user_set("dana", "dana-provider-pw", ["engineering-leads"])
    page = _single_sign_on(browser, base_url, "dana", "dana-provider-pw")
    page.wait_for_url(_app_page(base_url))
    dana.refresh_from_db()
    assert _memberships("dana") == {"Engineering": "admin"} and dana.role == User.Role.EMPLOYEE


def test_a_deactivated_user_is_turned_back_though_the_provider_accepts_them(
    sso_live_server, identity_provider, browser
):
    base_url = sso_live_server["url"]
    identity_provider.user_set("erin", "erin-provider-pw", [])
    page = _single_sign_on(browser, base_url, "erin", "erin-provider-pw")
    page.wait_for_url(_app_page(base_url))
    user_deactivate(acting_user=make_superuser(), user=User.objects.get(username="erin"))

    page.goto("/")
    page.wait_for_url(re.compile(r"/accounts/login/"))  # the session ended with the deactivation
    page = _single_sign_on(browser, base_url, "erin", "erin-provider-pw")
    page.wait_for_url(re.compile(r"/accounts/login/\?sso=failed"))
    sync_api.expect(page.get_by_role("alert")).to_contain_text("Single sign-on did not log you in")


def test_a_local_superuser_still_logs_in_with_the_form(sso_live_server, browser):
    make_superuser("break-glass")

    page = log_in(browser, sso_live_server["url"], "break-glass")

    page.goto("/organisation/")
    sync_api.expect(page.get_by_role("heading", name="Organisation")).to_be_visible()
