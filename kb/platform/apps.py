from django.apps import AppConfig


class PlatformConfig(AppConfig):
    name = "kb.platform"
    label = "platform"
