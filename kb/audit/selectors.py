"""Who may read which query records: auditors the whole log, everyone else their own questions only.

Department admins get nothing extra here: administering a department gives no view of its members' questions.
Every filter runs in the SQL, so the list, its count and a streamed export of millions of rows read the same rows.
"""

from dataclasses import asdict, dataclass
from datetime import date, datetime, time, timedelta
from typing import Any

from django.contrib.auth import get_user_model
from django.contrib.auth.models import AbstractUser, AnonymousUser
from django.core.exceptions import PermissionDenied
from django.db.models import Exists, OuterRef, Prefetch, Q, QuerySet, Subquery, TextChoices
from django.http import Http404
from django.utils import timezone

from kb.audit.models import QueryFeedback, QueryPassage, QueryRecord


class FeedbackFilter(TextChoices):
    ANY = "any", "Any feedback"
    HELPFUL = "helpful", "Helpful"
    NOT_HELPFUL = "not_helpful", "Not helpful"
    NONE = "none", "No feedback"


@dataclass(frozen=True, kw_only=True)
class QueryLogFilters:
    """What an auditor narrows the log to; empty values filter nothing."""

    username: str = ""
    department: str = ""  # a department the asker was in, or below, when asking (names are recorded with ancestors)
    date_from: date | None = None  # inclusive, in the site's time zone
    date_to: date | None = None  # inclusive
    text: str = ""  # in the question or the answer, case-insensitive
    model: str = ""
    flagged: bool = False  # only records with at least one flag
    feedback: str = ""  # a FeedbackFilter value; "" is any or none

    def as_audit_dict(self) -> dict[str, Any]:
        """The filters that are set, in JSON form, as an export's audit event records them."""
        return {
            key: value.isoformat() if isinstance(value, date) else value
            for key, value in asdict(self).items()
            if value not in ("", None, False)
        }


def can_audit_queries(user: AbstractUser | AnonymousUser) -> bool:
    """Superusers and compliance auditors (the role Role.AUDITOR of AUTH_USER_MODEL)."""
    return (
        user.is_authenticated and user.is_active and (user.is_superuser or user.role == get_user_model().Role.AUDITOR)
    )


def _require_auditor(user: AbstractUser) -> None:
    if not can_audit_queries(user):
        raise PermissionDenied("Only compliance auditors read the query log.")


def _start_of_day(day: date) -> datetime:
    return timezone.make_aware(datetime.combine(day, time.min))


def _with_latest_rating(records: QuerySet[QueryRecord]) -> QuerySet[QueryRecord]:
    """A later verdict is a new feedback row; the latest one is the answer's current rating (None: never rated)."""
    latest = QueryFeedback.objects.filter(query=OuterRef("pk")).order_by("-created_at", "-id").values("rating")[:1]
    return records.annotate(latest_rating=Subquery(latest))


def _filtered(records: QuerySet[QueryRecord], filters: QueryLogFilters) -> QuerySet[QueryRecord]:
    if filters.username:
        records = records.filter(user__username__iexact=filters.username.strip())
    if filters.department:
        records = records.filter(department_names__contains=[filters.department.strip()])
    # Whole days as ranges on created_at (not created_at::date), so the index on it serves them.
    if filters.date_from and filters.date_from > date.min:
        records = records.filter(created_at__gte=_start_of_day(filters.date_from))
    # The calendar's first and last days bound nothing, and a day past the last (or UTC before the first) has no date.
    if filters.date_to and filters.date_to < date.max:
        records = records.filter(created_at__lt=_start_of_day(filters.date_to + timedelta(days=1)))
    if filters.text:
        text = filters.text.strip()
        records = records.filter(Q(question__icontains=text) | Q(answer__icontains=text))
    if filters.model:
        records = records.filter(model=filters.model.strip())
    if filters.flagged:
        records = records.exclude(flags=[])
    if filters.feedback == FeedbackFilter.ANY:
        records = records.filter(Exists(QueryFeedback.objects.filter(query=OuterRef("pk"))))
    elif filters.feedback == FeedbackFilter.NONE:
        records = records.filter(~Exists(QueryFeedback.objects.filter(query=OuterRef("pk"))))
    elif filters.feedback == FeedbackFilter.HELPFUL:
        records = records.filter(latest_rating=QueryFeedback.Rating.HELPFUL)
    elif filters.feedback == FeedbackFilter.NOT_HELPFUL:
        records = records.filter(latest_rating=QueryFeedback.Rating.NOT_HELPFUL)
    return records


