"""The hash chain over audit rows: appending links, and walking them to find the first tampered or missing row.

A row's content is hashed as the database holds it, in a canonical JSON form, so verification later recomputes
exactly the same bytes: admin events and feedback are read back inside their transaction, a query record is hashed
from the values it is inserted from, as they read back (query_record_append builds its rows, hashes and links them).
"""

import hashlib
import hmac
import json
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.conf import settings
from django.core.serializers.json import DjangoJSONEncoder
from django.db import connection, transaction
from django.db.models import Model
from django.utils import timezone

from kb.audit.models import AuditEvent, LedgerEntry, QueryFeedback, QueryPassage, QueryRecord

GENESIS_HASH = "0" * 64
_CHAIN_LOCK = 0x6B62_6175  # "kbau"


def _canonical(content: dict[str, Any]) -> bytes:
    return json.dumps(content, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str).encode()


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def content_hash(content: dict[str, Any]) -> str:
    return _sha256(_canonical(content))


def event_content(event: AuditEvent) -> dict[str, Any]:
    return {
        "id": event.pk,
        "actor": event.actor_id,
        "kind": event.kind,
        "subject_type": event.subject_type,
        "subject_id": event.subject_id,
        "before": event.before,
        "after": event.after,
        "created_at": event.created_at.isoformat(),
    }


QUERY_FIELDS = (
    "id",
    "user_id",
    "department_names",
    "channel",
    "question",
    "answer",
    "model",
    "backend",
    "route",
    "generation_params",
    "thinking",
    "prompt_tokens",
    "completion_tokens",
    "retrieval_ms",
    "first_token_ms",
    "total_ms",
    "error",
    "scope",
    "permission_filter",
    "citations",
    "flags",
)
PASSAGE_FIELDS = ("rank", "chunk_id", "document_id", "version_id", "score", "sent_to_model", "text")


@dataclass(frozen=True, kw_only=True)
class RecordedPassage:
    """A retrieved passage as the asker received it, for its QueryPassage row (PASSAGE_FIELDS but the rank)."""

    chunk_id: int
    document_id: int
    version_id: int
    score: float
    sent_to_model: bool
    text: str


def query_columns(**columns: Any) -> dict[str, Any]:
    """A query record's columns as the database will hold them (JSON values as they read back)."""
    return {name: _as_stored(value) for name, value in columns.items()}


def query_passage_rows(passages: Sequence[RecordedPassage]) -> list[list[Any]]:
    """The passages' PASSAGE_FIELDS in rank order, ranks from 1: the values their rows hold and their hash covers."""
    return [
        [rank, *(getattr(passage, field) for field in PASSAGE_FIELDS[1:])]
        for rank, passage in enumerate(passages, start=1)
    ]


def query_content_of(columns: dict[str, Any], passage_rows: list[list[Any]]) -> dict[str, Any]:
    """What a record's hash covers: its columns (query_columns) and its passages' PASSAGE_FIELDS in rank order."""
    content = {field: columns[field] for field in QUERY_FIELDS}
    content["created_at"] = columns["created_at"].isoformat()
    content["passages"] = passage_rows
    return content


def query_content(record: QueryRecord) -> dict[str, Any]:
    """The content of a stored record; its passages as prefetched, if they were."""
    passages = sorted(record.passages.all(), key=lambda passage: passage.rank)
    columns = {field: _as_stored(getattr(record, field)) for field in QUERY_FIELDS}
    return query_content_of(
        columns | {"created_at": record.created_at},
        [[getattr(passage, field) for field in PASSAGE_FIELDS] for passage in passages],
    )


def _as_stored(value: Any) -> Any:
    """A JSON field's value as it reads back from the database (tuples become lists, and so on)."""
    return json.loads(json.dumps(value, cls=DjangoJSONEncoder)) if isinstance(value, (dict, list, tuple)) else value


def feedback_content(feedback: QueryFeedback) -> dict[str, Any]:
    return {
        "id": feedback.pk,
        "query": feedback.query_id,
        "user": feedback.user_id,
        "rating": feedback.rating,
        "comment": feedback.comment,
        "created_at": feedback.created_at.isoformat(),
    }


_MODELS = {
    LedgerEntry.Kind.EVENT: (AuditEvent, event_content),
    LedgerEntry.Kind.QUERY: (QueryRecord, query_content),
    LedgerEntry.Kind.FEEDBACK: (QueryFeedback, feedback_content),
}


