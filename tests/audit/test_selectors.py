"""Who reads which query records, and every query-log filter, against real records in the real database."""

from datetime import date, datetime
from unittest import mock

import pytest
from django.core.exceptions import PermissionDenied
from django.http import Http404
from django.utils import timezone

from kb.accounts.models import User
from kb.accounts.services import user_create
from kb.audit.selectors import (
    FeedbackFilter,
    QueryLogFilters,
    query_record_get_for_auditor,
    query_record_get_for_feedback,
    query_record_get_for_owner,
    query_records_for_auditor,
    query_records_of_user,
)
from kb.audit.services import RecordedPassage, query_feedback_create, query_record_create
from kb.platform.actors import system_actor
from tests.factories import PASSWORD, department_names_of, make_department, make_user

pytestmark = pytest.mark.django_db


def make_auditor(username: str = "auditor") -> User:
    return user_create(acting_user=system_actor(), username=username, password=PASSWORD, role=User.Role.AUDITOR)


def ask(
    user: User,
    question: str = "How do I book leave?",
    *,
    answer: str = "Ask your manager [1].",
    model: str = "qwen3.5-9b",
    flags: list[str] | None = None,
    at: datetime | None = None,
    passages=None,
    channel: str = "web",
):
    passages = (
        passages
        if passages is not None
        else [
            RecordedPassage(
                chunk_id=11,
                document_id=3,
                version_id=5,
                score=0.91,
                sent_to_model=True,
                text="Leave is booked with your manager.",
            ),
            RecordedPassage(
                chunk_id=12,
                document_id=3,
                version_id=5,
                score=0.42,
                sent_to_model=False,
                text="Sick leave is reported by 9:00.",
            ),
        ]
    )
    arguments = {
        "user": user,
        "department_names": department_names_of(user),
        "question": question,
        "answer": answer,
        "passages": passages,
        "model": model,
        "backend": "vllm",
        "generation_params": {"temperature": 0.2, "enable_thinking": False},
        "prompt_tokens": 120,
        "completion_tokens": 9,
        "retrieval_ms": 14,
        "first_token_ms": 85,
        "total_ms": 410,
        "flags": flags,
        "citations": [{"number": 1, "chunk_id": passages[0].chunk_id}] if passages else [],
        "scope": {"mode": "hybrid", "k": 4},
        "permission_filter": {"role": user.role, "departments": []},
        "channel": channel,
    }
    if at is None:
        return query_record_create(**arguments)
    with mock.patch("django.utils.timezone.now", return_value=at):
        return query_record_create(**arguments)


def ids(records) -> list[int]:
    return [record.pk for record in records]


@pytest.fixture
def org():
    finance = make_department("Finance")
    payroll = make_department("Payroll", parent=finance)
    legal = make_department("Legal")
    return {
        "finance": finance,
        "payroll": payroll,
        "legal": legal,
        "alice": make_user(department=payroll, username="alice"),
        "bob": make_user(department=legal, username="bob"),
        "auditor": make_auditor(),
    }


def test_employees_and_department_admins_may_not_read_the_query_log(org):
    admin = make_user(department=org["legal"], admin=True)
    record = ask(org["bob"])

    for user in (org["bob"], admin):
        with pytest.raises(PermissionDenied):
            query_records_for_auditor(user=user, filters=QueryLogFilters())
        with pytest.raises(PermissionDenied):
            query_record_get_for_auditor(user=user, record_id=record.pk)


def test_auditors_and_superusers_read_every_record_newest_first(org):
    superuser = user_create(acting_user=system_actor(), username="root", password=PASSWORD, is_superuser=True)
    first, second = ask(org["alice"]), ask(org["bob"])

    assert ids(query_records_for_auditor(user=org["auditor"], filters=QueryLogFilters())) == [second.pk, first.pk]
    assert ids(query_records_for_auditor(user=superuser)) == [second.pk, first.pk]


