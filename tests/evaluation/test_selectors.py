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
