"""Directory logins (LDAP, OpenID Connect): each maps the user's groups to departments and role at every login.

Listed in AUTHENTICATION_BACKENDS only when configured (kb/accounts/sso_settings.py). Two rules hold for both:
- an account with a password here is a local one (a break-glass admin): a directory entry of the same name never logs
  in as it, and the system actor is never a directory user;
- a deactivated user is refused, whatever the directory says, and a session of theirs that survived is not honoured.
"""

from collections.abc import Iterable

from django.conf import settings
from django.core.exceptions import SuspiciousOperation, ValidationError
from django.db import transaction
from django_auth_ldap.backend import LDAPBackend, ldap_error
from mozilla_django_oidc.auth import OIDCAuthenticationBackend

from kb.accounts.models import Membership, User
from kb.accounts.services import USER_PROFILE_FIELDS, user_directory_sync
from kb.platform.actors import SYSTEM_USERNAME


def directory_grants(
    groups: Iterable[str], group_map: dict[str, dict]
) -> tuple[dict[str, Membership.Role], User.Role | None]:
    """The departments (with the strongest role any group gives) and the user role that these groups map to.

    Group names compare without case: django-auth-ldap lowers the DNs it reads, and DNs are case-insensitive anyway.
    """
    by_lowered_name = {group.lower(): grants for group, grants in group_map.items()}
    departments: dict[str, Membership.Role] = {}
    roles_given = any("role" in grants for grants in group_map.values())
    role = User.Role.EMPLOYEE if roles_given else None
    for group in groups:
        grants = by_lowered_name.get(group.lower(), {})
        for name, department_role in grants.get("departments", {}).items():
            if departments.get(name) != Membership.Role.ADMIN:
                departments[name] = Membership.Role(department_role)
        if grants.get("role") == User.Role.AUDITOR:
            role = User.Role.AUDITOR
    return departments, role


def _sync_from_groups(
    user: User,
    *,
    directory: User.Directory,
    created: bool,
    groups: Iterable[str],
    group_map: dict,
    profile_before: dict[str, str] | None,
) -> None:
    departments, role = directory_grants(groups, group_map)
    managed = {name for grants in group_map.values() for name in grants.get("departments", {})}
    user_directory_sync(
        user=user,
        directory=directory,
        created=created,
        departments=departments,
        managed_departments=managed,
        role=role,
        profile_before=profile_before,
    )


def _profile_of(user: User) -> dict[str, str]:
    return {field: getattr(user, field) for field in USER_PROFILE_FIELDS}


def _is_local_account(user: User) -> bool:
    return user.username == SYSTEM_USERNAME or user.has_usable_password()


class DirectoryUnavailable(Exception):
    """The directory did not answer: nothing is concluded about anyone's groups."""


def _directory_error_raise(sender, context, exception, **kwargs):
    raise DirectoryUnavailable(f"{context}: {exception}")


class DirectoryLDAPBackend(LDAPBackend):
    def get_or_build_user(self, username, ldap_user):
        user, built = super().get_or_build_user(username, ldap_user)
        if not built and _is_local_account(user):
            raise ldap_user.AuthenticationFailed(f"{username} is a local account; it logs in with its own password")
        if built:
            user.directory = User.Directory.LDAP
        ldap_user.kb_created = built
        # The directory's name and e-mail are saved over these next (AUTH_LDAP_USER_ATTR_MAP): kept to record what
        # changed.
        ldap_user.kb_profile_before = None if built else _profile_of(user)
        return user, built

    @transaction.atomic  # the directory's attributes saved by django-auth-ldap and their audit row together
    def authenticate_ldap_user(self, ldap_user, password):
        user = super().authenticate_ldap_user(ldap_user, password)
        if user is None or not user.is_active:
            return None
        _sync_from_groups(
            user,
            directory=User.Directory.LDAP,
            created=getattr(ldap_user, "kb_created", False),
            groups=ldap_user.group_dns,
            group_map=settings.KB_LDAP_GROUP_MAP,
            profile_before=getattr(ldap_user, "kb_profile_before", None),
        )
        return user

    def get_user(self, user_id):
        user = super().get_user(user_id)
        return user if user is not None and user.is_active else None

    @transaction.atomic
    def user_resync(self, user: User) -> bool:
        """Apply the directory's groups now, without the user's password (`manage.py directory_sync`).

        False: the directory no longer has the user, and the departments its groups gave are taken away. Raises
        DirectoryUnavailable when the directory cannot be asked, rather than take that for "in no group".
        """
        ldap_error.connect(_directory_error_raise, sender=type(self))
        try:
            found = self.populate_user(user.username)
        finally:
            ldap_error.disconnect(_directory_error_raise, sender=type(self))
        groups = found.ldap_user.group_dns if found is not None else []
        _sync_from_groups(
            user,
            directory=User.Directory.LDAP,
            created=False,
            groups=groups,
            group_map=settings.KB_LDAP_GROUP_MAP,
            profile_before=getattr(found.ldap_user, "kb_profile_before", None) if found is not None else None,
        )
        return found is not None


class DirectoryOIDCBackend(OIDCAuthenticationBackend):
    """Users are matched by the username claim (not by e-mail, which a provider may let its users change)."""

    def authenticate(self, request, nonce=None, code_verifier=None):
        """Only the callback's credentials: Django skips a backend whose signature does not take the credentials
        given, so a username and password never reach here, and ?code=&state= typed onto the login page is ignored."""
        return super().authenticate(request, nonce=nonce, code_verifier=code_verifier)

    def _username(self, claims: dict) -> str:
        return str(claims.get(settings.KB_OIDC_USERNAME_CLAIM, ""))

    def verify_claims(self, claims):
        return bool(self._username(claims))

    def describe_user_by_claims(self, claims):
        return f"username {self._username(claims)}"

    def filter_users_by_claims(self, claims):
        return self.UserModel.objects.filter(username__iexact=self._username(claims))

    def create_user(self, claims):
        user = self.UserModel(username=self._username(claims), directory=User.Directory.OIDC)
        user.set_unusable_password()
        self._fill_and_sync(user, claims, created=True)
        return user

    def update_user(self, user, claims):
        if _is_local_account(user):
            raise SuspiciousOperation(f"{user.username} is a local account; it logs in with its own password")
        if user.directory == User.Directory.LDAP:
            # Usernames match case-insensitively: an OIDC login must not take over (and regroup) the LDAP user of the
            # same name where both directories are configured.
            raise SuspiciousOperation(f"{user.username} is an LDAP account; it logs in through the LDAP directory")
        if not user.is_active:
            return None
        self._fill_and_sync(user, claims, created=False)
        return user

    @transaction.atomic
    def _fill_and_sync(self, user: User, claims: dict, *, created: bool) -> None:
        profile_before = None if created else _profile_of(user)
        user.email = claims.get("email", user.email)
        user.first_name = claims.get("given_name", user.first_name)
        user.last_name = claims.get("family_name", user.last_name)
        try:
            user.full_clean(exclude=["password"])
        except ValidationError as error:
            raise SuspiciousOperation(f"the provider's claims do not make a valid user: {error}") from None
        user.save()
        groups = claims.get(settings.KB_OIDC_GROUPS_CLAIM) or []
        if isinstance(groups, str):
            groups = [groups]
        _sync_from_groups(
            user,
            directory=User.Directory.OIDC,
            created=created,
            groups=groups,
            group_map=settings.KB_OIDC_GROUP_MAP,
            profile_before=profile_before,
        )

    def get_user(self, user_id):
        user = super().get_user(user_id)
        return user if user is not None and user.is_active else None
