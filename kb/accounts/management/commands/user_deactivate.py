"""`manage.py user_deactivate USERNAME`: the user can no longer log in and every session of theirs ends now."""

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError

from kb.accounts.models import User
from kb.accounts.services import user_deactivate, user_reactivate
from kb.platform.actors import SYSTEM_USERNAME, system_actor


class Command(BaseCommand):
    help = "Deactivate a user (their sessions end at once; their audit records stay), or --reactivate them."

    def add_arguments(self, parser):
        parser.add_argument("username")
        parser.add_argument("--reactivate", action="store_true", help="let a deactivated user log in again")

    def handle(self, *args, username: str, reactivate: bool, **options):
        user = User.objects.exclude(username=SYSTEM_USERNAME).filter(username=username).first()
        if user is None:
            raise CommandError(f"no user is named {username!r}")
        change = user_reactivate if reactivate else user_deactivate
        try:
            change(acting_user=system_actor(), user=user)
        except ValidationError as error:
            raise CommandError(" ".join(error.messages)) from None
        if reactivate:
            self.stdout.write(self.style.SUCCESS(f"{username} can log in again"))
        else:
            self.stdout.write(self.style.SUCCESS(f"{username} is deactivated and logged out everywhere"))
