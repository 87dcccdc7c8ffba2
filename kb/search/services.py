"""A search is a query like a question: the audit trail records who searched for what, under which permission filter,
and the passages they were shown, as it records an answer's (the record has no model and no answer)."""

import time
from dataclasses import asdict

from django.db import transaction

from kb.accounts.models import User
from kb.audit.models import QueryRecord
from kb.audit.services import query_record_create
from kb.search.selectors import FilteredSearch, PassageFilters, PassageHit, passages_search_with_filter_for_user


def passages_search_recorded(
    *, user: User, query_text: str, k: int, mode: str, filters: PassageFilters | None, channel: str
) -> list[PassageHit]:
    """passages_search_for_user, and its record in the audit trail. The search runs outside a transaction (its
    retrievers then run side by side on their own connections); the record is written after it."""
    if channel not in QueryRecord.SEARCH_CHANNELS:
        raise ValueError(f"not a search channel: {channel!r}")
    started = time.perf_counter()
    search = passages_search_with_filter_for_user(user=user, query_text=query_text, k=k, filters=filters, mode=mode)
    _search_record(
        user=user,
        query_text=query_text,
        search=search,
        scope={"mode": mode, "k": k, "filters": _filters_recorded(filters)},
        channel=channel,
        elapsed_ms=round((time.perf_counter() - started) * 1000),
    )
    return search.hits


@transaction.atomic
def _search_record(
    *, user: User, query_text: str, search: FilteredSearch, scope: dict, channel: str, elapsed_ms: int
) -> QueryRecord:
    return query_record_create(
        user=user,
        department_names=search.permission_filter.get("department_names", []),
        question=query_text,
        answer="",
        passages=[hit.recorded(sent_to_model=False) for hit in search.hits],
        model="",
        backend="",
        generation_params={},
        prompt_tokens=0,
        completion_tokens=0,
        retrieval_ms=elapsed_ms,
        first_token_ms=None,
        total_ms=elapsed_ms,
        scope=scope,
        permission_filter=search.permission_filter,
        flags=[] if search.hits else ["no_passages"],
        channel=channel,
    )


def _filters_recorded(filters: PassageFilters | None) -> dict:
    """The filters that narrowed the search, as JSON (unset ones left out)."""
    if filters is None:
        return {}
    return {
        name: value.isoformat() if hasattr(value, "isoformat") else list(value) if isinstance(value, tuple) else value
        for name, value in asdict(filters).items()
        if value
    }
