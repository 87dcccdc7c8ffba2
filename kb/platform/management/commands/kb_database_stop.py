from django.conf import settings
from django.core.management.base import BaseCommand

from kb.platform.embedded_pg import server_stop


class Command(BaseCommand):
    help = "Stop the embedded PostgreSQL server under KB_VAR_DIR (no-op with an external DATABASE_URL)."

    def handle(self, *args, **options):
        if server_stop(settings.EMBEDDED_PG_DIR):
            self.stdout.write(f"stopped the embedded PostgreSQL in {settings.EMBEDDED_PG_DIR}")
        else:
            self.stdout.write(f"no embedded PostgreSQL runs in {settings.EMBEDDED_PG_DIR}")
