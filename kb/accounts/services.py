import logging
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime

from django.contrib.sessions.models import Session
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import connection, transaction
from django.utils import timezone

from kb.accounts.models import ApiToken, Department, DepartmentAncestry, Membership, User
from kb.accounts.selectors import api_token_get_for_owner, department_is_administered_by
from kb.audit.models import AuditEvent
from kb.audit.services import audit_record
from kb.platform.actors import system_actor

logger = logging.getLogger(__name__)


@transaction.atomic
def department_create(*, acting_user: User, name: str, parent: Department | None = None) -> Department:
    _require_superuser(acting_user)
    department = Department(name=name, parent=parent)
    department.full_clean()
    department.save()
    above = DepartmentAncestry.objects.filter(department=parent) if parent is not None else []
    DepartmentAncestry.objects.bulk_create(
        [DepartmentAncestry(department=department, ancestor=department, depth=0)]
        + [DepartmentAncestry(department=department, ancestor_id=row.ancestor_id, depth=row.depth + 1) for row in above]
    )
    audit_record(
        actor=acting_user,
        kind=AuditEvent.Kind.DEPARTMENT_CREATED,
        subject=department,
        after={"name": name, "parent": getattr(parent, "pk", None)},
    )
    return department


@transaction.atomic
def department_move(*, acting_user: User, department: Department, parent: Department | None) -> Department:
    """Put a department (with everything below it) under another one, or at the top; access follows at once."""
    _require_superuser(acting_user)
    subtree = DepartmentAncestry.objects.filter(ancestor=department)
    if parent is not None and subtree.filter(department=parent).exists():
        raise ValidationError("A department cannot move under itself or one of its own sub-departments.")
    before = {"parent": department.parent_id}
    # Closure-table move: cut the subtree from its old ancestors, then join it to the new parent's ancestors.
    DepartmentAncestry.objects.filter(department__in=subtree.values("department")).exclude(
        ancestor__in=subtree.values("department")
    ).delete()
    if parent is not None:
        above = list(DepartmentAncestry.objects.filter(department=parent))
        DepartmentAncestry.objects.bulk_create(
            [
                DepartmentAncestry(
                    department_id=below.department_id, ancestor_id=row.ancestor_id, depth=row.depth + below.depth + 1
                )
                for below in subtree
                for row in above
            ]
        )
    department.parent = parent
    department.save(update_fields=["parent"])
    audit_record(
        actor=acting_user,
        kind=AuditEvent.Kind.DEPARTMENT_MOVED,
        subject=department,
        before=before,
        after={"parent": getattr(parent, "pk", None)},
    )
    return department


@transaction.atomic
def user_create(
    *,
    acting_user: User,
    username: str,
    password: str,
    role: User.Role = User.Role.EMPLOYEE,
    is_superuser: bool = False,
) -> User:
    _require_superuser(acting_user)
    user = User(username=username, role=role, is_superuser=is_superuser, is_staff=is_superuser)
    user.set_password(password)
    user.full_clean()
    user.save()
    audit_record(
        actor=acting_user,
        kind=AuditEvent.Kind.USER_CREATED,
        subject=user,
        after={"username": username, "role": role, "is_superuser": is_superuser},
    )
    return user


@transaction.atomic
def user_role_change(*, acting_user: User, user: User, role: User.Role) -> User:
    """Employee or compliance auditor; an auditor reads query logs, not documents, unless granted like anyone."""
    _require_superuser(acting_user)
    before = {"role": user.role}
    user.role = role
    user.full_clean()
    user.save(update_fields=["role"])
    audit_record(
        actor=acting_user, kind=AuditEvent.Kind.USER_ROLE_CHANGED, subject=user, before=before, after={"role": role}
    )
    return user


@transaction.atomic
def membership_create(
    *, acting_user: User, user: User, department: Department, role: Membership.Role = Membership.Role.MEMBER
) -> Membership:
    _require_department_admin(acting_user, department)
    membership = Membership(user=user, department=department, role=role)
    membership.full_clean()
    membership.save()
    audit_record(
        actor=acting_user,
        kind=AuditEvent.Kind.MEMBERSHIP_CREATED,
        subject=membership,
        after={"user": user.pk, "department": department.pk, "role": role},
    )
    return membership


@transaction.atomic
def membership_role_change(*, acting_user: User, membership: Membership, role: Membership.Role) -> Membership:
    _require_department_admin(acting_user, membership.department)
    before = {"role": membership.role}
    membership.role = role
    membership.full_clean()
    membership.save(update_fields=["role"])
    audit_record(
        actor=acting_user,
        kind=AuditEvent.Kind.MEMBERSHIP_ROLE_CHANGED,
        subject=membership,
        before=before,
        after={"role": role},
    )
    return membership