def content_hash_of(kind: str, object_id: int) -> str | None:
    """The hash of the row as stored now; None when the row is gone."""
    model, content = _MODELS[kind]
    row = model.objects.filter(pk=object_id).first()
    return None if row is None else content_hash(content(row))


def entry_hash(*, sequence: int, kind: str, object_id: int, content_hash: str, previous_hash: str) -> str:
    """Keyed (HMAC): someone who can write to the database but lacks the key cannot rebuild a consistent chain."""
    message = f"{previous_hash}|{sequence}|{kind}|{object_id}|{content_hash}".encode()
    return hmac.new(settings.KB_AUDIT_CHAIN_KEY.encode(), message, hashlib.sha256).hexdigest()


def chain_lock() -> None:
    """Hold the chain for the rest of this transaction: retention purges, and appends that lost their place.

    An append takes no lock at first: a link claims its sequence number, the primary key, and a writer that lost
    the race to another (or read a head that is no longer the last) inserts nothing and links again (chain_append).
    """
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_advisory_xact_lock(%s)", [_CHAIN_LOCK])


@dataclass(frozen=True)
class ChainHead:
    """The last link as committed when it was read, and ids reserved in the same round trip."""

    sequence: int
    entry_hash: str
    reserved_ids: tuple[int, ...]


def chain_head(*, reserve_id_of: type[Model] | None = None) -> ChainHead:
    """The chain's last link; `reserve_id_of` also draws the next primary key of that model, so that a row can be
    hashed before it is inserted (query_record_append: the record, its passages and its link in one statement).
    """
    reserve = ""
    if reserve_id_of is not None:
        table, pk = reserve_id_of._meta.db_table, reserve_id_of._meta.pk.column
        reserve = f", nextval(pg_get_serial_sequence('{table}', '{pk}'))"
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT head.sequence, head.entry_hash{reserve} FROM (VALUES (1)) AS one LEFT JOIN LATERAL "
            f"(SELECT sequence, entry_hash FROM {LedgerEntry._meta.db_table} ORDER BY sequence DESC LIMIT 1)"
            f" AS head ON true"
        )
        sequence, last_hash, *reserved_ids = cursor.fetchone()
    if sequence is None:
        # An empty ledger: a new one, or a retention purge that removed every entry and continues from its hash.
        sequence, last_hash = _purge_continuation() or (0, GENESIS_HASH)
    return ChainHead(sequence=sequence, entry_hash=last_hash, reserved_ids=tuple(reserved_ids))


def ledger_entry_after(head: ChainHead, *, kind: str, object_id: int, content_hash: str) -> LedgerEntry:
    """The link that follows `head` (not saved)."""
    sequence = head.sequence + 1
    return LedgerEntry(
        sequence=sequence,
        kind=kind,
        object_id=object_id,
        content_hash=content_hash,
        previous_hash=head.entry_hash,
        entry_hash=entry_hash(
            sequence=sequence, kind=kind, object_id=object_id, content_hash=content_hash, previous_hash=head.entry_hash
        ),
        created_at=timezone.now(),
    )


def insert_columns(model: type[Model], *, serial_key: bool = False) -> str:
    """The model's columns for an INSERT from JSON; a serial primary key is left to its sequence."""
    return ", ".join(field.column for field in model._meta.concrete_fields if not (serial_key and field.primary_key))


_LINK_COLUMNS = insert_columns(LedgerEntry)
# The link as a common table expression named `link`: one row when it took its sequence number, none when another
# writer holds that number (committed, or committing: ON CONFLICT waits for it to end). Its only parameter is the
# entry as JSON (_link_json).
LINK_CTE = (
    f"link AS (INSERT INTO {LedgerEntry._meta.db_table} ({_LINK_COLUMNS}) SELECT {_LINK_COLUMNS} FROM "
    f"jsonb_populate_record(NULL::{LedgerEntry._meta.db_table}, %s::jsonb) ON CONFLICT (sequence) DO NOTHING "
    f"RETURNING sequence)"
)
_LINK_ALONE = f"WITH {LINK_CTE} SELECT count(*) FROM link"
_LINK_ATTEMPTS = 1000


def _link_json(entry: LedgerEntry) -> str:
    return json.dumps(
        {field.column: getattr(entry, field.attname) for field in LedgerEntry._meta.concrete_fields},
        default=datetime.isoformat,
    )  # to the microsecond (DjangoJSONEncoder stops at milliseconds)


