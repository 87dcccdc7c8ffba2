"""Runs that start by themselves: the documents app announces a re-ingestion or a model change (kb.documents.signals),
inside the transaction of that change; the run is queued with it, and never makes that change fail."""

import logging

from django.db import transaction

from kb.evaluation.models import EvaluationRun
from kb.evaluation.services import evaluation_runs_start_automatic

logger = logging.getLogger(__name__)


def _start(trigger: EvaluationRun.Trigger, collection_id: int | None = None) -> None:
    try:
        with transaction.atomic():  # a savepoint: a failure here leaves the ingestion's own writes alone
            evaluation_runs_start_automatic(trigger=trigger, collection_id=collection_id)
    except Exception:
        logger.exception("could not queue the automatic evaluation runs after %s", trigger)


def runs_after_ingestion(*, collection_id: int, **_) -> None:
    _start(EvaluationRun.Trigger.INGESTION, collection_id)


def runs_after_embedding_model_change(**_) -> None:
    _start(EvaluationRun.Trigger.EMBEDDING_MODEL)
