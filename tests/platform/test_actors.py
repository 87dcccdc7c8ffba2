"""What the app does by itself is done by a named system actor, checked and recorded like anyone's actions."""

import pytest
from django.contrib.auth import authenticate
from django.core.exceptions import PermissionDenied, ValidationError
from django.urls import reverse

from kb.accounts.models import User
from kb.accounts.services import department_create, user_create
from kb.audit.models import AuditEvent
from kb.platform.actors import SYSTEM_USERNAME, system_actor
from tests.factories import PASSWORD, ingested_document, make_collection, make_department, make_user

pytestmark = pytest.mark.django_db


def test_ingestion_and_set_up_name_the_system_actor_in_the_audit_trail():
    collection = make_collection(owner=make_department("Engineering"))
    document = ingested_document(collection=collection, name="notes.md", content=b"# Notes\n\nThe build runs nightly.")

    ingested = AuditEvent.objects.get(
        kind=AuditEvent.Kind.DOCUMENT_INGESTED, subject_id=str(document.current_version_id)
    )
    created = AuditEvent.objects.get(kind=AuditEvent.Kind.DEPARTMENT_CREATED, subject_id=str(collection.owner_id))
    assert ingested.actor == created.actor == system_actor()
    assert not AuditEvent.objects.filter(actor=None).exists()


def test_nobody_can_log_in_as_the_system_actor_or_create_its_name(client):
    actor = system_actor()
    assert not actor.has_usable_password()
    assert authenticate(username=SYSTEM_USERNAME, password="") is None
    with pytest.raises(ValidationError):
        user_create(acting_user=actor, username=SYSTEM_USERNAME.replace("system", "other"), password=PASSWORD)


def test_a_person_without_the_right_is_refused_where_the_system_actor_passes():
    employee = make_user(department=make_department("Sales"))
    with pytest.raises(PermissionDenied):
        department_create(acting_user=employee, name="Shadow IT")
    assert department_create(acting_user=system_actor(), name="Facilities").pk


def test_the_organisation_page_does_not_list_the_system_actor(client):
    system_actor()
    root = user_create(acting_user=system_actor(), username="root", password=PASSWORD, is_superuser=True)
    client.force_login(root)
    page = client.get(reverse("accounts:organisation")).content.decode()
    assert "root" in page and SYSTEM_USERNAME not in page
    assert User.objects.filter(username=SYSTEM_USERNAME).count() == 1
