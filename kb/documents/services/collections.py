"""Collections and who may read them: creating, grants, visibility, deleting."""

from django.core.exceptions import PermissionDenied
from django.db import transaction

from kb.accounts.models import Department, User
from kb.accounts.selectors import department_is_administered_by
from kb.audit.models import AuditEvent
from kb.audit.services import audit_record
from kb.documents.models import Chunk, Collection, CollectionGrant, DocumentVersion
from kb.documents.selectors import collections_manageable_by
from kb.documents.services.files import stored_files_delete_on_commit


def collection_require_manager(*, user: User, collection: Collection) -> None:
    if not collections_manageable_by(user=user).filter(pk=collection.pk).exists():
        raise PermissionDenied(f"you may not change {collection.name}")


@transaction.atomic
def collection_create(
    *,
    acting_user: User,
    name: str,
    owner: Department,
    visibility: Collection.Visibility = Collection.Visibility.DEPARTMENT,
) -> Collection:
    if not department_is_administered_by(user=acting_user, department=owner):
        raise PermissionDenied(f"you do not administer {owner.name}")
    collection = Collection(name=name, owner=owner, visibility=visibility, created_by=acting_user)
    collection.full_clean()
    collection.save()
    audit_record(
        actor=acting_user,
        kind=AuditEvent.Kind.COLLECTION_CREATED,
        subject=collection,
        after={"name": name, "owner": owner.pk, "visibility": visibility},
    )
    return collection


@transaction.atomic
def grant_create(
    *, acting_user: User, collection: Collection, department: Department | None = None, user: User | None = None
) -> CollectionGrant:
    collection_require_manager(user=acting_user, collection=collection)
    grant = CollectionGrant(collection=collection, department=department, user=user, granted_by=acting_user)
    grant.full_clean()
    grant.save()
    audit_record(
        actor=acting_user,
        kind=AuditEvent.Kind.GRANT_CREATED,
        subject=grant,
        after={
            "collection": collection.pk,
            "department": getattr(department, "pk", None),
            "user": getattr(user, "pk", None),
        },
    )
    return grant


@transaction.atomic
def collection_visibility_change(
    *, acting_user: User, collection: Collection, visibility: Collection.Visibility
) -> Collection:
    """Company-wide or department-only; like a revoked grant, narrowing takes effect on the next query."""
    collection_require_manager(user=acting_user, collection=collection)
    before = {"visibility": collection.visibility}
    collection.visibility = visibility
    collection.full_clean()
    collection.save(update_fields=["visibility"])
    audit_record(
        actor=acting_user,
        kind=AuditEvent.Kind.COLLECTION_VISIBILITY_CHANGED,
        subject=collection,
        before=before,
        after={"visibility": visibility},
    )
    return collection


@transaction.atomic
def grant_revoke(*, acting_user: User, grant: CollectionGrant) -> None:
    """Takes effect on the very next query: permissions are read in the SQL of every search, never cached."""
    collection_require_manager(user=acting_user, collection=grant.collection)
    audit_record(
        actor=acting_user,
        kind=AuditEvent.Kind.GRANT_REVOKED,
        subject=grant,
        before={
            "collection": grant.collection_id,
            "department": grant.department_id,
            "user": grant.user_id,
            "granted_by": grant.granted_by_id,
            "granted_at": grant.created_at.isoformat(),
        },
    )
    grant.delete()


@transaction.atomic
def collection_delete(*, acting_user: User, collection: Collection) -> None:
    """Remove a collection with its documents, chunks and vectors in one transaction; files go after commit."""
    collection_require_manager(user=acting_user, collection=collection)
    versions = DocumentVersion.objects.filter(document__collection=collection)
    before = {
        "name": collection.name,
        "documents": collection.documents.count(),
        "chunks": Chunk.objects.filter(document__collection=collection).count(),
    }
    stored_files_delete_on_commit(list(versions.values_list("file", flat=True)))
    audit_record(actor=acting_user, kind=AuditEvent.Kind.COLLECTION_DELETED, subject=collection, before=before)
    collection.delete()
