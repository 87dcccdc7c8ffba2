from celery import shared_task


@shared_task
def reembed_chunks(model_id: int) -> None:
    from kb.search.services import embedding_model_change_run

    embedding_model_change_run(model_id=model_id)
