"""A run queued from the app is executed by a real Celery worker process, through a real broker."""

import time

import pytest
from celery import Celery

from kb.evaluation.jobs import RUN_EVALUATION
from kb.evaluation.models import EvaluationRun
from kb.evaluation.services import evaluation_run_start
from tests.conftest import (
    app_process_environment,
    database_url_for_app_processes,
    fresh_broker,
    start_worker,
    stop_processes,
)
from tests.evaluation.conftest import leave_set

pytestmark = pytest.mark.django_db(transaction=True)


def _wait_until_finished(run: EvaluationRun, timeout: float) -> EvaluationRun:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        run.refresh_from_db()
        if run.is_finished:
            return run
        time.sleep(0.5)
    raise AssertionError(f"run {run.pk} still {run.status} after {timeout} s")


def test_the_worker_runs_a_queued_evaluation_and_records_its_scores(hr, tmp_path):
    run = evaluation_run_start(acting_user=hr.admin, evaluation_set=leave_set(hr), enqueue=False)
    broker_url = fresh_broker("kb_test_evaluation_broker")
    environment = app_process_environment(
        database_url=database_url_for_app_processes(), broker_url=broker_url, media_root=tmp_path / "media"
    )
    worker = start_worker(environment, tmp_path / "worker.log")
    try:
        # As evaluation_run_start queues it on commit (tests/evaluation/test_runs.py), to this test's broker.
        # Not the current app: a Celery made with the default set_as_current would become it, and every job that
        # later tests of this session queue (current_app.send_task) would go to this test's broker, which no worker
        # reads once the test is over (tests/documents/test_kb_import.py waited on such uploads forever).
        Celery(broker=broker_url, set_as_current=False).send_task(RUN_EVALUATION, args=(run.pk,))
        finished = _wait_until_finished(run, timeout=180)
    finally:
        stop_processes(worker)

    assert finished.status == EvaluationRun.Status.DONE, (tmp_path / "worker.log").read_text()[-3000:]
    assert finished.questions_done == 3 and finished.summary["hybrid"]["recall@5"] == 1.0
    assert finished.results.count() == 3
