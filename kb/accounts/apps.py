from django.apps import AppConfig


class AccountsConfig(AppConfig):
    name = "kb.accounts"
    label = "accounts"
