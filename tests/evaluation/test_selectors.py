"""A run against the previous one, and the scores over runs that the chart draws."""

from datetime import timedelta

import pytest
from django.utils import timezone

from kb.evaluation.models import EvaluationResult, EvaluationRun, EvaluationSet
from kb.evaluation.selectors import run_comparison, scores_over_runs
from tests.factories import make_department, make_user

pytestmark = pytest.mark.django_db

QUESTIONS = ("improves?", "degrades?", "stays?", "unanswerable?")


def _run(evaluation_set: EvaluationSet, *, hybrid: dict, ranks: dict, abstained: bool, minutes_ago: int):
    run = EvaluationRun.objects.create(
        evaluation_set=evaluation_set,
        owner=evaluation_set.created_by,
        status=EvaluationRun.Status.DONE,
        summary={"hybrid": hybrid, "dense": hybrid, "keyword": hybrid},
    )
    finished = timezone.now() - timedelta(minutes=minutes_ago)
    EvaluationRun.objects.filter(pk=run.pk).update(created_at=finished, finished_at=finished)
    run.refresh_from_db()
    for text in QUESTIONS:
        unanswerable = text == "unanswerable?"
        EvaluationResult.objects.create(
            run=run,
            question_text=text,
            unanswerable=unanswerable,
            modes={mode: {"rank": None if unanswerable else ranks[text], "ndcg": 0.0} for mode in ("hybrid",)},
            abstained=abstained if unanswerable else False,
        )
    return run


@pytest.fixture
def runs():
    department = make_department()
    evaluation_set = EvaluationSet.objects.create(
        name="Set", department=department, created_by=make_user(department=department, admin=True)
    )
    first = _run(
        evaluation_set,
        hybrid={"recall@5": 0.5, "mrr@10": 0.4},
        ranks={"improves?": 3, "degrades?": 1, "stays?": 2},
        abstained=False,
        minutes_ago=10,
    )
    second = _run(
        evaluation_set,
        hybrid={"recall@5": 0.75, "mrr@10": 0.3},
        ranks={"improves?": 1, "degrades?": None, "stays?": 2},
        abstained=True,
        minutes_ago=5,
    )
    return evaluation_set, first, second


def test_each_question_is_better_worse_or_the_same_than_in_the_previous_finished_run(runs):
    evaluation_set, first, second = runs
    failed = EvaluationRun.objects.create(
        evaluation_set=evaluation_set, owner=first.owner, status=EvaluationRun.Status.FAILED
    )
    EvaluationRun.objects.filter(pk=failed.pk).update(created_at=timezone.now() - timedelta(minutes=7))

    comparison = run_comparison(run=second)

    assert comparison.previous == first  # the failed run in between is skipped
    verdicts = {change.question: change.verdict for change in comparison.changes}
    assert verdicts == {"improves?": "better", "degrades?": "worse", "stays?": "same", "unanswerable?": "better"}
    assert comparison.counts == {"better": 2, "worse": 1, "same": 1}
    assert comparison.deltas["hybrid"] == {"recall@5": 0.25, "mrr@10": -0.1}


def test_the_first_run_has_nothing_to_compare_with(runs):
    _, first, _ = runs
    comparison = run_comparison(run=first)
    assert comparison.previous is None and comparison.deltas == {}
    assert {change.verdict for change in comparison.changes} == {"new"}


def test_the_chart_has_hybrid_recall_at_5_and_mrr_at_10_of_finished_runs_oldest_first(runs):
    evaluation_set, first, second = runs
    EvaluationRun.objects.create(evaluation_set=evaluation_set, owner=first.owner)  # queued: not drawn

    chart = scores_over_runs(evaluation_set=evaluation_set)

    assert chart["runs"] == [first.pk, second.pk]
    assert chart["x"] == [int(first.finished_at.timestamp()), int(second.finished_at.timestamp())]
    assert chart["series"] == {"Recall@5": [0.5, 0.75], "MRR@10": [0.4, 0.3]}


def _answered_run(evaluation_set: EvaluationSet, *, answers: dict, minutes_ago: int) -> EvaluationRun:
    """A finished run with answers; `answers`: question -> (cites expected, facts stated, refused), or None for an
    answer that failed."""
    run = EvaluationRun.objects.create(
        evaluation_set=evaluation_set,
        owner=evaluation_set.created_by,
        status=EvaluationRun.Status.DONE,
        answers=True,
        summary={"answers": {"citation_accuracy": 0.5, "key_fact_recall": None, "abstention": 1.0}},
    )
    EvaluationRun.objects.filter(pk=run.pk).update(created_at=timezone.now() - timedelta(minutes=minutes_ago))
    for text, outcome in answers.items():
        unanswerable = text == "unanswerable?"
        fields = {"answer_error": "every model is busy"}
        if outcome is not None:
            cites, stated, refused = outcome
            fields = {
                "answer": "an answer",
                "answer_cites_expected": None if unanswerable else cites,
                "answer_facts": [{"fact": f"fact {n}", "stated": n < stated} for n in range(2)],
                "answer_abstained": refused,
            }
        EvaluationResult.objects.create(
            run=run, question_text=text, unanswerable=unanswerable, modes={"hybrid": {"rank": 1}}, **fields
        )
    run.refresh_from_db()
    return run


def test_each_answer_is_better_worse_mixed_or_the_same_than_in_the_previous_run_that_answered_it():
    department = make_department()
    evaluation_set = EvaluationSet.objects.create(
        name="Set", department=department, created_by=make_user(department=department, admin=True)
    )
    _answered_run(
        evaluation_set,
        answers={
            "cites now?": (False, 1, False),
            "states less?": (True, 2, False),
            "trades?": (False, 2, False),
            "stays?": (True, 1, False),
            "refuses wrongly now?": (True, 1, False),
            "failed before?": None,
            "unanswerable?": (None, 0, False),
        },
        minutes_ago=10,
    )
    second = _answered_run(
        evaluation_set,
        answers={
            "cites now?": (True, 1, False),
            "states less?": (True, 1, False),
            "trades?": (True, 1, False),
            "stays?": (True, 1, False),
            "refuses wrongly now?": (True, 1, True),
            "failed before?": (True, 2, False),
            "unanswerable?": (None, 0, True),
        },
        minutes_ago=5,
    )
    EvaluationRun.objects.filter(pk=second.pk).update(
        summary={"answers": {"citation_accuracy": 0.75, "key_fact_recall": 0.5, "abstention": 1.0}}
    )
    second.refresh_from_db()

    comparison = run_comparison(run=second)

    assert {change.question: change.answer_verdict for change in comparison.changes} == {
        "cites now?": "better",
        "states less?": "worse",
        "trades?": "mixed",
        "stays?": "same",
        "refuses wrongly now?": "worse",
        "failed before?": "new",
        "unanswerable?": "better",
    }
    assert comparison.answer_counts == {"better": 2, "worse": 2, "mixed": 1, "same": 1, "new": 1}
    # A score with nothing to count in one of the runs (None) has no change.
    assert comparison.deltas["answers"] == {"citation_accuracy": 0.25, "abstention": 0.0}


def test_a_run_without_answers_has_no_answer_verdicts(runs):
    _, _, second = runs
    comparison = run_comparison(run=second)
    assert {change.answer_verdict for change in comparison.changes} == {""} and not comparison.answer_counts
