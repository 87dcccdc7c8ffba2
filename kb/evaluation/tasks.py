from celery import shared_task
from celery.signals import worker_ready

from kb.evaluation.jobs import RUN_EVALUATION


@shared_task(name=RUN_EVALUATION)
def evaluation_run_execute(run_id: int) -> None:
    from kb.evaluation.services import evaluation_run_execute as execute

    execute(run_id=run_id)


@worker_ready.connect
def fail_stalled_evaluation_runs(**_) -> None:
    """A worker that starts may replace one that died mid-run: close its run as failed rather than leave it running."""
    from kb.evaluation.services import evaluation_runs_fail_stalled

    evaluation_runs_fail_stalled()
