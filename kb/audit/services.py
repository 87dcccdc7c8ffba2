from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from django.contrib.auth.models import AbstractUser
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import connection, transaction
from django.db.models import Max, Model
from django.utils import timezone

from kb.audit.ledger import RecordedPassage, chain_lock, ledger_append, query_record_append
from kb.audit.models import AuditEvent, LedgerEntry, QueryFeedback, QueryRecord


def audit_record(
    *,
    actor: AbstractUser,
    kind: AuditEvent.Kind,
    subject: Model,
    before: dict[str, Any] | None = None,
    after: dict[str, Any] | None = None,
) -> AuditEvent:
    if not transaction.get_connection().in_atomic_block:
        raise RuntimeError("audit_record must run inside the transaction of the change it records")
    event = AuditEvent.objects.create(
        actor=actor,
        kind=kind,
        subject_type=subject._meta.label,
        subject_id=str(subject.pk),
        before=before,
        after=after,
    )
    ledger_append(kind=LedgerEntry.Kind.EVENT, object_id=event.pk)
    return event


def query_record_create(
    *,
    user: AbstractUser,
    department_names: list[str],
    question: str,
    answer: str,
    passages: list[RecordedPassage],
    model: str,
    backend: str,
    generation_params: dict[str, Any],
    prompt_tokens: int,
    completion_tokens: int,
    retrieval_ms: int,
    first_token_ms: int | None,
    total_ms: int,
    route: dict[str, Any] | None = None,
    thinking: str = "",
    scope: dict[str, Any] | None = None,
    permission_filter: dict[str, Any] | None = None,
    citations: list[dict[str, Any]] | None = None,
    flags: list[str] | None = None,
    error: str = "",
    channel: str = "web",
) -> QueryRecord:
    """Record one question, its answer and the passages retrieved for it, linked into the audit chain.

    `department_names` are the asker's departments and those above them, as the caller's search read them with its
    permission filter (the audit app knows no departments). Every query pays for its record, so it is two
    statements and no transaction of its own (query_record_append).
    """
    return query_record_append(
        passages=passages,
        user_id=user.pk,
        department_names=department_names,
        channel=channel,
        question=question,
        answer=answer,
        model=model,
        backend=backend,
        route=route or {},
        generation_params=generation_params,
        thinking=thinking,
        prompt_tokens=prompt_tokens,
        completion_tokens=completion_tokens,
        retrieval_ms=retrieval_ms,
        first_token_ms=first_token_ms,
        total_ms=total_ms,
        error=error,
        scope=scope or {},
        permission_filter=permission_filter or {},
        citations=citations or [],
        flags=flags or [],
    )


@transaction.atomic
def query_feedback_create(*, user: AbstractUser, record: QueryRecord, rating: int, comment: str = "") -> QueryFeedback:
    """Only the person who asked judges the answer; a later verdict is a new row, the earlier stays on record."""
    if record.user_id != user.pk:
        raise PermissionDenied("You can only rate your own answers.")
    if record.is_search:
        raise ValidationError("A search has no answer to rate.")
    feedback = QueryFeedback(query=record, user=user, rating=rating, comment=comment.strip()[:2000])
    feedback.full_clean()
    feedback.save()
    ledger_append(kind=LedgerEntry.Kind.FEEDBACK, object_id=feedback.pk)
    return feedback


@transaction.atomic
def audit_export_record(
    *, actor: AbstractUser, export_format: str, filters: dict[str, Any], rows: int | None = None
) -> AuditEvent:
    """Exports of the audit trail are themselves on it: who took which records out, and when."""
    return audit_record(
        actor=actor,
        kind=AuditEvent.Kind.AUDIT_EXPORTED,
        subject=actor,
        after={"format": export_format, "filters": filters, "rows": rows},
    )


@dataclass(frozen=True)
class PurgeResult:
    through_sequence: int
    events: int
    queries: int
    feedback: int


@transaction.atomic
def audit_purge(*, acting_user: AbstractUser, older_than_days: int) -> PurgeResult | None:
    """Remove audit rows older than the retention period, keeping the chain verifiable.

    The cut is a prefix of the chain: the purge records the last removed sequence and its hash, and verification
    starts from there. A query whose feedback is younger than the cut stays, with everything after it.
    """
    if older_than_days < 1:
        raise ValidationError("Retention must be at least one day.")
    if not acting_user.is_superuser:
        raise PermissionDenied("Only a superuser may purge the audit trail.")
    cutoff = timezone.now() - timedelta(days=older_than_days)
    chain_lock()
    with connection.cursor() as cursor:
        # The append-only triggers let rows go only inside a transaction that says it is the retention purge.
        cursor.execute("SET LOCAL kb.audit_purge = 'on'")
    through = LedgerEntry.objects.filter(created_at__lt=cutoff).aggregate(Max("sequence"))["sequence__max"]
    if through is None:
        return None
    young_feedback = QueryFeedback.objects.filter(
        pk__in=LedgerEntry.objects.filter(kind=LedgerEntry.Kind.FEEDBACK, sequence__gt=through).values("object_id")
    )
    blocking = LedgerEntry.objects.filter(
        kind=LedgerEntry.Kind.QUERY, sequence__lte=through, object_id__in=young_feedback.values("query_id")
    )
    if first_blocking := blocking.order_by("sequence").first():
        through = first_blocking.sequence - 1
    last = LedgerEntry.objects.filter(sequence=through).first()
    if last is None:
        return None
    removed = LedgerEntry.objects.filter(sequence__lte=through)
    ids = {kind: removed.filter(kind=kind).values("object_id") for kind in LedgerEntry.Kind.values}
    result = PurgeResult(
        through_sequence=through,
        feedback=QueryFeedback.objects.filter(pk__in=ids[LedgerEntry.Kind.FEEDBACK])
        .delete()[1]
        .get(QueryFeedback._meta.label, 0),
        queries=QueryRecord.objects.filter(pk__in=ids[LedgerEntry.Kind.QUERY])
        .delete()[1]
        .get(QueryRecord._meta.label, 0),
        events=AuditEvent.objects.filter(pk__in=ids[LedgerEntry.Kind.EVENT]).delete()[1].get(AuditEvent._meta.label, 0),
    )
    removed.delete()
    audit_record(
        actor=acting_user,
        kind=AuditEvent.Kind.AUDIT_PURGED,
        subject=last,
        after={
            "through_sequence": through,
            "continues_from": last.entry_hash,
            "older_than": cutoff.isoformat(),
            "removed": {"events": result.events, "queries": result.queries, "feedback": result.feedback},
        },
    )
    return result