@transaction.atomic
def membership_delete(*, acting_user: User, membership: Membership) -> None:
    """Leaving a department takes effect on the next query: permissions are never cached."""
    _require_department_admin(acting_user, membership.department)
    audit_record(
        actor=acting_user,
        kind=AuditEvent.Kind.MEMBERSHIP_DELETED,
        subject=membership,
        before={"user": membership.user_id, "department": membership.department_id, "role": membership.role},
    )
    membership.delete()


@transaction.atomic
def user_deactivate(*, acting_user: User, user: User) -> User:
    """The user can no longer log in, and every session and API token they have ends now; their audit records
    stay."""
    _require_superuser(acting_user)
    if user.pk == acting_user.pk:
        raise ValidationError("You cannot deactivate yourself.")
    if user.pk == system_actor().pk:
        raise ValidationError("The system account acts for the app itself (ingestion, set-up): it stays active.")
    if not user.is_active:  # a second click, or a second admin: nothing changes, so nothing is recorded
        raise ValidationError(f"{user.username} is deactivated already.")
    user.is_active = False
    user.save(update_fields=["is_active"])
    ended = _sessions_end(user)
    # Their API tokens end too, for good: reactivating the user does not bring them back.
    tokens_revoked = ApiToken.objects.filter(user=user, revoked_at__isnull=True).update(revoked_at=timezone.now())
    audit_record(
        actor=acting_user,
        kind=AuditEvent.Kind.USER_DEACTIVATED,
        subject=user,
        before={"is_active": True},
        after={"is_active": False, "sessions_ended": ended, "api_tokens_revoked": tokens_revoked},
    )
    return user


@transaction.atomic
def user_reactivate(*, acting_user: User, user: User) -> User:
    _require_superuser(acting_user)
    if user.is_active:
        raise ValidationError(f"{user.username} is active already.")
    user.is_active = True
    user.save(update_fields=["is_active"])
    audit_record(
        actor=acting_user,
        kind=AuditEvent.Kind.USER_REACTIVATED,
        subject=user,
        before={"is_active": False},
        after={"is_active": True},
    )
    return user


USER_PROFILE_FIELDS = ("first_name", "last_name", "email")  # what a directory keeps up to date at every login


@transaction.atomic
def user_directory_sync(
    *,
    user: User,
    directory: User.Directory,
    created: bool,
    departments: Mapping[str, Membership.Role],
    managed_departments: set[str],
    role: User.Role | None,
    profile_before: Mapping[str, str] | None = None,
) -> None:
    """Make a directory user's memberships what their groups say, at each login, acting as the system.

    `profile_before`: the user's name and e-mail (USER_PROFILE_FIELDS) before the directory's were saved over them;
    what changed is recorded.

    The directory owns the departments its group map names (`managed_departments`): a membership there that no group
    gives any more is removed, and one with another role is changed. Memberships in other departments were given by
    hand here and stay. `role` None: the map gives no user roles, and the one set here stays.
    """
    actor = system_actor()
    if created:
        audit_record(
            actor=actor,
            kind=AuditEvent.Kind.USER_CREATED,
            subject=user,
            after={"username": user.username, "directory": directory},
        )
    if profile_before is not None:
        changed = [field for field in USER_PROFILE_FIELDS if profile_before.get(field) != getattr(user, field)]
        if changed:
            audit_record(
                actor=actor,
                kind=AuditEvent.Kind.USER_PROFILE_SYNCED,
                subject=user,
                before={field: profile_before.get(field) for field in changed},
                after={field: getattr(user, field) for field in changed},
            )
    if role is not None and user.role != role:
        user_role_change(acting_user=actor, user=user, role=role)
    wanted = {department.name: department for department in Department.objects.filter(name__in=departments)}
    for name in departments.keys() - wanted.keys():
        logger.warning("%s group map names department %r, which does not exist here", directory, name)
    held = Membership.objects.select_related("department").filter(user=user, department__name__in=managed_departments)
    for membership in held:
        role_wanted = departments.get(membership.department.name)
        if role_wanted is None:
            membership_delete(acting_user=actor, membership=membership)
        elif membership.role != role_wanted:
            membership_role_change(acting_user=actor, membership=membership, role=role_wanted)
    held_names = {membership.department.name for membership in held}
    for name, department in wanted.items():
        if name not in held_names:
            membership_create(acting_user=actor, user=user, department=department, role=departments[name])


