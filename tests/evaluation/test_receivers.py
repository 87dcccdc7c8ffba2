"""Runs that start by themselves after a re-ingestion or an embedding model change, one pending run per set."""

import pytest

from kb.documents.models import EmbeddingModel
from kb.documents.signals import embedding_model_activated
from kb.evaluation import services
from kb.evaluation.models import EvaluationRun
from tests.evaluation.conftest import leave_set
from tests.factories import ingested_document, make_collection, make_department

pytestmark = pytest.mark.django_db


def test_an_ingestion_queues_one_run_of_each_set_whose_creator_reads_the_collection(hr):
    automatic = leave_set(hr, name="Automatic", auto_run=True)
    leave_set(hr, name="By hand only", auto_run=False)

    ingested_document(collection=hr.collection, name="parking.md", content=b"# Parking\nPermits are free.")

    run = EvaluationRun.objects.get()
    assert run.evaluation_set == automatic and run.status == EvaluationRun.Status.QUEUED
    assert run.trigger == EvaluationRun.Trigger.INGESTION and run.owner == hr.admin
    # Many documents ingested while the run waits: still one pending run.
    ingested_document(collection=hr.collection, name="bikes.md", content=b"# Bikes\nBike racks are at the back.")
    assert EvaluationRun.objects.count() == 1

    # Once it has been taken, the next ingestion queues another; one into a collection the creator cannot read not.
    EvaluationRun.objects.update(status=EvaluationRun.Status.DONE)
    elsewhere = make_collection(owner=make_department("Finance"))
    ingested_document(collection=elsewhere, name="budget.md", content=b"# Budget\nThe budget is fixed in May.")
    assert EvaluationRun.objects.count() == 1
    ingested_document(collection=hr.collection, name="desks.md", content=b"# Desks\nDesks are booked online.")
    assert EvaluationRun.objects.filter(status=EvaluationRun.Status.QUEUED).count() == 1


def test_an_embedding_model_change_queues_a_run_of_every_automatic_set(hr):
    leave_set(hr, name="Automatic", auto_run=True)

    embedding_model_activated.send(sender=EmbeddingModel, model=EmbeddingModel.objects.get())

    run = EvaluationRun.objects.get()
    assert run.trigger == EvaluationRun.Trigger.EMBEDDING_MODEL and run.owner == hr.admin


def test_a_failure_to_queue_a_run_never_fails_the_ingestion(hr, monkeypatch):
    leave_set(hr, name="Automatic", auto_run=True)

    def broken(**_):
        raise RuntimeError("no")

    monkeypatch.setattr(services, "evaluation_run_start", broken)
    document = ingested_document(collection=hr.collection, name="parking.md", content=b"# Parking\nPermits are free.")

    assert document.current_version.status == "ready"
    assert not EvaluationRun.objects.exists()


def test_automatic_runs_answer_only_where_the_setting_says_so(hr, settings):
    leave_set(hr, name="Automatic", auto_run=True)
    model = EmbeddingModel.objects.get()

    embedding_model_activated.send(sender=EmbeddingModel, model=model)
    settings.KB_EVALUATION_AUTO_ANSWERS = True
    EvaluationRun.objects.update(status=EvaluationRun.Status.DONE)
    embedding_model_activated.send(sender=EmbeddingModel, model=model)

    assert list(EvaluationRun.objects.order_by("pk").values_list("answers", flat=True)) == [False, True]
