"""The audit trail is append-only and hash-chained: tampering in SQL is refused, and where forced, found."""

import datetime
from unittest import mock

import pytest
from django.core.exceptions import PermissionDenied
from django.core.management import CommandError, call_command
from django.db import DatabaseError, connection, transaction
from django.utils import timezone

from kb.audit.models import AuditEvent, LedgerEntry, QueryFeedback, QueryRecord
from kb.audit.services import RecordedPassage, audit_purge, query_feedback_create, query_record_create
from kb.platform.actors import system_actor
from tests.factories import department_names_of, make_department, make_user

pytestmark = pytest.mark.django_db


def _query(user, question="What is the notice period?", **recorded):
    if "department_names" not in recorded:
        recorded["department_names"] = department_names_of(user)
    return query_record_create(
        **recorded,
        user=user,
        question=question,
        answer="Three months [1].",
        model="smollm2-135m",
        backend="llama_cpp",
        generation_params={"temperature": 0.2},
        prompt_tokens=120,
        completion_tokens=8,
        retrieval_ms=12,
        first_token_ms=400,
        total_ms=900,
        citations=[{"number": 1, "chunk_id": 7, "document_id": 3}],
        passages=[
            RecordedPassage(
                chunk_id=7,
                document_id=3,
                version_id=4,
                score=0.81,
                sent_to_model=True,
                text="The notice period is three months.",
            )
        ],
    )


def _verify() -> str:
    from io import StringIO

    out, err = StringIO(), StringIO()
    try:
        call_command("audit_verify", stdout=out, stderr=err)
    except CommandError:
        return "FAILED\n" + err.getvalue()
    return out.getvalue()


def _as_privileged_attacker(sql: str, params=()) -> None:
    """A database superuser can switch user triggers off for a session; the chain must still tell."""
    with connection.cursor() as cursor:
        cursor.execute("SET session_replication_role = replica")
        cursor.execute(sql, params)
        cursor.execute("SET session_replication_role = DEFAULT")


@pytest.fixture
def trail():
    user = make_user(department=make_department("Legal"))  # three admin events: department, user, membership
    records = [_query(user, f"question {number}") for number in range(3)]
    return user, records


def test_every_audit_row_is_chained_and_the_chain_verifies(trail):
    kinds = list(LedgerEntry.objects.values_list("kind", flat=True))
    assert kinds == ["event"] * 3 + ["query"] * 3
    assert list(LedgerEntry.objects.values_list("sequence", flat=True)) == [1, 2, 3, 4, 5, 6]
    assert "audit trail intact: 6 entries chained" in _verify()


@pytest.mark.parametrize(
    "statement",
    [
        "UPDATE audit_queryrecord SET answer = 'Six months.'",
        "DELETE FROM audit_querypassage",
        "UPDATE audit_auditevent SET actor_id = NULL",
        "DELETE FROM audit_ledgerentry",
    ],
)
def test_updates_and_deletes_are_refused_by_the_database(trail, statement):
    with pytest.raises(DatabaseError, match="append-only"):
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.execute(statement)


def test_an_answer_edited_in_sql_is_named_by_verification(trail):
    _, records = trail
    _as_privileged_attacker("UPDATE audit_queryrecord SET answer = 'Six months.' WHERE id = %s", [records[1].pk])

    report = _verify()

    entry = LedgerEntry.objects.get(kind="query", object_id=records[1].pk)
    assert report.startswith("FAILED")
    assert f"FIRST BREAK at entry {entry.sequence}: query row {records[1].pk} was altered" in report


def test_a_recorded_passage_edited_in_sql_breaks_its_querys_hash(trail):
    _, records = trail
    _as_privileged_attacker("UPDATE audit_querypassage SET text = 'nothing' WHERE query_id = %s", [records[0].pk])

    assert f"query row {records[0].pk} was altered" in _verify()


def test_a_removed_row_and_a_row_slipped_in_are_both_found(trail):
    user, records = trail
    _as_privileged_attacker(
        "DELETE FROM audit_querypassage WHERE query_id = %s; DELETE FROM audit_queryrecord WHERE id = %s",
        [records[2].pk, records[2].pk],
    )
    _as_privileged_attacker(
        "INSERT INTO audit_auditevent (kind, subject_type, subject_id, created_at) "
        "VALUES ('grant.created', 'documents.CollectionGrant', '99', now())"
    )

    report = _verify()

    assert f"query row {records[2].pk} was removed" in report
    assert "was added outside the chain" in report


def test_a_ledger_entry_rewritten_with_a_fresh_plain_hash_is_still_caught(trail):
    """Without the chain key, rewriting an entry consistently is not possible: its HMAC no longer matches."""
    _as_privileged_attacker("UPDATE audit_ledgerentry SET content_hash = repeat('a', 64) WHERE sequence = 5")

    report = _verify()

    assert "FIRST BREAK at entry 5" in report and "ledger entry itself was altered or forged" in report


