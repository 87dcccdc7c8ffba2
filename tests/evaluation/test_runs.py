"""Runs over real ingested documents and the real search: scores, abstention, configuration, permissions, failures."""

import pytest

from kb.audit.models import AuditEvent
from kb.documents import jobs
from kb.documents.models import DocumentVersion
from kb.evaluation import services
from kb.evaluation.jobs import RUN_EVALUATION
from kb.evaluation.models import EvaluationResult, EvaluationRun
from kb.evaluation.services import (
    evaluation_question_add,
    evaluation_run_execute,
    evaluation_run_start,
    evaluation_runs_fail_stalled,
    evaluation_set_create,
)
from tests.evaluation.conftest import INDENTATION, INDENTATION_SPAN, leave_set
from tests.factories import ingested_document, make_collection, make_department, make_superuser, make_user

pytestmark = pytest.mark.django_db


def _run(evaluation_set, *, acting_user, owner=None) -> EvaluationRun:
    run = evaluation_run_start(acting_user=acting_user, evaluation_set=evaluation_set, owner=owner, enqueue=False)
    return evaluation_run_execute(run_id=run.pk)


def test_a_run_finds_the_expected_passages_and_records_scores_progress_and_configuration(hr, python_docs, settings):
    settings.KB_ABSTAIN_BELOW_SIMILARITY = 0.0  # off: every question is answered from what was found
    ingested_document(
        collection=hr.collection, name="faq/design.html", content=(python_docs / "faq" / "design.html").read_bytes()
    )
    evaluation_set = leave_set(hr)
    evaluation_question_add(
        acting_user=hr.admin,
        evaluation_set=evaluation_set,
        text=INDENTATION,
        expected=[{"document": "faq/design.html", "span": INDENTATION_SPAN}],
    )

    run = _run(evaluation_set, acting_user=hr.admin)

    assert run.status == EvaluationRun.Status.DONE and not run.error
    assert (run.questions_done, run.questions_total) == (4, 4)
    assert run.started_at <= run.finished_at
    for mode in ("keyword", "dense", "hybrid"):
        assert run.summary[mode]["recall@10"] == 1.0, mode
    assert run.summary["hybrid"]["recall@5"] == 1.0
    assert 0.5 < run.summary["hybrid"]["mrr@10"] <= 1.0
    assert run.summary["questions"] == {"answerable": 3, "unanswerable": 1}
    indentation = run.results.get(question_text=INDENTATION)
    # The entry's first passage starts with the page's title; its second (the question as heading) ranks above it.
    assert indentation.rank("hybrid") in {1, 2} and indentation.modes["hybrid"]["ndcg"] > 0
    assert len(indentation.modes["hybrid"]["chunk_ids"]) == 10
    assert 0 < indentation.best_similarity <= 1
    # Nothing is refused with the threshold off: the canteen question is answered from what was found.
    assert run.summary["abstention"] == {
        "threshold": 0.0,
        "false_refusal_rate": 0.0,
        "false_answer_rate": 1.0,
        "answerable": 3,
        "unanswerable": 1,
    }
    canteen = run.results.get(unanswerable=True)
    assert canteen.rank("hybrid") is None and not canteen.abstained
    # The similarities are kept, so a threshold can be chosen: one between the canteen's and the others' separates.
    sweep = {row["threshold"]: row for row in run.summary["abstention_by_threshold"]}
    assert len(sweep) == 15 and sweep[0.1]["false_refusal_rate"] == 0.0
    configuration = run.configuration
    assert configuration["embedding_model"]["dimensions"] == 384
    assert configuration["chunk_tokens"] == 256 and configuration["fusion"] == "zscore" and configuration["k"] == 10
    assert configuration["document_versions"] == sorted(DocumentVersion.objects.values_list("pk", flat=True))
    assert AuditEvent.objects.filter(kind=AuditEvent.Kind.EVALUATION_RUN_QUEUED, subject_id=str(run.pk)).exists()
    assert AuditEvent.objects.filter(kind=AuditEvent.Kind.EVALUATION_RUN_FINISHED, subject_id=str(run.pk)).exists()


def test_the_abstention_setting_refuses_questions_less_similar_than_it(hr, settings):
    settings.KB_ABSTAIN_BELOW_SIMILARITY = 0.99

    run = _run(leave_set(hr), acting_user=hr.admin)

    assert run.summary["abstention"]["threshold"] == 0.99
    assert run.summary["abstention"]["false_refusal_rate"] == 1.0
    assert run.summary["abstention"]["false_answer_rate"] == 0.0
    assert all(result.abstained for result in run.results.all())


