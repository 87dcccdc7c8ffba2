"""Deactivating a user: their sessions end at once (service, organisation page, manage.py); their records stay."""

import pytest
from django.contrib.sessions.models import Session
from django.core.exceptions import PermissionDenied, ValidationError
from django.core.management import CommandError, call_command
from django.test import Client
from django.urls import reverse

from kb.accounts.models import User
from kb.accounts.services import api_token_create, user_deactivate
from kb.audit.models import AuditEvent
from kb.platform.actors import system_actor
from tests.factories import PASSWORD, make_superuser, make_user

pytestmark = pytest.mark.django_db


def _logged_in(username: str) -> Client:
    client = Client()
    assert client.login(username=username, password=PASSWORD)
    assert client.get("/").status_code == 200
    return client


def test_deactivation_ends_every_session_of_the_user_and_no_one_elses():
    leaver, colleague = make_user(username="leaver"), make_user(username="colleague")
    laptop, phone, colleagues_laptop = _logged_in("leaver"), _logged_in("leaver"), _logged_in("colleague")
    token = api_token_create(acting_user=leaver, name="notebook", scopes=["search"]).token
    colleagues_token = api_token_create(acting_user=colleague, name="notebook", scopes=["search"]).token

    user_deactivate(acting_user=make_superuser(), user=leaver)

    assert laptop.get("/").status_code == 302 and phone.get("/").status_code == 302
    assert colleagues_laptop.get("/").status_code == 200
    assert Session.objects.count() == 1
    token.refresh_from_db()
    colleagues_token.refresh_from_db()
    assert token.revoked_at is not None and colleagues_token.revoked_at is None
    assert not Client().login(username="leaver", password=PASSWORD)
    leaver.refresh_from_db()
    assert not leaver.is_active and colleague.is_active
    event = AuditEvent.objects.get(kind=AuditEvent.Kind.USER_DEACTIVATED)
    assert event.subject_id == str(leaver.pk) and event.after == {
        "is_active": False,
        "sessions_ended": 2,
        "api_tokens_revoked": 1,
    }
    # What was recorded about them before stays.
    assert AuditEvent.objects.filter(kind=AuditEvent.Kind.USER_CREATED, subject_id=str(leaver.pk)).exists()


def test_only_a_superuser_deactivates_and_not_themselves():
    target = make_user()
    with pytest.raises(PermissionDenied):
        user_deactivate(acting_user=make_user(), user=target)
    root = make_superuser()
    with pytest.raises(ValidationError):
        user_deactivate(acting_user=root, user=root)
    with pytest.raises(ValidationError, match="system account"):
        user_deactivate(acting_user=root, user=system_actor())
    assert User.objects.filter(is_active=False).count() == 0


def test_the_organisation_page_deactivates_and_reactivates(client):
    make_superuser()
    client.login(username="root", password=PASSWORD)
    leaver = make_user(username="leaver")
    leavers_browser = _logged_in("leaver")

    response = client.post(reverse("accounts:user-deactivate", args=[leaver.pk]), headers={"HX-Request": "true"})

    assert response.status_code == 200 and "deactivated" in response.content.decode()
    assert leavers_browser.get("/").status_code == 302
    client.post(reverse("accounts:user-reactivate", args=[leaver.pk]), headers={"HX-Request": "true"})
    assert Client().login(username="leaver", password=PASSWORD)
    assert AuditEvent.objects.filter(kind=AuditEvent.Kind.USER_REACTIVATED, subject_id=str(leaver.pk)).exists()


def test_a_department_admin_cannot_deactivate_through_the_page(client):
    admin = make_user(username="dept-admin")
    client.login(username=admin.username, password=PASSWORD)
    target = make_user()

    response = client.post(reverse("accounts:user-deactivate", args=[target.pk]))

    assert response.status_code == 403
    target.refresh_from_db()
    assert target.is_active


def test_the_management_command_deactivates_as_the_system(capsys):
    make_user(username="leaver")
    leavers_browser = _logged_in("leaver")

    call_command("user_deactivate", "leaver")

    assert leavers_browser.get("/").status_code == 302
    assert AuditEvent.objects.get(kind=AuditEvent.Kind.USER_DEACTIVATED).actor == system_actor()
    assert "logged out everywhere" in capsys.readouterr().out


def test_deactivating_a_deactivated_user_or_reactivating_an_active_one_is_refused_and_records_nothing(client):
    """The audit trail says what changed: a second click (or a second admin) must not record a change from active to
    deactivated that did not happen."""
    root = make_superuser()
    leaver = make_user(username="leaver")
    user_deactivate(acting_user=root, user=leaver)
    client.login(username="root", password=PASSWORD)

    again = client.post(reverse("accounts:user-deactivate", args=[leaver.pk]), headers={"HX-Request": "true"})
    active = make_user(username="stayer")
    back = client.post(reverse("accounts:user-reactivate", args=[active.pk]), headers={"HX-Request": "true"})

    assert again.status_code == 400 and "leaver is deactivated already" in again.content.decode()
    assert back.status_code == 400 and "stayer is active already" in back.content.decode()
    assert AuditEvent.objects.filter(kind=AuditEvent.Kind.USER_DEACTIVATED).count() == 1
    assert not AuditEvent.objects.filter(kind=AuditEvent.Kind.USER_REACTIVATED).exists()
    with pytest.raises(CommandError, match="leaver is deactivated already"):
        call_command("user_deactivate", "leaver")
