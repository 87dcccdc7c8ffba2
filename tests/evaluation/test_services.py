"""Sets, questions, import and export, and who may change them."""

import pytest
from django.core.exceptions import PermissionDenied, ValidationError

from evaluation.sets import read_csv, read_jsonl
from kb.audit.models import AuditEvent
from kb.evaluation.models import EvaluationQuestion
from kb.evaluation.selectors import eval_question_of, evaluation_set_file
from kb.evaluation.services import (
    evaluation_question_add,
    evaluation_question_delete,
    evaluation_run_start,
    evaluation_set_create,
    evaluation_set_import,
)
from tests.factories import make_department, make_superuser, make_user

pytestmark = pytest.mark.django_db

GOOD_JSONL = (
    b'{"question": "How long is the notice period?", "expected": [{"document": "contract.md", '
    b'"span": "The notice period is three months"}], "facts": ["three months"]}\n'
    b'{"question": "Who won the 1998 World Cup?", "unanswerable": true}\n'
)
GOOD_CSV = (
    b"question,document,span,facts,unanswerable\n"
    b"How long is the notice period?,contract.md,The notice period is three months,three months | in writing,\n"
    b"How long is the notice period?,handbook.pdf,Notice is given in writing,,\n"
    b"Who won the 1998 World Cup?,,,,yes\n"
)


@pytest.fixture
def legal():
    department = make_department("Legal")
    admin = make_user(department=department, admin=True)
    return department, admin, evaluation_set_create(acting_user=admin, name="Contracts", department=department)


def test_a_json_lines_file_adds_its_questions_and_updates_those_already_there(legal):
    _, admin, evaluation_set = legal
    result = evaluation_set_import(
        acting_user=admin, evaluation_set=evaluation_set, filename="s.jsonl", data=GOOD_JSONL
    )
    assert (result.added, result.updated, result.removed) == (2, 0, 0)

    changed = GOOD_JSONL.replace(b'three months"}]', b'three calendar months"}]')
    result = evaluation_set_import(acting_user=admin, evaluation_set=evaluation_set, filename="s.jsonl", data=changed)

    assert (result.added, result.updated, result.removed) == (0, 1, 0)
    notice = evaluation_set.questions.get(text="How long is the notice period?")
    assert notice.expected == [{"document": "contract.md", "span": "The notice period is three calendar months"}]
    assert notice.facts == ["three months"]
    assert evaluation_set.questions.get(text="Who won the 1998 World Cup?").unanswerable
    assert AuditEvent.objects.filter(kind=AuditEvent.Kind.EVALUATION_SET_IMPORTED).count() == 2


def test_a_csv_file_groups_a_question_s_rows_and_replace_removes_what_the_file_lacks(legal):
    _, admin, evaluation_set = legal
    evaluation_question_add(
        acting_user=admin, evaluation_set=evaluation_set, text="An old question?", expected=[], unanswerable=True
    )
    result = evaluation_set_import(
        acting_user=admin, evaluation_set=evaluation_set, filename="set.CSV", data=GOOD_CSV, replace=True
    )

    assert (result.added, result.removed) == (2, 1)
    notice = evaluation_set.questions.get(text="How long is the notice period?")
    assert [e["document"] for e in notice.expected] == ["contract.md", "handbook.pdf"]
    assert notice.facts == ["three months", "in writing"]


@pytest.mark.parametrize(
    ("filename", "data", "message"),
    [
        ("bad.jsonl", GOOD_JSONL + b'{"question": "No span and not unanswerable"}\n', "bad.jsonl: line 3"),
        ("bad.jsonl", b'{"question": "a", "unanswerable": true}\n{not json\n', "line 2"),
        ("bad.csv", b"question,doc\nx,y\n", "the header lacks"),
        ("bad.csv", b"question,document,span\n,contract.md,text\n", "line 2: the question is empty"),
        ("latin1.jsonl", '{"question": "Café?", "unanswerable": true}'.encode("latin-1"), "not UTF-8"),
        ("set.xlsx", b"PK\x03\x04", "a .csv or .jsonl file"),
        ("twice.jsonl", GOOD_JSONL + GOOD_JSONL.splitlines(keepends=True)[1], "appears twice"),
        ("empty.jsonl", b"\n\n", "no questions"),
        ("typed.jsonl", b'{"question": 1, "unanswerable": true}\n', "line 1: the question is int, not text"),
        ("fact.jsonl", b'{"question": "q", "unanswerable": true, "facts": [1]}\n', "line 1: a fact is int, not"),
        ("facts.jsonl", b'{"question": "q", "unanswerable": true, "facts": "abc"}\n', "line 1: facts is str, not a"),
        ("span.jsonl", b'{"question": "q", "expected": [{"document": "a.md", "span": null}]}\n', "a span is NoneType"),
        ("flag.jsonl", b'{"question": "q", "unanswerable": "no"}\n', "line 1: unanswerable is str, not true or"),
        ("row.jsonl", b'["q"]\n', "line 1: a field has the wrong type"),
        ("long.jsonl", b'{"question": "' + b"why " * 600 + b'", "unanswerable": true}\n', "longer than the 2,000"),
        ("deep.jsonl", b"[" * 100_000 + b"\n", "line 1: nested too deep"),  # deeper than the parser's stack
        ("long.csv", b"question,document,span\nq," + b"x" * 200_000 + b",y\n", "line 2: field larger than"),
        ("nul.csv", b"question,document,span\nq\x00?,contract.md,text\n", "holds a NUL character"),
        ("nul.jsonl", b'{"question": "q\\u0000?", "unanswerable": true}\n', "holds a NUL character"),
        ("surrogate.jsonl", b'{"question": "q", "expected": [{"document": "a.md", "span": "\\ud800"}]}\n', "surrogate"),
    ],
)
def test_a_bad_file_says_what_and_where_and_stores_nothing(legal, filename, data, message):
    _, admin, evaluation_set = legal
    events_before = AuditEvent.objects.count()

    with pytest.raises(ValidationError, match=message):
        evaluation_set_import(acting_user=admin, evaluation_set=evaluation_set, filename=filename, data=data)

    assert not evaluation_set.questions.exists()
    assert AuditEvent.objects.count() == events_before