def chain_append(
    *,
    kind: str,
    object_id: int,
    content_hash: str,
    head: ChainHead | None = None,
    statement: str = _LINK_ALONE,
    params: Sequence[Any] = (),
) -> LedgerEntry:
    """Link a row into the chain after `head` (read now when not given); never two links after one entry.

    `statement` runs LINK_CTE (its first parameter) with whatever else it writes, and counts the `link` rows:
    writes that depend on the link (`WHERE EXISTS (SELECT FROM link)`) happen with it or not at all. A writer that
    lost its place links again after the newer head, queued behind the chain's lock, so that the losers of one race
    do not all race again for the next place (BENCHMARKS.md, recording a query, several writers).
    """
    entry = _link_after(head or chain_head(), kind, object_id, content_hash, statement, params)
    if entry is not None:
        return entry
    with transaction.atomic():
        chain_lock()
        for _ in range(_LINK_ATTEMPTS):  # writers that have not lost yet take no lock, and may still come first
            entry = _link_after(chain_head(), kind, object_id, content_hash, statement, params)
            if entry is not None:
                return entry
    raise RuntimeError(f"the audit chain stayed contended for {_LINK_ATTEMPTS} attempts; {kind} {object_id} unlinked")


def _link_after(
    head: ChainHead, kind: str, object_id: int, content_hash: str, statement: str, params: Sequence[Any]
) -> LedgerEntry | None:
    entry = ledger_entry_after(head, kind=kind, object_id=object_id, content_hash=content_hash)
    with connection.cursor() as cursor:
        cursor.execute(statement, [_link_json(entry), *params])
        [(linked,)] = cursor.fetchall()
    return entry if linked else None


def ledger_append(*, kind: str, object_id: int, content_hash: str | None = None) -> LedgerEntry:
    """Link a new audit row into the chain; call inside the transaction that wrote the row.

    Without `content_hash` the row is read back and hashed as stored.
    """
    return chain_append(kind=kind, object_id=object_id, content_hash=content_hash or content_hash_of(kind, object_id))


def query_record_append(*, passages: Sequence[RecordedPassage], **fields: Any) -> QueryRecord:
    """Write a query record, its passages and its chain link; `fields` are its QUERY_FIELDS but the id.

    Every query pays for its record, so it is two statements and no transaction of its own (BENCHMARKS.md,
    recording a query): the chain's head with the record's id reserved, then one INSERT of the record, its passages
    and its chain link, atomic as any single statement is; inside a caller's transaction it is part of that one.
    """
    if unknown_or_missing := set(fields) ^ set(QUERY_FIELDS[1:]):
        raise TypeError(f"a query record's fields are QUERY_FIELDS but the id; not so: {sorted(unknown_or_missing)}")
    head = chain_head(reserve_id_of=QueryRecord)
    columns = query_columns(id=head.reserved_ids[0], **fields, created_at=timezone.now())
    passage_rows = query_passage_rows(passages)
    rows = {
        "record": columns,
        "passages": [dict(zip(PASSAGE_FIELDS, row), query_id=columns["id"]) for row in passage_rows],
    }
    chain_append(
        kind=LedgerEntry.Kind.QUERY,
        object_id=columns["id"],
        head=head,
        statement=_RECORD_WITH_LINK,
        content_hash=content_hash(query_content_of(columns, passage_rows)),
        params=[json.dumps(rows, default=datetime.isoformat)],
    )
    record = QueryRecord(**columns)
    record._state.adding, record._state.db = False, connection.alias
    return record


_RECORD_COLUMNS = insert_columns(QueryRecord)  # its id is reserved (chain_head) so that the hash can cover it
_PASSAGE_COLUMNS = insert_columns(QueryPassage, serial_key=True)

