"""manage.py kb_evaluate: create or refresh a set from a file, run it here and now, print the scores."""

import io

import pytest
from django.core.management import CommandError, call_command

from kb.evaluation.models import EvaluationRun, EvaluationSet
from tests.factories import make_department, make_user

pytestmark = pytest.mark.django_db

SET_FILE = (
    b'{"question": "How many days of annual leave do I get?", '
    b'"expected": [{"document": "leave.md", "span": "Annual leave is 25 days a year"}]}\n'
    b'{"question": "What is on the canteen menu on Friday?", "unanswerable": true}\n'
)


def _evaluate(**options) -> str:
    out = io.StringIO()
    call_command("kb_evaluate", stdout=out, **options)
    return out.getvalue()


def test_a_set_is_created_from_a_file_run_as_the_user_and_compared_with_its_last_run(hr, tmp_path):
    path = tmp_path / "leave.jsonl"
    path.write_bytes(SET_FILE)

    first = _evaluate(set_name="Leave", import_file=path, user=hr.admin.username)

    evaluation_set = EvaluationSet.objects.get(name="Leave")
    assert evaluation_set.department == hr.department and evaluation_set.created_by == hr.admin
    assert "2 added" in first and "run 1: 2 questions, searching as hr-admin" in first.replace(
        f"run {EvaluationRun.objects.get().pk}", "run 1"
    )
    assert "  2/2" in first
    hybrid = next(line for line in first.splitlines() if line.startswith("hybrid"))
    assert hybrid.split()[1:] == ["1.000", "1.000", "1.000", "1.000", "1.000"]
    # At the default threshold the unanswerable question is refused and the answerable one is not.
    assert "similarity < 0.3: false refusals 0.0 of 1 answerable, false answers 0.0 of 1 unanswerable" in first

    second = _evaluate(set_name="Leave")  # as the set's creator, against the questions it has

    assert EvaluationRun.objects.filter(trigger=EvaluationRun.Trigger.COMMAND, owner=hr.admin).count() == 2
    assert "hybrid" in second and "0 added" not in second


def test_unknown_sets_and_users_are_refused_in_words(hr):
    with pytest.raises(CommandError, match="no evaluation set 'Nope'"):
        _evaluate(set_name="Nope")
    with pytest.raises(CommandError, match="no user 'nobody'"):
        _evaluate(set_name="Nope", user="nobody")


def test_answers_asks_each_question_as_the_user_and_prints_the_answer_scores(hr, tmp_path, settings):
    settings.KB_EVALUATION_ANSWER_MAX_TOKENS = 32
    path = tmp_path / "leave.jsonl"
    path.write_bytes(SET_FILE)
    _evaluate(set_name="Leave", import_file=path, user=hr.admin.username)
    make_user(department=make_department("Finance"), username="outsider")

    out = _evaluate(set_name="Leave", user="outsider", answers=True)

    run = EvaluationRun.objects.get(answers=True)
    assert run.owner.username == "outsider"
    assert "2 questions, searching and answering as outsider" in out and " s a question)" in out
    # The outsider reads nothing: both answers are "not in the sources", the model never asked.
    assert (
        "answers by smollm2-135m (at most 32 tokens): cite an expected passage 0.0, citations to expected passages "
        "None, key facts stated None, unanswerable refused 1.0, answerable refused 1.0; 0 failed"
    ) in out
