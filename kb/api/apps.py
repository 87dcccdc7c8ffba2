from django.apps import AppConfig


class ApiConfig(AppConfig):
    name = "kb.api"
    label = "api"