def test_a_run_sees_only_what_its_owner_may_read(hr):
    evaluation_set = leave_set(hr)
    outsider = make_user(department=make_department("Finance"))

    as_hr = _run(evaluation_set, acting_user=hr.admin)
    as_outsider = _run(evaluation_set, acting_user=make_superuser(), owner=outsider)

    assert as_hr.summary["hybrid"]["recall@5"] == 1.0
    assert as_outsider.owner == outsider
    assert as_outsider.summary["hybrid"]["recall@10"] == 0.0
    assert as_outsider.configuration["document_versions"] == []
    assert all(not r.modes[m]["chunk_ids"] for r in as_outsider.results.all() for m in r.modes)
    # Nothing found at all: "not in the sources" for every question.
    assert as_outsider.summary["abstention"]["false_refusal_rate"] == 1.0


def test_a_started_run_is_queued_for_the_worker_once_the_transaction_commits(
    hr, monkeypatch, django_capture_on_commit_callbacks
):
    sent = []
    monkeypatch.setattr(jobs.current_app, "send_task", lambda name, args: sent.append((name, args)))
    evaluation_set = leave_set(hr)

    with django_capture_on_commit_callbacks(execute=True):
        run = evaluation_run_start(acting_user=hr.admin, evaluation_set=evaluation_set)
        assert sent == []

    assert sent == [(RUN_EVALUATION, (run.pk,))]
    assert run.status == EvaluationRun.Status.QUEUED and run.trigger == EvaluationRun.Trigger.MANUAL


def test_a_failing_run_is_recorded_as_failed_with_its_reason(hr, monkeypatch):
    evaluation_set = leave_set(hr)
    run = evaluation_run_start(acting_user=hr.admin, evaluation_set=evaluation_set, enqueue=False)

    def broken_search(**_):
        raise RuntimeError("the search index is gone")

    monkeypatch.setattr(services, "passages_search_with_filter_for_user", broken_search)
    with pytest.raises(RuntimeError):
        evaluation_run_execute(run_id=run.pk)

    run.refresh_from_db()
    assert run.status == EvaluationRun.Status.FAILED and run.finished_at is not None
    assert run.error == "RuntimeError: the search index is gone"
    assert AuditEvent.objects.filter(kind=AuditEvent.Kind.EVALUATION_RUN_FAILED, subject_id=str(run.pk)).exists()
    # A message delivered twice does not run it again.
    assert evaluation_run_execute(run_id=run.pk).status == EvaluationRun.Status.FAILED


def test_a_run_whose_worker_stopped_reporting_is_closed_as_failed(hr, settings):
    run = evaluation_run_start(acting_user=hr.admin, evaluation_set=leave_set(hr), enqueue=False)
    from datetime import timedelta

    from django.utils import timezone

    EvaluationRun.objects.filter(pk=run.pk).update(
        status=EvaluationRun.Status.RUNNING, heartbeat_at=timezone.now() - timedelta(hours=1)
    )

    assert evaluation_runs_fail_stalled() == [run.pk]
    run.refresh_from_db()
    assert run.status == EvaluationRun.Status.FAILED and "stopped reporting" in run.error


def test_progress_is_saved_every_few_questions(hr, monkeypatch):
    evaluation_set = evaluation_set_create(acting_user=hr.admin, name="Many", department=hr.department)
    for number in range(7):
        evaluation_question_add(
            acting_user=hr.admin,
            evaluation_set=evaluation_set,
            text=f"How many days of annual leave, variant {number}?",
            expected=[{"document": "leave.md", "span": "Annual leave is 25 days a year"}],
        )
    run = evaluation_run_start(acting_user=hr.admin, evaluation_set=evaluation_set, enqueue=False)
    seen = []

    evaluation_run_execute(
        run_id=run.pk,
        progress=lambda r: seen.append(
            (
                r.questions_done,
                EvaluationResult.objects.filter(run=r).count(),
                EvaluationRun.objects.get(pk=r.pk).status,
            )
        ),
    )

    assert seen == [(5, 5, "running"), (7, 7, "running")]


def test_a_run_as_a_user_of_another_department_reads_a_company_collection(hr):
    """Company-wide collections are read by everyone: a set about them finds its passages for any employee."""
    from kb.documents.models import Collection

    handbook = make_collection(owner=hr.department, visibility=Collection.Visibility.COMPANY, name="Handbook")
    ingested_document(collection=handbook, name="handbook.md", content=b"# Parking\nParking permits are free.")
    evaluation_set = evaluation_set_create(acting_user=hr.admin, name="Handbook", department=hr.department)
    evaluation_question_add(
        acting_user=hr.admin,
        evaluation_set=evaluation_set,
        text="Do parking permits cost anything?",
        expected=[{"document": "handbook.md", "span": "Parking permits are free"}],
    )

    run = _run(evaluation_set, acting_user=hr.admin, owner=make_user(department=make_department("Sales")))

    assert run.summary["hybrid"]["recall@1"] == 1.0