def test_filter_by_username(org):
    mine = ask(org["alice"])
    ask(org["bob"])

    assert ids(query_records_for_auditor(user=org["auditor"], filters=QueryLogFilters(username="ALICE"))) == [mine.pk]


def test_filter_by_department_matches_the_departments_recorded_with_the_question_and_those_above(org):
    alice, bob = ask(org["alice"]), ask(org["bob"])
    auditor = org["auditor"]

    assert alice.department_names == ["Finance", "Payroll"]
    assert ids(query_records_for_auditor(user=auditor, filters=QueryLogFilters(department="Finance"))) == [alice.pk]
    assert ids(query_records_for_auditor(user=auditor, filters=QueryLogFilters(department="Payroll"))) == [alice.pk]
    assert ids(query_records_for_auditor(user=auditor, filters=QueryLogFilters(department="Legal"))) == [bob.pk]
    assert ids(query_records_for_auditor(user=auditor, filters=QueryLogFilters(department="Pay"))) == []


def test_filter_by_date_range_takes_whole_days_in_the_site_time_zone(org):
    zone = timezone.get_current_timezone()
    march = ask(org["alice"], at=datetime(2026, 3, 1, 23, 59, tzinfo=zone))
    april = ask(org["alice"], at=datetime(2026, 4, 10, 0, 0, tzinfo=zone))
    may = ask(org["alice"], at=datetime(2026, 5, 20, 12, 0, tzinfo=zone))
    auditor = org["auditor"]

    def between(start, end):
        return ids(query_records_for_auditor(user=auditor, filters=QueryLogFilters(date_from=start, date_to=end)))

    assert between(date(2026, 3, 1), date(2026, 4, 10)) == [april.pk, march.pk]
    assert between(date(2026, 3, 2), None) == [may.pk, april.pk]
    assert between(None, date(2026, 3, 1)) == [march.pk]
    assert between(date(2026, 4, 11), date(2026, 5, 19)) == []


def test_filter_by_text_in_question_or_answer_ignores_case(org):
    in_question = ask(org["alice"], "Where is the VPN guide?", answer="See the IT page.")
    in_answer = ask(org["bob"], "How do I work from home?", answer="Connect to the vpn first.")
    ask(org["bob"], "Where is the canteen?", answer="Ground floor.")

    found = query_records_for_auditor(user=org["auditor"], filters=QueryLogFilters(text="Vpn"))

    assert ids(found) == [in_answer.pk, in_question.pk]


def test_filter_by_model(org):
    small = ask(org["alice"], model="smollm2-135m")
    ask(org["alice"], model="qwen3.5-9b")

    found = query_records_for_auditor(user=org["auditor"], filters=QueryLogFilters(model="smollm2-135m"))

    assert ids(found) == [small.pk]


def test_filter_flagged_keeps_only_records_with_a_flag(org):
    removed = ask(org["alice"], flags=["removed_citations"])
    empty = ask(org["bob"], flags=["no_passages"], passages=[])
    ask(org["bob"])

    found = query_records_for_auditor(user=org["auditor"], filters=QueryLogFilters(flagged=True))

    assert ids(found) == [empty.pk, removed.pk]


def test_filter_by_feedback_uses_the_latest_verdict(org):
    alice = org["alice"]
    changed_mind, liked, disliked, unrated = ask(alice), ask(alice), ask(alice), ask(alice)
    query_feedback_create(user=alice, record=changed_mind, rating=1)
    query_feedback_create(user=alice, record=changed_mind, rating=-1, comment="Actually wrong.")
    query_feedback_create(user=alice, record=liked, rating=1)
    query_feedback_create(user=alice, record=disliked, rating=-1)

    def with_feedback(value):
        return ids(query_records_for_auditor(user=org["auditor"], filters=QueryLogFilters(feedback=value)))

    assert with_feedback(FeedbackFilter.ANY) == [disliked.pk, liked.pk, changed_mind.pk]
    assert with_feedback(FeedbackFilter.HELPFUL) == [liked.pk]
    assert with_feedback(FeedbackFilter.NOT_HELPFUL) == [disliked.pk, changed_mind.pk]
    assert with_feedback(FeedbackFilter.NONE) == [unrated.pk]
    assert with_feedback("") == [unrated.pk, disliked.pk, liked.pk, changed_mind.pk]


