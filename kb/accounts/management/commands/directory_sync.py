"""`manage.py directory_sync`: apply the LDAP directory's current groups to every directory user now, not only at
their next login (run it from cron, e.g. hourly), and list those the directory no longer has."""

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from kb.accounts.backends import DirectoryLDAPBackend, DirectoryUnavailable
from kb.accounts.models import User
from kb.accounts.sso_settings import LDAP_BACKEND


class Command(BaseCommand):
    help = "Re-read every LDAP user's groups and update their departments and role (KB_LDAP_GROUP_MAP)."

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
        if gone:
            self.stdout.write(
                f"no longer in the directory (their directory departments are removed; deactivate them with "
                f"`manage.py user_deactivate`): {', '.join(gone)}"
            )