def query_records_for_auditor(*, user: AbstractUser, filters: QueryLogFilters | None = None) -> QuerySet[QueryRecord]:
    """The query log, newest first, for compliance auditors and superusers; PermissionDenied for anyone else."""
    _require_auditor(user)
    records = _with_latest_rating(QueryRecord.objects.select_related("user"))
    return _filtered(records, filters or QueryLogFilters()).order_by("-created_at", "-id")


def _with_recorded_detail(records: QuerySet[QueryRecord]) -> QuerySet[QueryRecord]:
    return _with_latest_rating(records.select_related("user")).prefetch_related(
        Prefetch("passages", queryset=QueryPassage.objects.order_by("rank")),
        Prefetch("feedback", queryset=QueryFeedback.objects.select_related("user").order_by("created_at", "id")),
    )


def query_record_get_for_auditor(*, user: AbstractUser, record_id: int) -> QueryRecord:
    """One record with its passages exactly as recorded (never re-read from the documents) and its feedback rows."""
    _require_auditor(user)
    record = _with_recorded_detail(QueryRecord.objects.filter(pk=record_id)).first()
    if record is None:
        raise Http404("No such query record")
    return record


def query_records_of_user(*, user: AbstractUser, filters: QueryLogFilters | None = None) -> QuerySet[QueryRecord]:
    """The user's own questions, newest first; the same filters apply (someone else's name matches nothing)."""
    if not user.is_authenticated:
        return QueryRecord.objects.none()
    records = _with_latest_rating(QueryRecord.objects.filter(user=user).select_related("user"))
    return _filtered(records, filters or QueryLogFilters()).order_by("-created_at", "-id")


def query_record_get_for_owner(*, user: AbstractUser, record_id: int) -> QueryRecord:
    """One of the user's own records; 404 for anyone else's, auditors' and admins' included (they use the log)."""
    if not user.is_authenticated:
        raise Http404("No such question in your history")
    record = _with_recorded_detail(QueryRecord.objects.filter(user=user, pk=record_id)).first()
    if record is None:
        raise Http404("No such question in your history")
    return record


def query_record_get_for_feedback(*, user: AbstractUser, record_id: int) -> QueryRecord:
    """The record a user rates: 404 when there is none, PermissionDenied when someone else asked it."""
    record = QueryRecord.objects.filter(pk=record_id).first()
    if record is None:
        raise Http404("No such query record")
    if record.user_id != user.pk:
        raise PermissionDenied("You can only rate your own answers.")
    return record


def query_feedback_latest(*, record: QueryRecord) -> QueryFeedback | None:
    """The current verdict on a record (the latest row), for showing beside the feedback buttons."""
    return QueryFeedback.objects.filter(query=record).order_by("-created_at", "-id").first()


def prefill_tokens_per_second_measured(*, model: str, recent: int = 50) -> float | None:
    """How fast `model` read its prompts lately: the median of prompt tokens over time to first token (less
    retrieval) of its recent answers, for sizing the next prompts; None before it has answered a long enough one."""
    rows = (
        QueryRecord.objects.filter(model=model, prompt_tokens__gte=100, first_token_ms__isnull=False)
        .order_by("-id")
        .values_list("prompt_tokens", "first_token_ms", "retrieval_ms")[:recent]
    )
    speeds = sorted(tokens * 1000 / max(first - retrieval, 1) for tokens, first, retrieval in rows)
    return speeds[len(speeds) // 2] if speeds else None
