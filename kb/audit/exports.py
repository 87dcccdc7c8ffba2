"""The query log as a stream of bytes, in constant memory for any number of records.

CSV has one row per record (a passage count and the cited chunk ids instead of the passages); JSON Lines has one
object per record with its passages and feedback rows inside. Records come from a server-side cursor
(`QuerySet.iterator(chunk_size=...)`), a chunk at a time; for JSON Lines the passages and feedback of each chunk come
from one plain `values_list` query each (prefetch_related builds a queryset per record: four times slower, see
bench/audit_export.py). Lines leave in pieces of about BUFFER_BYTES.

The cursor runs inside a transaction: outside one (autocommit) Django declares it WITH HOLD, and PostgreSQL then
materialises the whole result on the server before the first row comes back. Inside one, rows stream as the query
produces them, and the export reads one consistent snapshot.
"""

import csv
import json
import sys
import threading
from collections import defaultdict
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

from asgiref.sync import sync_to_async
from django.db import transaction
from django.db.models import Count, OuterRef, QuerySet, Subquery
from django.db.models.functions import Coalesce

from kb.audit.ledger import PASSAGE_FIELDS
from kb.audit.models import QueryFeedback, QueryPassage, QueryRecord

EXPORT_CHUNK_SIZE = 2000  # records per fetch from the server-side cursor (and per prefetch of their passages)
BUFFER_BYTES = 64 * 1024  # bytes handed to the server at a time

CSV_COLUMNS = (
    "id",
    "created_at",
    "username",
    "department_names",
    "channel",
    "model",
    "backend",
    "question",
    "answer",
    "thinking",
    "error",
    "flags",
    "prompt_tokens",
    "completion_tokens",
    "retrieval_ms",
    "first_token_ms",
    "total_ms",
    "passages",
    "cited_chunk_ids",
    "feedback",
)
_RATING_NAMES = {QueryFeedback.Rating.HELPFUL: "helpful", QueryFeedback.Rating.NOT_HELPFUL: "not_helpful"}


class _Line:
    """csv.writer writes into this and gets the line back (the pattern of Django's streaming CSV how-to)."""

    def write(self, value: str) -> str:
        return value


_FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def _spreadsheet_safe(text: str) -> str:
    """Text a spreadsheet would run as a formula (a question typed as "=HYPERLINK(...)") gets a leading apostrophe.

    OWASP's advice for CSV injection: the export is opened by auditors in spreadsheet programs. The JSON Lines export
    keeps every recorded text exactly.
    """
    return "'" + text if text.startswith(_FORMULA_STARTS) else text


def _cited_chunk_ids(record: QueryRecord) -> list[int]:
    return [
        citation["chunk_id"]
        for citation in record.citations
        if isinstance(citation, dict) and citation.get("chunk_id") is not None
    ]


def _chunks(records: QuerySet[QueryRecord], chunk_size: int) -> Iterator[list[QueryRecord]]:
    chunk: list[QueryRecord] = []
    for record in records.iterator(chunk_size=chunk_size):
        chunk.append(record)
        if len(chunk) >= chunk_size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def _stream(
    records: QuerySet[QueryRecord],
    *,
    header: bytes,
    encode: Callable[[list[QueryRecord]], Iterator[bytes]],
    chunk_size: int,
) -> Iterator[bytes]:
    pending, size = [header] if header else [], len(header)
    # The transaction is ended only on the thread that began it. A stream abandoned half-way under ASGI (the client
    # went away) can be closed from another thread, whose connection is another one: there nothing is done, and
    # the request's own connection, left in the transaction, is closed by Django as the request ends
    # (close_old_connections), which rolls it back.
    owner = threading.get_ident()
    atomic = transaction.atomic()
    atomic.__enter__()
    chunks = _chunks(records, chunk_size)
    try:
        for chunk in chunks:
            for line in encode(chunk):
                pending.append(line)
                size += len(line)
                if size >= BUFFER_BYTES:
                    yield b"".join(pending)
                    pending, size = [], 0
    except BaseException:
        if threading.get_ident() == owner:
            chunks.close()  # the server-side cursor first, inside its transaction
            atomic.__exit__(*sys.exc_info())
        raise
    atomic.__exit__(None, None, None)
    if pending:
        yield b"".join(pending)


