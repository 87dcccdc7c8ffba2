from dataclasses import dataclass
from typing import Any

from django.db import transaction
from django.db.models import Model

from kb.accounts.models import User
from kb.accounts.selectors import departments_of_user
from kb.audit.models import AuditEvent, QueryPassage, QueryRecord


def audit_record(
    *,
    actor: User | None,
    kind: AuditEvent.Kind,
    subject: Model,
    before: dict[str, Any] | None = None,
    after: dict[str, Any] | None = None,
) -> AuditEvent:
    if not transaction.get_connection().in_atomic_block:
        raise RuntimeError("audit_record must run inside the transaction of the change it records")
    return AuditEvent.objects.create(
        actor=actor,
        kind=kind,
        subject_type=subject._meta.label,
        subject_id=str(subject.pk),
        before=before,
        after=after,
    )


@dataclass(frozen=True, kw_only=True)
class RecordedPassage:
    chunk_id: int
    document_id: int
    version_id: int
    score: float
    sent_to_model: bool
    text: str


@transaction.atomic
def query_record_create(
    *,
    user: User,
    question: str,
    answer: str,
    passages: list[RecordedPassage],
    model: str,
    backend: str,
    generation_params: dict[str, Any],
    route: dict[str, Any] | None = None,
    thinking: str = "",
    prompt_tokens: int,
    completion_tokens: int,
    retrieval_ms: int,
    first_token_ms: int | None,
    total_ms: int,
    error: str = "",
    channel: str = "web",
) -> QueryRecord:
    record = QueryRecord.objects.create(
        user=user,
        department_names=list(departments_of_user(user=user).values_list("name", flat=True)),
        channel=channel,
        question=question,
        answer=answer,
        model=model,
        backend=backend,
        route=route or {},
        thinking=thinking,
        generation_params=generation_params,
        prompt_tokens=prompt_tokens,
        completion_tokens=completion_tokens,
        retrieval_ms=retrieval_ms,
        first_token_ms=first_token_ms,
        total_ms=total_ms,
        error=error,
    )
    QueryPassage.objects.bulk_create(
        QueryPassage(
            query=record,
            rank=rank,
            chunk_id=passage.chunk_id,
            document_id=passage.document_id,
            version_id=passage.version_id,
            score=passage.score,
            sent_to_model=passage.sent_to_model,
            text=passage.text,
        )
        for rank, passage in enumerate(passages, start=1)
    )
    return record
