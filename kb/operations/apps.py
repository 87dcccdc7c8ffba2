from django.apps import AppConfig


class OperationsConfig(AppConfig):
    name = "kb.operations"
    label = "operations"
