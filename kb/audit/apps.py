from django.apps import AppConfig


class AuditConfig(AppConfig):
    name = "kb.audit"
    label = "audit"
