"""The one place that knows which collections, documents and chunks a user may read."""

from dataclasses import dataclass

from django.core.exceptions import EmptyResultSet
from django.db import connection
from django.db.models import Case, Count, Func, IntegerField, Q, QuerySet, Sum, TextChoices, Value, When
from django.db.models.functions import Coalesce
from django.http import Http404

from extract.formats import file_kind
from kb.accounts.models import User
from kb.accounts.selectors import departments_administered_by, departments_of_user
from kb.documents.models import Chunk, Collection, CollectionGrant, Document, DocumentVersion, UploadBatch


def collections_readable_by(*, user: User) -> QuerySet[Collection]:
    if not user.is_authenticated or not user.is_active:
        return Collection.objects.none()
    if user.is_superuser:
        return Collection.objects.all()
    my_departments = departments_of_user(user=user)
    granted = CollectionGrant.objects.filter(Q(department__in=my_departments) | Q(user=user)).values("collection")
    readable = Q(owner__in=my_departments) | Q(pk__in=granted)
    # Compliance auditors read query logs; documents only through a membership or a grant like anyone else.
    if user.role != User.Role.AUDITOR:
        readable |= Q(visibility=Collection.Visibility.COMPANY)
    return Collection.objects.filter(readable)


def collections_manageable_by(*, user: User) -> QuerySet[Collection]:
    if not user.is_authenticated or not user.is_active:
        return Collection.objects.none()
    return Collection.objects.filter(owner__in=departments_administered_by(user=user))


def permission_filter_of(*, user: User) -> dict:
    """What a search by this user is filtered to right now, as the audit trail records it with each query.

    One round trip: it is paid on every question.
    """
    if not user.is_authenticated:
        return {"role": "anonymous", "departments": [], "department_names": [], "collections": []}
    role = "superuser" if user.is_superuser else user.role
    statement = _permission_filter_statement(user)
    if statement is None:
        return {"role": role, "departments": [], "department_names": [], "collections": []}
    with connection.cursor() as cursor:
        cursor.execute(*statement)
        departments, department_names, collections = cursor.fetchone()
    return {"role": role, "departments": departments, "department_names": department_names, "collections": collections}


def _permission_filter_statement(user: User) -> tuple[str, list] | None:
    """The SQL of permission_filter_of for this user, built from the querysets above; None when it reads nothing.

    Building these nested querysets costs the ORM more than running them costs PostgreSQL (4 ms against 2 ms on
    two cores, bench/permission_search_scale.py), so the statement is kept per user and what decides its shape.
    Only the statement: the rows it reads, and so every membership and grant, are read anew at every call.
    """
    key = (user.pk, user.is_active, user.is_superuser, user.role)
    if key not in _statements:
        if len(_statements) >= _STATEMENTS_KEPT:
            _statements.clear()
        parts = [
            departments_of_user(user=user).order_by("pk").values("pk"),
            departments_of_user(user=user).order_by("name").values("name"),
            collections_readable_by(user=user).order_by("pk").values("pk"),
        ]
        try:
            compiled = [part.query.sql_with_params() for part in parts]
        except EmptyResultSet:  # an inactive user: collections_readable_by is none()
            _statements[key] = None
        else:
            _statements[key] = (
                "SELECT " + ", ".join(f"ARRAY({sql})" for sql, _ in compiled),
                [param for _, params in compiled for param in params],
            )
    return _statements[key]


_STATEMENTS_KEPT = 10_000
_statements: dict[tuple, tuple[str, list] | None] = {}


def chunks_readable_by(*, user: User, permission_filter: dict | None = None) -> QuerySet[Chunk]:
    """Chunks of the serving version of documents in collections the user may read.

    The readable collections are read first (one small query, at every call: nothing is cached) and go into the
    chunk query as a list of ids. Against a subquery the planner cannot tell how many chunks a user may read; with
    the ids it knows, and reads a small readable set exactly instead of walking the vector index past millions of
    rows it must filter out (bench/permission_search_scale.py). A search that has just read this user's
    `permission_filter_of` passes it, so that all its parts apply, and the audit trail records, the same filter.
    """
    readable = (permission_filter or permission_filter_of(user=user))["collections"]
    return Chunk.objects.filter(collection_id__in=readable, is_serving=True)


def chunk_get_for_user(*, user: User, chunk_id: int) -> Chunk:
    try:
        return chunks_readable_by(user=user).select_related("document__collection", "version").get(pk=chunk_id)
    except Chunk.DoesNotExist:
        raise Http404("No such passage") from None


def chunk_neighbours_for_user(*, user: User, chunk: Chunk) -> tuple[Chunk | None, Chunk | None]:
    """The passages just before and after, for context around a citation."""
    siblings = chunks_readable_by(user=user).filter(version_id=chunk.version_id)
    return (siblings.filter(ordinal=chunk.ordinal - 1).first(), siblings.filter(ordinal=chunk.ordinal + 1).first())


def document_version_pdf_get_for_reader(*, user: User, version_id: int) -> DocumentVersion:
    """A PDF whose passages the user may read, so that a citation can open the original at its page.

    The same rule as the passages themselves: the serving version of a document in a readable collection.
    """
    readable = chunks_readable_by(user=user).filter(version_id=version_id).values("version_id")
    version = DocumentVersion.objects.select_related("document").filter(pk=version_id).filter(pk__in=readable).first()
    if version is None or file_kind(version.document.original_name) != "pdf":
        raise Http404("No such PDF")
    return version


