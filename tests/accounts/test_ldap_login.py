"""LDAP logins against a real slapd (tests/accounts/conftest.py), through the app's own login page."""

import json

import environ
import pytest
from django.core.management import CommandError, call_command

from kb.accounts.models import Membership, User
from kb.accounts.selectors import api_token_authenticated
from kb.accounts.services import api_token_create, user_deactivate
from kb.accounts.sso_settings import sso_settings_from_env
from kb.audit.models import AuditEvent
from kb.platform.actors import system_actor
from tests.conftest import _free_port
from tests.factories import PASSWORD, make_department, make_superuser, make_user

pytestmark = pytest.mark.django_db

GROUP_MAP = json.dumps(
    {
        "cn=finance,ou=groups,dc=example,dc=org": {"departments": {"Finance": "member"}},
        "cn=finance-leads,ou=groups,dc=example,dc=org": {"departments": {"Finance": "admin"}},
        "cn=engineering,ou=groups,dc=example,dc=org": {"departments": {"Engineering": "member"}},
        "cn=auditors,ou=groups,dc=example,dc=org": {"role": "auditor"},
    }
)


@pytest.fixture
def ldap_configured(settings, ldap_directory):
    """The settings kb/settings.py makes of the KB_LDAP_* variables for this directory."""
    env = environ.Env()
    env.ENVIRON = ldap_directory.environment(GROUP_MAP)
    for name, value in sso_settings_from_env(env).items():
        setattr(settings, name, value)
    return ldap_directory


@pytest.fixture
def departments():
    return {name: make_department(name) for name in ("Finance", "Engineering", "Sales")}


def _log_in(client, username: str, password: str) -> bool:
    client.post("/accounts/login/", {"username": username, "password": password})
    return "_auth_user_id" in client.session


def _memberships(username: str) -> dict[str, str]:
    return dict(
        Membership.objects.filter(user__username=username).values_list("department__name", "role").order_by("pk")
    )


def test_first_login_creates_the_user_with_the_departments_and_role_of_their_groups(
    client, ldap_configured, departments
):
    assert _log_in(client, "alice", "alice-directory-pw")
    alice = User.objects.get(username="alice")
    assert (alice.email, alice.first_name, alice.has_usable_password()) == ("alice@example.org", "Alice", False)
    assert alice.directory == User.Directory.LDAP
    # finance gives member and finance-leads admin: the stronger role wins.
    assert _memberships("alice") == {"Finance": "admin"} and alice.role == User.Role.EMPLOYEE
    system = system_actor()
    created = AuditEvent.objects.get(kind=AuditEvent.Kind.USER_CREATED, subject_id=str(alice.pk))
    assert created.actor == system and created.after["directory"] == "ldap"
    assert AuditEvent.objects.filter(kind=AuditEvent.Kind.MEMBERSHIP_CREATED, actor=system).count() == 1

    assert _log_in(client.__class__(), "carol", "carol-directory-pw")
    carol = User.objects.get(username="carol")
    assert _memberships("carol") == {"Engineering": "member"} and carol.role == User.Role.AUDITOR


def test_a_user_removed_from_a_group_loses_its_department_at_the_next_login(client, ldap_configured, departments):
    assert _log_in(client, "bob", "bob-directory-pw")
    assert _memberships("bob") == {"Finance": "member", "Engineering": "member"}
    bob = User.objects.get(username="bob")
    # A department the group map does not name is managed here, by hand, and the directory leaves it alone.
    Membership.objects.create(user=bob, department=departments["Sales"])

    ldap_configured.group_members_set("finance", ["alice"])
    try:
        client.logout()
        assert _log_in(client, "bob", "bob-directory-pw")
    finally:
        ldap_configured.group_members_set("finance", ["alice", "bob"])

    assert _memberships("bob") == {"Engineering": "member", "Sales": "member"}
    removed = AuditEvent.objects.get(kind=AuditEvent.Kind.MEMBERSHIP_DELETED)
    assert removed.actor == system_actor() and removed.before["department"] == departments["Finance"].pk


def test_a_wrong_directory_password_is_refused(client, ldap_configured, departments):
    assert not _log_in(client, "alice", "not-alices-password")
    assert not _log_in(client, "nobody-in-the-directory", "whatever-password")