def test_feedback_is_its_own_chained_row_and_only_the_asker_gives_it(trail):
    user, records = trail

    query_feedback_create(user=user, record=records[0], rating=QueryFeedback.Rating.NOT_HELPFUL, comment="wrong")
    with pytest.raises(PermissionDenied):
        query_feedback_create(user=make_user(), record=records[0], rating=QueryFeedback.Rating.HELPFUL)

    assert LedgerEntry.objects.filter(kind="feedback").count() == 1
    assert "intact" in _verify()


def test_a_purge_of_an_old_prefix_keeps_young_feedback_and_verifies():
    long_ago = timezone.now() - datetime.timedelta(days=400)
    with mock.patch("django.utils.timezone.now", return_value=long_ago):
        user = make_user(department=make_department("Legal"))
        asked_long_ago = [_query(user, f"old {number}") for number in range(3)]
    young = _query(user, "new question")
    query_feedback_create(user=user, record=asked_long_ago[2], rating=QueryFeedback.Rating.HELPFUL)

    result = audit_purge(acting_user=system_actor(), older_than_days=365)

    assert result.queries == 2 and result.events == 3  # the third old query has young feedback and stays
    assert set(QueryRecord.objects.values_list("pk", flat=True)) == {asked_long_ago[2].pk, young.pk}
    purge = AuditEvent.objects.get(kind=AuditEvent.Kind.AUDIT_PURGED)
    assert purge.after["through_sequence"] == result.through_sequence
    assert purge.after["removed"] == {"events": 3, "queries": 2, "feedback": 0}
    assert "intact" in _verify()


def test_only_a_superuser_purges(trail):
    user, _ = trail
    with pytest.raises(PermissionDenied):
        audit_purge(acting_user=user, older_than_days=30)


def test_a_head_kept_elsewhere_reveals_entries_cut_off_the_end(trail):
    head = LedgerEntry.objects.order_by("-sequence").first()
    _, records = trail
    _as_privileged_attacker(
        "DELETE FROM audit_querypassage WHERE query_id = %s; DELETE FROM audit_queryrecord WHERE id = %s; "
        "DELETE FROM audit_ledgerentry WHERE sequence = %s",
        [records[2].pk, records[2].pk, head.sequence],
    )

    with pytest.raises(CommandError):
        call_command("audit_verify", "--expect-head", f"{head.sequence}:{head.entry_hash}")


def test_the_daily_task_purges_only_when_retention_is_configured(settings):
    from kb.audit.tasks import audit_purge_expired

    long_ago = timezone.now() - datetime.timedelta(days=100)
    with mock.patch("django.utils.timezone.now", return_value=long_ago):
        _query(make_user(), "old question")

    settings.KB_AUDIT_RETENTION_DAYS = 0
    audit_purge_expired()
    assert QueryRecord.objects.count() == 1

    settings.KB_AUDIT_RETENTION_DAYS = 30
    audit_purge_expired()
    assert QueryRecord.objects.count() == 0
    assert AuditEvent.objects.filter(kind=AuditEvent.Kind.AUDIT_PURGED).exists()


def test_a_malformed_expected_head_is_refused_with_the_expected_form(trail):
    with pytest.raises(CommandError, match="SEQUENCE:HASH"):
        call_command("audit_verify", "--expect-head", "latest")


def test_a_purge_of_every_entry_continues_the_chain_from_the_removed_range():
    long_ago = timezone.now() - datetime.timedelta(days=400)
    with mock.patch("django.utils.timezone.now", return_value=long_ago):
        _query(make_user(), "old question")

    result = audit_purge(acting_user=system_actor(), older_than_days=365)
    _query(make_user(username="later"), "new question")

    first = LedgerEntry.objects.order_by("sequence").first()
    assert first.sequence == result.through_sequence + 1  # the purge's own event, not a new chain from 1
    assert "intact" in _verify()


def test_a_query_is_recorded_in_two_statements_with_its_passages_and_link(trail):
    from django.test.utils import CaptureQueriesContext

    from kb.documents.selectors import permission_filter_of

    user, _ = trail
    applied = permission_filter_of(user=user)  # read by the search, as the chat service passes it
    with transaction.atomic(), CaptureQueriesContext(connection) as statements:
        record = _query(user, "counted", permission_filter=applied, department_names=applied["department_names"])
    # The chain's head with the record's reserved id, then record, passages and link together: every query pays
    # for its record (BENCHMARKS.md, recording a query).
    assert [statement["sql"].split()[0] for statement in statements if "SAVEPOINT" not in statement["sql"]] == [
        "SELECT",
        "WITH",
    ]
    assert record.passages.get().text == "The notice period is three months."
    assert QueryRecord.objects.get(pk=record.pk).department_names == ["Legal"]
    assert LedgerEntry.objects.get(kind="query", object_id=record.pk).sequence == 7
    assert "intact" in _verify()