def document_versions_manageable_by(*, user: User) -> QuerySet[DocumentVersion]:
    return (
        DocumentVersion.objects.filter(document__collection__in=collections_manageable_by(user=user))
        .select_related("document__collection", "document__current_version")
        .order_by("-created_at")
    )


def document_version_get_for_manager(*, user: User, version_id: int) -> DocumentVersion:
    try:
        return document_versions_manageable_by(user=user).get(pk=version_id)
    except DocumentVersion.DoesNotExist:
        raise Http404("No such document") from None


@dataclass(frozen=True)
class BatchProgress:
    batch: UploadBatch
    files: int
    ready: int
    failed: int
    passages_done: int
    passages_total: int

    @property
    def in_progress(self) -> int:
        return self.files - self.ready - self.failed

    @property
    def is_finished(self) -> bool:
        return self.in_progress == 0


def upload_batch_progress_for_manager(*, user: User, batch_id: int) -> BatchProgress:
    batch = UploadBatch.objects.filter(collection__in=collections_manageable_by(user=user), pk=batch_id).first()
    if batch is None:
        raise Http404("No such upload")
    figures = batch.versions.aggregate(
        files=Count("id"),
        ready=Count("id", filter=Q(status=DocumentVersion.Status.READY)),
        failed=Count("id", filter=Q(status=DocumentVersion.Status.FAILED)),
        passages_done=Coalesce(Sum("progress_done"), 0),
        passages_total=Coalesce(Sum("progress_total"), 0),
    )
    return BatchProgress(batch=batch, **figures)


def document_get_for_manager(*, user: User, document_id: int) -> Document:
    try:
        return Document.objects.filter(collection__in=collections_manageable_by(user=user)).get(pk=document_id)
    except Document.DoesNotExist:
        raise Http404("No such document") from None


class BatchState(TextChoices):
    IN_PROGRESS = "in_progress", "In progress"
    FINISHED_WITH_FAILURES = "finished_with_failures", "Finished with failures"
    FINISHED = "finished", "Finished"


_UNFINISHED = (DocumentVersion.Status.QUEUED, *DocumentVersion.IN_PROGRESS)


def upload_batches_manageable_by(*, user: User) -> QuerySet[UploadBatch]:
    """Batches of the collections the user manages, newest first, with their files counted in the same query.

    A file refused at upload (`rejected`) or failed in ingestion makes a finished batch one "with failures".
    """
    return (
        UploadBatch.objects.filter(collection__in=collections_manageable_by(user=user))
        .select_related("collection__owner", "created_by")
        .annotate(
            files=Count("versions"),
            ready=Count("versions", filter=Q(versions__status=DocumentVersion.Status.READY)),
            failed=Count("versions", filter=Q(versions__status=DocumentVersion.Status.FAILED)),
            in_progress=Count("versions", filter=Q(versions__status__in=_UNFINISHED)),
            passages_done=Coalesce(Sum("versions__progress_done"), 0),
            passages_total=Coalesce(Sum("versions__progress_total"), 0),
            rejected_count=Func("rejected", function="jsonb_array_length", output_field=IntegerField()),
        )
        .annotate(
            state=Case(
                When(in_progress__gt=0, then=Value(BatchState.IN_PROGRESS)),
                When(Q(failed__gt=0) | Q(rejected_count__gt=0), then=Value(BatchState.FINISHED_WITH_FAILURES)),
                default=Value(BatchState.FINISHED),
            )
        )
        .order_by("-created_at", "-pk")
    )


def upload_batch_get_for_manager(*, user: User, batch_id: int) -> UploadBatch:
    try:
        return upload_batches_manageable_by(user=user).get(pk=batch_id)
    except UploadBatch.DoesNotExist:
        raise Http404("No such upload") from None


def document_versions_of_batch_for_manager(*, user: User, batch: UploadBatch) -> QuerySet[DocumentVersion]:
    return document_versions_manageable_by(user=user).filter(batch=batch).order_by("document__original_name", "number")


def collections_holding_logs(*, collections: QuerySet[Collection]) -> list[int]:
    """Which of these collections (already filtered for a user) hold log windows: the ask form offers log filters
    for them."""
    return list(
        Chunk.objects.filter(collection__in=collections, is_serving=True, time_start__isnull=False)
        .values_list("collection_id", flat=True)
        .distinct()
    )


def ingestion_backlog() -> dict[str, int]:
    """Versions waiting for or in ingestion, by status, across every collection: counts only, no row or name, for
    the operations figures (no acting user: they say how much work is queued, not what)."""
    counts = dict(
        DocumentVersion.objects.filter(status__in=(DocumentVersion.Status.QUEUED, *DocumentVersion.IN_PROGRESS))
        .values_list("status")
        .annotate(count=Count("pk"))
        .order_by()
    )
    return {
        str(status): counts.get(status, 0) for status in (DocumentVersion.Status.QUEUED, *DocumentVersion.IN_PROGRESS)
    }