def test_filters_combine(org):
    target = ask(org["alice"], "Payroll cut-off date?", model="qwen3.5-9b", flags=["removed_citations"])
    ask(org["alice"], "Payroll cut-off date?", model="qwen3.5-9b")
    ask(org["bob"], "Payroll cut-off date?", model="qwen3.5-9b", flags=["removed_citations"])

    filters = QueryLogFilters(
        username="alice",
        department="Finance",
        text="cut-off",
        model="qwen3.5-9b",
        flagged=True,
        feedback=FeedbackFilter.NONE,
    )

    assert ids(query_records_for_auditor(user=org["auditor"], filters=filters)) == [target.pk]
    assert filters.as_audit_dict() == {
        "username": "alice",
        "department": "Finance",
        "text": "cut-off",
        "model": "qwen3.5-9b",
        "flagged": True,
        "feedback": "none",
    }


def test_filtering_is_one_query_whatever_the_filters(org, django_assert_num_queries):
    ask(org["alice"])
    filters = QueryLogFilters(
        username="alice",
        department="Finance",
        date_from=date(2020, 1, 1),
        text="leave",
        model="qwen3.5-9b",
        flagged=False,
        feedback=FeedbackFilter.NOT_HELPFUL,
    )
    records = query_records_for_auditor(user=org["auditor"], filters=filters)

    with django_assert_num_queries(1):
        assert list(records) == []


def test_own_history_lists_only_ones_own_questions(org):
    mine = [ask(org["alice"]), ask(org["alice"], "Second?")]
    ask(org["bob"])

    assert ids(query_records_of_user(user=org["alice"])) == [mine[1].pk, mine[0].pk]
    assert ids(query_records_of_user(user=org["alice"], filters=QueryLogFilters(text="second"))) == [mine[1].pk]
    # Another person's name filters one's own history down to nothing, never to their records.
    assert ids(query_records_of_user(user=org["alice"], filters=QueryLogFilters(username="bob"))) == []


def test_a_record_of_someone_else_is_not_found_in_ones_history_even_by_an_admin_or_auditor(org):
    record = ask(org["bob"])
    legal_admin = make_user(department=org["legal"], admin=True)

    assert query_record_get_for_owner(user=org["bob"], record_id=record.pk) == record
    for user in (org["alice"], legal_admin, org["auditor"]):
        with pytest.raises(Http404):
            query_record_get_for_owner(user=user, record_id=record.pk)


def test_only_the_asker_may_rate_a_record(org):
    record = ask(org["bob"])

    assert query_record_get_for_feedback(user=org["bob"], record_id=record.pk) == record
    with pytest.raises(PermissionDenied):
        query_record_get_for_feedback(user=org["alice"], record_id=record.pk)
    with pytest.raises(Http404):
        query_record_get_for_feedback(user=org["bob"], record_id=record.pk + 1000)


def test_auditor_detail_has_the_recorded_passages_in_rank_order(org):
    record = ask(org["alice"])

    found = query_record_get_for_auditor(user=org["auditor"], record_id=record.pk)

    assert [(p.rank, p.chunk_id, p.sent_to_model, p.text) for p in found.passages.all()] == [
        (1, 11, True, "Leave is booked with your manager."),
        (2, 12, False, "Sick leave is reported by 9:00."),
    ]
    with pytest.raises(Http404):
        query_record_get_for_auditor(user=org["auditor"], record_id=record.pk + 1000)
