import hmac
import re

from django.db.models import Q, QuerySet
from django.db.models.functions import Now
from django.http import Http404

from kb.accounts.models import ApiToken, Department, DepartmentAncestry, Membership, User


def departments_of_user(*, user: User) -> QuerySet[Department]:
    """The departments the user belongs to, and every department above them: a member of Payroll is in Finance."""
    return Department.objects.filter(
        pk__in=DepartmentAncestry.objects.filter(department__memberships__user=user).values("ancestor")
    )


def departments_administered_by(*, user: User) -> QuerySet[Department]:
    """The departments where the user is an admin, and every department below them."""
    if user.is_superuser:
        return Department.objects.all()
    return Department.objects.filter(
        pk__in=DepartmentAncestry.objects.filter(
            ancestor__memberships__user=user, ancestor__memberships__role=Membership.Role.ADMIN
        ).values("department")
    )


def department_is_administered_by(*, user: User, department: Department) -> bool:
    """Whether the user administers the department, directly or through a department above it."""
    return departments_administered_by(user=user).filter(pk=department.pk).exists()


def department_tree_administered_by(*, user: User) -> list[tuple[Department, int]]:
    """The departments the user administers in tree order, each with its depth below the top one shown."""
    departments = list(departments_administered_by(user=user).select_related("parent").order_by("name"))
    shown = {department.pk for department in departments}
    children: dict[int | None, list[Department]] = {}
    for department in departments:
        children.setdefault(department.parent_id if department.parent_id in shown else None, []).append(department)
    ordered: list[tuple[Department, int]] = []

    def visit(parent_id: int | None, depth: int) -> None:
        for department in children.get(parent_id, []):
            ordered.append((department, depth))
            visit(department.pk, depth + 1)

    visit(None, 0)
    return ordered


# kb_<prefix: 12 hex digits>_<secret: 32 random bytes, URL-safe base64>
API_TOKEN_FORMAT = re.compile(r"kb_([0-9a-f]{12})_([A-Za-z0-9_-]{43})")


def api_token_authenticated(*, presented: str) -> ApiToken | None:
    """The token presented, with its user, while it may act: not revoked, not expired, its user active. None for
    anything else, alike: a wrong secret, an unknown prefix, a revoked or expired token, a deactivated user."""
    match = API_TOKEN_FORMAT.fullmatch(presented)
    if match is None:
        return None
    token = (
        ApiToken.objects.select_related("user")
        .filter(prefix=match[1], revoked_at=None, user__is_active=True)
        .filter(Q(expires_at=None) | Q(expires_at__gt=Now()))
        .first()
    )
    if token is None or not hmac.compare_digest(token.secret_hash, ApiToken.hash_of(presented)):
        return None
    return token


def api_tokens_of_user(*, user: User) -> QuerySet[ApiToken]:
    """The user's own tokens, newest first, revoked and expired ones too (they stay listed as such)."""
    return ApiToken.objects.filter(user_id=user.pk).order_by("-created_at", "-id")


def api_token_get_for_owner(*, user: User, token_id: int | None) -> ApiToken:
    """One of the user's tokens; anyone else's, and one that never was, get the same 404."""
    token = api_tokens_of_user(user=user).filter(pk=token_id).first()
    if token is None:
        raise Http404("No such API token.")
    return token
