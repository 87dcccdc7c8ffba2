"""The one place that knows which collections, documents and chunks a user may read."""

from django.db.models import Q, QuerySet
from django.http import Http404

from kb.accounts.models import User
from kb.accounts.selectors import departments_administered_by, departments_of_user
from kb.documents.models import Chunk, Collection, Document


def collections_readable_by(*, user: User) -> QuerySet[Collection]:
    if not user.is_authenticated or not user.is_active:
        return Collection.objects.none()
    if user.is_superuser:
        return Collection.objects.all()
    return Collection.objects.filter(
        Q(visibility=Collection.Visibility.COMPANY) | Q(owner__in=departments_of_user(user=user))
    )


def collections_manageable_by(*, user: User) -> QuerySet[Collection]:
    if not user.is_authenticated or not user.is_active:
        return Collection.objects.none()
    return Collection.objects.filter(owner__in=departments_administered_by(user=user))


def documents_readable_by(*, user: User) -> QuerySet[Document]:
    return Document.objects.filter(collection__in=collections_readable_by(user=user)).select_related("collection")


def document_get_for_user(*, user: User, document_id: int) -> Document:
    try:
        return documents_readable_by(user=user).get(pk=document_id)
    except Document.DoesNotExist:
        raise Http404("No such document") from None


def documents_in_manageable_collections(*, user: User) -> QuerySet[Document]:
    return Document.objects.filter(collection__in=collections_manageable_by(user=user)).select_related("collection")


def chunk_get_for_user(*, user: User, chunk_id: int) -> Chunk:
    try:
        return (
            Chunk.objects.filter(document__collection__in=collections_readable_by(user=user))
            .select_related("document__collection")
            .get(pk=chunk_id)
        )
    except Chunk.DoesNotExist:
        raise Http404("No such passage") from None