def test_a_record_whose_place_was_taken_is_linked_after_the_newer_head_and_written_once(trail):
    from kb.audit import ledger

    user, _ = trail
    really_read_head = ledger.chain_head
    quicker = make_user(username="quicker")

    def head_then_overtaken(**arguments):
        head = really_read_head(**arguments)
        if not overtaking:  # the record's head, not the ones it links after when it has lost its place
            with mock.patch.object(ledger, "chain_head", really_read_head):
                # another writer links between this head's read and the record's insert
                overtaking.append(_query(quicker, "overtaking"))
        return head

    overtaking = []
    with mock.patch.object(ledger, "chain_head", head_then_overtaken):
        late = _query(user, "late")

    overtaken_by = LedgerEntry.objects.get(kind="query", object_id=overtaking[0].pk)
    link = LedgerEntry.objects.get(kind="query", object_id=late.pk)
    assert (link.sequence, link.previous_hash) == (overtaken_by.sequence + 1, overtaken_by.entry_hash)
    assert QueryRecord.objects.filter(question="late").count() == 1 and late.passages.count() == 1
    assert "intact" in _verify()


def test_a_row_hashed_for_a_head_that_is_no_longer_last_is_linked_after_the_last(trail):
    from kb.audit.ledger import chain_append, chain_head, content_hash_of

    user, _ = trail
    stale = chain_head()
    _query(user, "linked in between")
    event = AuditEvent.objects.create(
        kind=AuditEvent.Kind.GRANT_CREATED, subject_type="documents.CollectionGrant", subject_id="1"
    )

    entry = chain_append(
        kind=LedgerEntry.Kind.EVENT,
        object_id=event.pk,
        head=stale,
        content_hash=content_hash_of(LedgerEntry.Kind.EVENT, event.pk),
    )

    assert entry.sequence == stale.sequence + 2
    assert list(LedgerEntry.objects.values_list("sequence", flat=True)) == list(range(1, entry.sequence + 1))
    assert "intact" in _verify()


def test_a_records_hash_covers_every_column_it_stores():
    """The record is inserted from the same columns its hash covers; a new column must join both deliberately."""
    from kb.audit.ledger import PASSAGE_FIELDS, QUERY_FIELDS
    from kb.audit.models import QueryPassage

    assert {field.attname for field in QueryRecord._meta.concrete_fields} == {*QUERY_FIELDS, "created_at"}
    assert {field.attname for field in QueryPassage._meta.concrete_fields} == {*PASSAGE_FIELDS, "id", "query_id"}


def test_a_record_is_written_only_from_exactly_the_fields_its_hash_covers(trail):
    from kb.audit.ledger import query_record_append

    user, _ = trail
    with pytest.raises(TypeError, match="mood"):
        query_record_append(passages=[], user_id=user.pk, question="unhashed column?", mood="curious")
    assert not QueryRecord.objects.filter(question="unhashed column?").exists()


@pytest.mark.django_db(transaction=True)
def test_queries_and_admin_changes_recorded_at_once_from_many_threads_form_one_unbroken_chain():
    """Each link claims its sequence number; a writer that lost it links again, queued behind the chain's lock."""
    import threading

    users = [make_user(username=f"asker{number}") for number in range(6)]
    start = threading.Barrier(len(users) + 2)
    failures = []

    def ask(user):
        try:
            start.wait()
            for number in range(5):
                _query(user, f"{user.username} question {number}")
        except Exception as error:
            failures.append(error)
        finally:
            connection.close()

    def administer(prefix):
        try:
            start.wait()
            for number in range(5):  # each in its own transaction, with its audit event and link
                make_user(department=make_department(f"{prefix} {number}"), username=f"{prefix}{number}")
        except Exception as error:
            failures.append(error)
        finally:
            connection.close()

    threads = [threading.Thread(target=ask, args=(user,)) for user in users] + [
        threading.Thread(target=administer, args=(prefix,)) for prefix in ("north", "south")
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert failures == []
    sequences = list(LedgerEntry.objects.values_list("sequence", flat=True))
    assert sequences == list(range(1, len(sequences) + 1))
    assert LedgerEntry.objects.filter(kind="query").count() == 30
    assert LedgerEntry.objects.filter(kind="event").count() == 6 + 2 * 5 * 3  # users; departments, users, members
    assert "intact" in _verify()


@pytest.mark.django_db(transaction=True)
def test_a_record_refused_at_commit_leaves_nothing_behind_and_the_next_one_is_chained():
    from django.db import IntegrityError

    from kb.accounts.models import User

    asker = make_user()
    with pytest.raises(IntegrityError):
        _query(User(pk=asker.pk + 1000, username="never-saved"))  # its foreign key fails at COMMIT

    assert not QueryRecord.objects.exists() and not LedgerEntry.objects.filter(kind="query").exists()
    record = _query(asker)
    assert LedgerEntry.objects.get(kind="query").object_id == record.pk
    assert "intact" in _verify()