def test_an_exported_set_imports_back_into_the_same_questions(legal):
    department, admin, evaluation_set = legal
    evaluation_set_import(acting_user=admin, evaluation_set=evaluation_set, filename="set.csv", data=GOOD_CSV)
    original = [eval_question_of(q) for q in evaluation_set.questions.all()]

    jsonl, content_type = evaluation_set_file(evaluation_set=evaluation_set, file_format="jsonl")
    csv, _ = evaluation_set_file(evaluation_set=evaluation_set, file_format="csv")

    assert content_type == "application/x-ndjson"
    assert read_jsonl(jsonl) == original and read_csv(csv) == original
    copy = evaluation_set_create(acting_user=admin, name="Copy", department=department)
    evaluation_set_import(acting_user=admin, evaluation_set=copy, filename="copy.jsonl", data=jsonl.encode())
    assert [eval_question_of(q) for q in copy.questions.all()] == original


def test_a_question_needs_expected_passages_or_to_be_unanswerable_and_is_not_asked_twice(legal):
    _, admin, evaluation_set = legal
    with pytest.raises(ValidationError, match="names no expected span"):
        evaluation_question_add(acting_user=admin, evaluation_set=evaluation_set, text="Why?", expected=[])
    with pytest.raises(ValidationError, match="marked unanswerable but names"):
        evaluation_question_add(
            acting_user=admin,
            evaluation_set=evaluation_set,
            text="Why?",
            expected=[{"document": "a.md", "span": "because"}],
            unanswerable=True,
        )
    with pytest.raises(ValidationError, match="Name the document"):
        evaluation_question_add(
            acting_user=admin, evaluation_set=evaluation_set, text="Why?", expected=[{"document": "", "span": "x"}]
        )
    question = evaluation_question_add(
        acting_user=admin, evaluation_set=evaluation_set, text="Why?", expected=[{"document": "a.md", "span": "so"}]
    )
    with pytest.raises(ValidationError):
        evaluation_question_add(
            acting_user=admin, evaluation_set=evaluation_set, text="Why?", expected=[{"document": "b.md", "span": "x"}]
        )

    evaluation_question_delete(acting_user=admin, question=question)
    assert not EvaluationQuestion.objects.exists()
    assert AuditEvent.objects.filter(kind=AuditEvent.Kind.EVALUATION_QUESTION_DELETED).exists()


def test_a_question_as_long_as_an_employee_may_ask_is_kept_in_any_script_and_a_longer_one_refused(legal):
    _, admin, evaluation_set = legal
    longest = "".join(chr(0x4E00 + n) for n in range(2000))  # 6,000 bytes that do not compress: past a B-tree entry
    expected = [{"document": "a.md", "span": "so"}]

    question = evaluation_question_add(
        acting_user=admin, evaluation_set=evaluation_set, text=longest, expected=expected
    )
    with pytest.raises(ValidationError, match="already has this question"):
        evaluation_question_add(acting_user=admin, evaluation_set=evaluation_set, text=longest, expected=expected)
    with pytest.raises(ValidationError, match="longer than the 2,000 characters"):
        evaluation_question_add(acting_user=admin, evaluation_set=evaluation_set, text=longest + "?", expected=expected)

    assert list(evaluation_set.questions.all()) == [question]


def test_only_admins_of_the_set_s_department_or_above_and_superusers_may_change_or_run_it(legal):
    department, _, evaluation_set = legal
    evaluation_set_import(
        acting_user=make_superuser(), evaluation_set=evaluation_set, filename="s.jsonl", data=GOOD_JSONL
    )
    member = make_user(department=department)
    other_admin = make_user(department=make_department("Finance"), admin=True)
    for user in (member, other_admin):
        with pytest.raises(PermissionDenied):
            evaluation_set_create(acting_user=user, name=f"By {user}", department=department)
        with pytest.raises(PermissionDenied):
            evaluation_run_start(acting_user=user, evaluation_set=evaluation_set)
        with pytest.raises(PermissionDenied):
            evaluation_set_import(acting_user=user, evaluation_set=evaluation_set, filename="s.jsonl", data=GOOD_JSONL)

    # An admin of a department manages the sets of the departments below it (Legal › Employment).
    employment = make_department("Employment", parent=department)
    employment_admin = make_user(department=employment, admin=True)
    below = evaluation_set_create(acting_user=legal[1], name="Employment contracts", department=employment)
    with pytest.raises(PermissionDenied):
        evaluation_set_create(acting_user=employment_admin, name="Up", department=department)
    assert below.department == employment


def test_a_set_without_questions_cannot_be_run(legal):
    _, admin, evaluation_set = legal
    with pytest.raises(ValidationError, match="no questions"):
        evaluation_run_start(acting_user=admin, evaluation_set=evaluation_set)
