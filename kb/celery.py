import os

from celery import Celery
from celery.signals import beat_init, celeryd_init

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "kb.settings")

app = Celery("kb")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()


@celeryd_init.connect
@beat_init.connect
def _embedded_database_ensured(**_) -> None:
    """The default broker is a database of the embedded server: up, with its databases, before a worker or beat
    reaches it (the app's own connections ensure it too, through the database backend)."""
    from django.conf import settings

    from kb.platform.embedded_pg import server_ensure_for

    server_ensure_for(settings.DATABASES["default"])
