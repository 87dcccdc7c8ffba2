from django.apps import AppConfig


class DocumentsConfig(AppConfig):
    name = "kb.documents"
    label = "documents"