def _sessions_end(user: User) -> int:
    """Delete the user's unexpired sessions. A session names its user only inside its encoded data, so each is read."""
    theirs = [
        session.pk
        for session in Session.objects.filter(expire_date__gt=timezone.now()).iterator()
        if session.get_decoded().get("_auth_user_id") == str(user.pk)
    ]
    Session.objects.filter(pk__in=theirs).delete()
    return len(theirs)


@dataclass(frozen=True)
class IssuedApiToken:
    token: ApiToken
    plaintext: str  # shown to its owner once, then known only by its hash


@transaction.atomic
def api_token_create(
    *, acting_user: User, name: str, scopes: list[str], expires_at: datetime | None = None
) -> IssuedApiToken:
    """A new personal token for the acting user, acting as them within `scopes` until `expires_at` (None: until
    revoked). The audit row names it by its public prefix; the secret is never stored or recorded."""
    name = " ".join(name.split())
    if not name:
        raise ValidationError("Name the token after what will use it.")
    if not scopes:
        raise ValidationError("Choose at least one scope.")
    unknown = set(scopes) - set(ApiToken.Scope.values)
    if unknown:
        raise ValidationError(f"Unknown scope: {', '.join(sorted(unknown))}.")
    if expires_at is not None and expires_at <= timezone.now():
        raise ValidationError("The expiry date has passed already.")
    prefix = secrets.token_hex(6)
    plaintext = f"kb_{prefix}_{secrets.token_urlsafe(32)}"
    token = ApiToken(
        user=acting_user,
        name=name,
        prefix=prefix,
        secret_hash=ApiToken.hash_of(plaintext),
        scopes=[scope for scope in ApiToken.Scope.values if scope in scopes],
        expires_at=expires_at,
    )
    token.full_clean()
    token.save()
    audit_record(
        actor=acting_user,
        kind=AuditEvent.Kind.API_TOKEN_CREATED,
        subject=token,
        after={
            "name": token.name,
            "prefix": prefix,
            "scopes": token.scopes,
            "expires_at": expires_at.isoformat() if expires_at else None,
        },
    )
    return IssuedApiToken(token=token, plaintext=plaintext)


@transaction.atomic
def api_token_revoke(*, acting_user: User, token_id: int | None) -> ApiToken:
    """Its owner's revocation: the token stops working on the next request. 404 for anyone else's token."""
    token = api_token_get_for_owner(user=acting_user, token_id=token_id)
    if token.revoked_at is not None:
        raise ValidationError("This token is revoked already.")
    token.revoked_at = timezone.now()
    token.save(update_fields=["revoked_at"])
    audit_record(
        actor=acting_user,
        kind=AuditEvent.Kind.API_TOKEN_REVOKED,
        subject=token,
        before={"revoked_at": None},
        after={"name": token.name, "prefix": token.prefix, "revoked_at": token.revoked_at.isoformat()},
    )
    return token


def api_token_request_admit(*, token: ApiToken, per_minute: int) -> int:
    """Count a request of the token's user in the current minute, over all their tokens, and note the token's use; 0
    when it may go ahead, else the seconds until the next minute, when it may. Per user, not per token: anyone may
    make tokens, and each new one would otherwise bring a minute's worth of requests with it.

    One statement (the token's UPDATE feeding the user's) on the database's clock: concurrent requests from any
    number of web processes queue on the user's row lock and each counts exactly once (no cache server is needed).
    `per_minute` 0: no limit.
    """
    tokens = connection.ops.quote_name(ApiToken._meta.db_table)
    users = connection.ops.quote_name(User._meta.db_table)
    with connection.cursor() as cursor:
        cursor.execute(
            f"""
            WITH used AS (
                UPDATE {tokens} SET last_used_at = statement_timestamp() WHERE id = %s RETURNING user_id
            )
            UPDATE {users} SET
                api_window_requests = CASE WHEN api_window_started_at = date_trunc('minute', statement_timestamp())
                                           THEN api_window_requests + 1 ELSE 1 END,
                api_window_started_at = date_trunc('minute', statement_timestamp())
            FROM used WHERE {users}.id = used.user_id
            RETURNING api_window_requests, CEIL(EXTRACT(EPOCH FROM
                date_trunc('minute', statement_timestamp()) + interval '1 minute' - statement_timestamp()))
            """,
            [token.pk],
        )
        counted, seconds_left = cursor.fetchone()
    if per_minute and counted > per_minute:
        return max(1, int(seconds_left))
    return 0


def _require_superuser(acting_user: User) -> None:
    if not acting_user.is_superuser:
        raise PermissionDenied("Only a superuser may change departments and user roles.")


def _require_department_admin(acting_user: User, department: Department) -> None:
    if not department_is_administered_by(user=acting_user, department=department):
        raise PermissionDenied(f"You do not administer {department}.")
