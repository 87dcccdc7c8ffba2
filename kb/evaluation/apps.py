from django.apps import AppConfig


class EvaluationConfig(AppConfig):
    name = "kb.evaluation"
    label = "evaluation"

    def ready(self) -> None:
        # The documents app announces re-ingestion and model changes; it may not import this app (the layers).
        from kb.documents.signals import embedding_model_activated, version_published
        from kb.evaluation import receivers

        version_published.connect(receivers.runs_after_ingestion, dispatch_uid="evaluation-after-ingestion")
        embedding_model_activated.connect(
            receivers.runs_after_embedding_model_change, dispatch_uid="evaluation-after-embedding-model"
        )
