"""`manage.py directory_sync`: apply the LDAP directory's current groups to every directory user now, not only at
their next login (run it from cron, e.g. hourly), and list those the directory no longer has (or, with
--deactivate-missing, deactivate them: their sessions and API tokens end, as `manage.py user_deactivate` does)."""

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from kb.accounts.backends import DirectoryLDAPBackend, DirectoryUnavailable
from kb.accounts.models import User
from kb.accounts.services import user_deactivate
from kb.accounts.sso_settings import LDAP_BACKEND
from kb.platform.actors import system_actor


class Command(BaseCommand):
    help = "Re-read every LDAP user's groups and update their departments and role (KB_LDAP_GROUP_MAP)."

    def add_arguments(self, parser):
        parser.add_argument(
            "--deactivate-missing",
            action="store_true",
            help="deactivate the users the directory no longer has (sessions and API tokens end; audited)",
        )

    def handle(self, *args, **options):
        if LDAP_BACKEND not in settings.AUTHENTICATION_BACKENDS:
            raise CommandError("LDAP is not configured (KB_LDAP_SERVER_URI is empty).")
        backend = DirectoryLDAPBackend()
        users = User.objects.filter(directory=User.Directory.LDAP, is_active=True)
        gone = []
        for user in users.order_by("username"):
            try:
                if not backend.user_resync(user):
                    gone.append(user.username)
            except DirectoryUnavailable as error:
                raise CommandError(f"the directory did not answer ({error}); stopped, concluding nothing") from None
        self.stdout.write(self.style.SUCCESS(f"synchronised {users.count()} directory users"))
        if gone and options["deactivate_missing"]:
            for user in users.filter(username__in=gone):
                user_deactivate(acting_user=system_actor(), user=user)
            self.stdout.write(f"no longer in the directory, deactivated: {', '.join(gone)}")
        elif gone:
            self.stdout.write(
                f"no longer in the directory (their directory departments are removed; deactivate them with "
                f"`manage.py user_deactivate` or `directory_sync --deactivate-missing`): {', '.join(gone)}"
            )
