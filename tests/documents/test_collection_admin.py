import pytest
from django.urls import reverse

from kb.audit.models import AuditEvent
from kb.documents.models import Chunk, Collection
from kb.documents.services import collection_create
from kb.platform.actors import system_actor
from tests.factories import PASSWORD, ingested_document, make_collection, make_department, make_user

pytestmark = pytest.mark.django_db

HTMX = {"HX-Request": "true"}


@pytest.fixture
def legal_admin(client):
    legal = make_department("Legal")
    admin = make_user(department=legal, admin=True)
    client.login(username=admin.username, password=PASSWORD)
    return admin


def test_a_department_admin_with_no_collection_yet_creates_one(client, legal_admin):
    legal = legal_admin.memberships.get().department

    response = client.post(
        reverse("documents:collection-create"),
        {"name": "Contracts", "owner": legal.pk, "visibility": "department"},
        headers=HTMX,
    )

    assert response.status_code == 200
    assert 'id="collection-' in response.content.decode()
    contracts = Collection.objects.get(name="Contracts")
    assert contracts.owner == legal and contracts.created_by == legal_admin


def test_a_collection_cannot_be_created_for_a_department_one_does_not_administer(client, legal_admin):
    sales = make_department("Sales")

    response = client.post(reverse("documents:collection-create"), {"name": "Leads", "owner": sales.pk}, headers=HTMX)

    assert response.status_code == 404
    assert not Collection.objects.filter(name="Leads").exists()


def test_a_duplicate_name_is_refused_with_the_reason(client, legal_admin):
    legal = legal_admin.memberships.get().department
    collection_create(acting_user=system_actor(), name="Contracts", owner=legal)

    response = client.post(
        reverse("documents:collection-create"), {"name": "Contracts", "owner": legal.pk}, headers=HTMX
    )

    assert response.status_code == 400 and "already exists" in response.content.decode()


def test_visibility_change_is_audited_and_delete_removes_the_passages(client, legal_admin):
    legal = legal_admin.memberships.get().department
    collection = make_collection(owner=legal)
    ingested_document(collection=collection, name="nda.md", content=b"# NDA\nConfidential for two years.")

    client.post(
        reverse("documents:collection-visibility", args=[collection.pk]), {"visibility": "company"}, headers=HTMX
    )
    collection.refresh_from_db()
    assert collection.visibility == Collection.Visibility.COMPANY
    change = AuditEvent.objects.get(kind=AuditEvent.Kind.COLLECTION_VISIBILITY_CHANGED)
    assert change.before == {"visibility": "department"} and change.actor == legal_admin

    response = client.post(reverse("documents:collection-delete", args=[collection.pk]), headers=HTMX)

    assert response.status_code == 200 and "Deleted" in response.content.decode()
    assert not Chunk.objects.filter(collection_id=collection.pk).exists()


def test_another_departments_collection_cannot_be_changed(client, legal_admin):
    foreign = make_collection(owner=make_department("Sales"))

    visibility = client.post(
        reverse("documents:collection-visibility", args=[foreign.pk]), {"visibility": "company"}, headers=HTMX
    )
    deletion = client.post(reverse("documents:collection-delete", args=[foreign.pk]), headers=HTMX)

    assert visibility.status_code == 404 and deletion.status_code == 404
    foreign.refresh_from_db()
    assert foreign.visibility == Collection.Visibility.DEPARTMENT