def test_a_local_superuser_logs_in_with_the_local_password_and_a_directory_namesake_cannot(
    client, ldap_configured, departments
):
    admin = make_superuser("root-admin")
    # The directory holds a root-admin too, with a password of its own: it must not reach the local account.
    assert not _log_in(client, "root-admin", "impostor-directory-pw")
    admin.refresh_from_db()
    assert admin.last_name == "" and admin.has_usable_password()

    assert _log_in(client, "root-admin", PASSWORD)
    assert client.get("/organisation/").status_code == 200


def test_a_deactivated_directory_user_is_refused_though_the_directory_accepts_the_password(
    client, ldap_configured, departments
):
    assert _log_in(client, "alice", "alice-directory-pw")
    alice = User.objects.get(username="alice")
    user_deactivate(acting_user=make_superuser(), user=alice)
    assert client.get("/").status_code == 302  # the session ended with the deactivation

    assert not _log_in(client.__class__(), "alice", "alice-directory-pw")


def test_directory_sync_applies_group_changes_without_a_login_and_lists_who_left(
    client, ldap_configured, departments, capsys
):
    assert _log_in(client, "carol", "carol-directory-pw")
    leaver = User.objects.create(username="frank", directory=User.Directory.LDAP, password="!")
    Membership.objects.create(user=leaver, department=departments["Engineering"])
    local = make_user(username="local-engineer", department=departments["Engineering"])

    ldap_configured.group_members_set("engineering", ["bob"])
    try:
        call_command("directory_sync")
    finally:
        ldap_configured.group_members_set("engineering", ["bob", "carol"])

    assert _memberships("carol") == {} and User.objects.get(username="carol").role == User.Role.AUDITOR
    assert _memberships("frank") == {}
    assert _memberships(local.username) == {"Engineering": "member"}  # local accounts are never touched
    report = capsys.readouterr().out.splitlines()
    assert report[1].startswith("no longer in the directory") and report[1].endswith(": frank")


def test_directory_sync_concludes_nothing_when_the_directory_does_not_answer(settings, ldap_configured, departments):
    carol = User.objects.create(username="carol", directory=User.Directory.LDAP, password="!")
    Membership.objects.create(user=carol, department=departments["Engineering"])
    settings.AUTH_LDAP_SERVER_URI = f"ldap://127.0.0.1:{_free_port()}"

    with pytest.raises(CommandError, match="did not answer"):
        call_command("directory_sync")

    assert _memberships("carol") == {"Engineering": "member"}


def test_directory_sync_deactivates_who_left_when_asked(ldap_configured, departments, capsys):
    leaver = User.objects.create(username="frank", directory=User.Directory.LDAP, password="!")
    token = api_token_create(acting_user=leaver, name="script", scopes=["ask"]).plaintext

    call_command("directory_sync", deactivate_missing=True)

    leaver.refresh_from_db()
    assert not leaver.is_active
    assert api_token_authenticated(presented=token) is None  # the API token ends with the account
    event = AuditEvent.objects.get(kind=AuditEvent.Kind.USER_DEACTIVATED, subject_id=str(leaver.pk))
    assert event.actor.username == system_actor().username
    assert capsys.readouterr().out.splitlines()[1] == "no longer in the directory, deactivated: frank"


def test_a_login_records_what_the_directory_changed_in_the_name_and_e_mail(client, ldap_configured, departments):
    assert _log_in(client, "alice", "alice-directory-pw")
    assert not AuditEvent.objects.filter(kind=AuditEvent.Kind.USER_PROFILE_SYNCED).exists()  # a new user: created
    User.objects.filter(username="alice").update(email="alice@old.example.org")  # as it was before a directory change

    assert _log_in(client.__class__(), "alice", "alice-directory-pw")
    assert _log_in(client.__class__(), "alice", "alice-directory-pw")  # nothing changed since: nothing recorded

    [synced] = AuditEvent.objects.filter(kind=AuditEvent.Kind.USER_PROFILE_SYNCED)
    assert (synced.before, synced.after) == ({"email": "alice@old.example.org"}, {"email": "alice@example.org"})
    assert synced.actor == system_actor() and synced.subject_id == str(User.objects.get(username="alice").pk)
