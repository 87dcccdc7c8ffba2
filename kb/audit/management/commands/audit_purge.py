"""`manage.py audit_purge`: remove audit rows older than KB_AUDIT_RETENTION_DAYS, keeping the chain verifiable."""

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from kb.audit.services import audit_purge
from kb.platform.actors import system_actor


class Command(BaseCommand):
    help = "Remove audit rows older than the retention period (KB_AUDIT_RETENTION_DAYS or --days); audited itself."

    def add_arguments(self, parser):
        parser.add_argument("--days", type=int, default=settings.KB_AUDIT_RETENTION_DAYS)

    def handle(self, *args, days: int, **options):
        if days <= 0:
            raise CommandError("Retention is off (KB_AUDIT_RETENTION_DAYS=0): give --days to purge.")
        result = audit_purge(acting_user=system_actor(), older_than_days=days)
        if result is None:
            self.stdout.write(f"nothing older than {days} days")
            return
        self.stdout.write(
            self.style.SUCCESS(
                f"removed the chain entries up to {result.through_sequence}: {result.events} admin events, "
                f"{result.queries} queries, {result.feedback} feedback rows; the chain continues verifiably from there"
            )
        )
