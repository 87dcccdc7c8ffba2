"""The Django admin shows what admins expect and changes nothing: every change goes through an audited service."""

import pytest
from django.contrib import admin
from django.urls import reverse

from kb.accounts.models import User
from kb.audit.models import AuditEvent, QueryRecord
from kb.documents.models import Collection, Document, DocumentVersion, EmbeddingModel
from tests.factories import make_collection, make_department

pytestmark = pytest.mark.django_db


@pytest.fixture
def superuser_client(client):
    client.force_login(User.objects.create_superuser("root", "root@example.com", "a long password"))
    return client


def test_admins_see_users_departments_collections_and_embedding_models(superuser_client):
    collection = make_collection(owner=make_department("Engineering"))
    for model in (User, Collection, EmbeddingModel):
        response = superuser_client.get(reverse(f"admin:{model._meta.app_label}_{model._meta.model_name}_changelist"))
        assert response.status_code == 200
    page = superuser_client.get(reverse("admin:documents_collection_change", args=[collection.pk]))
    assert page.status_code == 200 and collection.name in page.content.decode()


def test_uploaded_file_names_are_never_searched_through_the_admins_get_form(superuser_client):
    for model in (Document, DocumentVersion):
        assert not admin.site._registry[model].search_fields
        page = superuser_client.get(reverse(f"admin:documents_{model._meta.model_name}_changelist"))
        assert page.status_code == 200 and 'id="searchbar"' not in page.content.decode()


def test_no_registered_model_can_be_added_changed_or_deleted_in_the_admin(superuser_client):
    collection = make_collection(owner=make_department("Engineering"))
    assert superuser_client.get(reverse("admin:documents_collection_add")).status_code == 403
    assert (
        superuser_client.post(
            reverse("admin:documents_collection_delete", args=[collection.pk]), {"post": "yes"}
        ).status_code
        == 403
    )
    superuser_client.post(
        reverse("admin:documents_collection_change", args=[collection.pk]),
        {"name": "Renamed", "owner": collection.owner_id, "visibility": "company"},
    )
    collection.refresh_from_db()
    assert collection.name != "Renamed" and collection.visibility != "company"
    for model_admin in admin.site._registry.values():
        if model_admin.model._meta.app_label in {"accounts", "documents"}:
            assert not model_admin.has_change_permission(request=None)


def test_the_audit_trail_is_not_in_the_admin(superuser_client):
    assert AuditEvent not in admin.site._registry and QueryRecord not in admin.site._registry
