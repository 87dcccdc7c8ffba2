from django.contrib.auth import get_user_model
from django.contrib.auth.models import AbstractUser

# Not a valid username for a person: the username validator refuses ":", so no form can create or claim it.
SYSTEM_USERNAME = "kb:system"


def system_actor() -> AbstractUser:
    """Who acts when the app acts by itself or on a server-side command (ingestion, retention, set-up commands).

    Services check it and the audit trail names it like anyone else: no check is skipped for a missing user. A
    superuser, so it passes the checks a superuser would; it has no usable password, so nobody can log in as it.
    """
    user, created = get_user_model().objects.get_or_create(
        username=SYSTEM_USERNAME, defaults={"is_superuser": True, "first_name": "System"}
    )
    if created:
        user.set_unusable_password()
        user.save(update_fields=["password"])
    return user