# The record and its passages are written only with their link (LINK_CTE: no link, no rows; chain_append then
# links again after the newer head). Rows arrive as one JSON document, which jsonb_populate_record maps onto the
# tables' own columns: one parameter for PostgreSQL to parse instead of ~60 for this process to adapt.
_RECORD_WITH_LINK = (
    f"WITH {LINK_CTE}, rows AS (SELECT %s::jsonb AS document), "
    f"record AS (INSERT INTO {QueryRecord._meta.db_table} ({_RECORD_COLUMNS}) "
    f"SELECT {_RECORD_COLUMNS} FROM rows, jsonb_populate_record(NULL::{QueryRecord._meta.db_table}, "
    f"rows.document -> 'record') WHERE EXISTS (SELECT FROM link) RETURNING id), "
    f"passages AS (INSERT INTO {QueryPassage._meta.db_table} ({_PASSAGE_COLUMNS}) "
    f"SELECT {_PASSAGE_COLUMNS} FROM rows, jsonb_populate_recordset(NULL::{QueryPassage._meta.db_table}, "
    f"rows.document -> 'passages') WHERE EXISTS (SELECT FROM record)) "
    f"SELECT count(*) FROM link"
)


@dataclass(frozen=True)
class ChainProblem:
    sequence: int | None
    message: str


def _contents_now(kind: str, object_ids: list[int]) -> dict[int, str]:
    model, content = _MODELS[kind]
    rows = model.objects.filter(pk__in=object_ids)
    if kind == LedgerEntry.Kind.QUERY:
        rows = rows.prefetch_related("passages")
    return {row.pk: content_hash(content(row)) for row in rows}


def ledger_problems(*, batch_size: int = 1000) -> Iterator[ChainProblem]:
    """Walk the chain in order, a batch at a time (constant memory), and report every break in it."""
    continuation = _purge_continuation()
    previous: LedgerEntry | None = None
    batch: list[LedgerEntry] = []
    entries = LedgerEntry.objects.order_by("sequence").iterator(chunk_size=batch_size)
    while True:
        batch = [entry for _, entry in zip(range(batch_size), entries)]
        if not batch:
            break
        now = {kind: _contents_now(kind, [e.object_id for e in batch if e.kind == kind]) for kind in _MODELS}
        for entry in batch:
            yield from _entry_problems(entry, previous, continuation, now[entry.kind].get(entry.object_id))
            previous = entry
    for kind, (model, _) in _MODELS.items():
        chained = LedgerEntry.objects.filter(kind=kind).values("object_id")
        for object_id in model.objects.exclude(pk__in=chained).values_list("pk", flat=True)[:10]:
            yield ChainProblem(None, f"{kind} row {object_id} was added outside the chain")


def _entry_problems(
    entry: LedgerEntry, previous: LedgerEntry | None, continuation: tuple[int, str] | None, content_now: str | None
) -> Iterator[ChainProblem]:
    if previous is None:
        first_sequence, expected_previous = (
            (continuation[0] + 1, continuation[1]) if continuation else (1, GENESIS_HASH)
        )
        if entry.sequence != first_sequence:
            yield ChainProblem(entry.sequence, f"entries {first_sequence}–{entry.sequence - 1} were removed")
    else:
        expected_previous = previous.entry_hash
        if entry.sequence != previous.sequence + 1:
            yield ChainProblem(entry.sequence, f"entries {previous.sequence + 1}–{entry.sequence - 1} were removed")
    if entry.previous_hash != expected_previous:
        yield ChainProblem(entry.sequence, "does not continue the previous entry's hash")
    if (
        entry_hash(
            sequence=entry.sequence,
            kind=entry.kind,
            object_id=entry.object_id,
            content_hash=entry.content_hash,
            previous_hash=entry.previous_hash,
        )
        != entry.entry_hash
    ):
        yield ChainProblem(entry.sequence, "the ledger entry itself was altered or forged")
    if content_now is None:
        yield ChainProblem(entry.sequence, f"{entry.kind} row {entry.object_id} was removed")
    elif content_now != entry.content_hash:
        yield ChainProblem(entry.sequence, f"{entry.kind} row {entry.object_id} was altered")


def _purge_continuation() -> tuple[int, str] | None:
    """Where the chain starts after the latest retention purge: (last removed sequence, its entry hash)."""
    purge = AuditEvent.objects.filter(kind=AuditEvent.Kind.AUDIT_PURGED).order_by("-id").first()
    if purge is None:
        return None
    return purge.after["through_sequence"], purge.after["continues_from"]


def ledger_head() -> LedgerEntry | None:
    return LedgerEntry.objects.order_by("-sequence").first()


def ledger_holds(*, sequence: int, entry_hash: str) -> bool:
    """Whether an entry seen earlier (a head kept elsewhere) is still in the chain, unchanged."""
    return LedgerEntry.objects.filter(sequence=sequence, entry_hash=entry_hash).exists()
