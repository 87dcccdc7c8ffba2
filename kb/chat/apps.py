from django.apps import AppConfig


class ChatConfig(AppConfig):
    name = "kb.chat"
    label = "chat"