def query_log_csv(records: QuerySet[QueryRecord], *, chunk_size: int = EXPORT_CHUNK_SIZE) -> Iterator[bytes]:
    """CSV bytes for the records as the selector returned them (filtered, ordered, `latest_rating` annotated)."""
    passages = (
        QueryPassage.objects.filter(query=OuterRef("pk"))
        .order_by()
        .values("query")
        .annotate(count=Count("pk"))
        .values("count")
    )
    records = records.annotate(passage_count=Coalesce(Subquery(passages), 0))
    writer = csv.writer(_Line())

    def encode(chunk: list[QueryRecord]) -> Iterator[bytes]:
        for record in chunk:
            yield encode_one(record)

    def encode_one(record: QueryRecord) -> bytes:
        return writer.writerow(
            [
                record.pk,
                record.created_at.isoformat(),
                _spreadsheet_safe(record.user.username),
                _spreadsheet_safe("; ".join(record.department_names)),
                record.channel,
                _spreadsheet_safe(record.model),
                record.backend,
                _spreadsheet_safe(record.question),
                _spreadsheet_safe(record.answer),
                _spreadsheet_safe(record.thinking),
                _spreadsheet_safe(record.error),
                " ".join(record.flags),
                record.prompt_tokens,
                record.completion_tokens,
                record.retrieval_ms,
                "" if record.first_token_ms is None else record.first_token_ms,
                record.total_ms,
                record.passage_count,
                " ".join(str(chunk_id) for chunk_id in _cited_chunk_ids(record)),
                _RATING_NAMES.get(record.latest_rating, ""),
            ]
        ).encode()

    return _stream(records, header=writer.writerow(CSV_COLUMNS).encode(), encode=encode, chunk_size=chunk_size)


def _passages_by_record(ids: list[int]) -> dict[int, list[dict[str, Any]]]:
    grouped: dict[int, list[dict[str, Any]]] = defaultdict(list)
    rows = (
        QueryPassage.objects.filter(query_id__in=ids)
        .order_by("query_id", "rank")
        .values_list("query_id", *PASSAGE_FIELDS)
    )
    for query_id, *values in rows:
        grouped[query_id].append(dict(zip(PASSAGE_FIELDS, values)))
    return grouped


def _feedback_by_record(ids: list[int]) -> dict[int, list[dict[str, Any]]]:
    grouped: dict[int, list[dict[str, Any]]] = defaultdict(list)
    rows = (
        QueryFeedback.objects.filter(query_id__in=ids)
        .order_by("query_id", "created_at", "id")
        .values_list("query_id", "user_id", "rating", "comment", "created_at")
    )
    for query_id, user_id, rating, comment, created_at in rows:
        grouped[query_id].append(
            {"user_id": user_id, "rating": rating, "comment": comment, "created_at": created_at.isoformat()}
        )
    return grouped


def query_record_as_json(
    record: QueryRecord, *, passages: list[dict[str, Any]], feedback: list[dict[str, Any]]
) -> dict[str, Any]:
    """A record with its passages as the user received them and its feedback rows."""
    return {
        "id": record.pk,
        "created_at": record.created_at.isoformat(),
        "user_id": record.user_id,
        "username": record.user.username,
        "department_names": record.department_names,
        "channel": record.channel,
        "question": record.question,
        "answer": record.answer,
        "thinking": record.thinking,
        "model": record.model,
        "backend": record.backend,
        "route": record.route,
        "generation_params": record.generation_params,
        "prompt_tokens": record.prompt_tokens,
        "completion_tokens": record.completion_tokens,
        "retrieval_ms": record.retrieval_ms,
        "first_token_ms": record.first_token_ms,
        "total_ms": record.total_ms,
        "error": record.error,
        "scope": record.scope,
        "permission_filter": record.permission_filter,
        "citations": record.citations,
        "flags": record.flags,
        "passages": passages,
        "feedback": feedback,
    }


def query_log_jsonl(records: QuerySet[QueryRecord], *, chunk_size: int = EXPORT_CHUNK_SIZE) -> Iterator[bytes]:
    """JSON Lines bytes: one record per line, its passages and feedback inside (one query each per chunk)."""

    def encode(chunk: list[QueryRecord]) -> Iterator[bytes]:
        ids = [record.pk for record in chunk]
        passages, feedback = _passages_by_record(ids), _feedback_by_record(ids)
        for record in chunk:
            line = query_record_as_json(
                record, passages=passages.get(record.pk, []), feedback=feedback.get(record.pk, [])
            )
            yield json.dumps(line, ensure_ascii=False, separators=(",", ":")).encode() + b"\n"

    return _stream(records, header=b"", encode=encode, chunk_size=chunk_size)


async def in_request_thread(chunks: Iterator[bytes]) -> AsyncIterator[bytes]:
    """The same stream for an ASGI server, without buffering it.

    Given a synchronous iterator under ASGI, Django's StreamingHttpResponse reads it to the end into a list first.
    Here each next() runs thread-sensitively, so on the request's own thread where the view ran, the cursor was
    opened and its database connection lives.
    """
    advance = sync_to_async(next, thread_sensitive=True)
    try:
        while (chunk := await advance(chunks, None)) is not None:
            yield chunk
    finally:
        await sync_to_async(getattr(chunks, "close", lambda: None), thread_sensitive=True)()
