from datetime import date, datetime, time, timedelta
from functools import partial

from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied, ValidationError
from django.db.models import Prefetch, prefetch_related_objects
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404
from django.utils import timezone
from django.views.decorators.http import require_GET, require_POST

from kb.accounts.models import ApiToken, Department, Membership, User
from kb.accounts.selectors import api_tokens_of_user, department_tree_administered_by, departments_administered_by
from kb.accounts.services import (
    IssuedApiToken,
    api_token_create,
    api_token_revoke,
    department_create,
    department_move,
    membership_create,
    membership_delete,
    membership_role_change,
    user_create,
    user_deactivate,
    user_reactivate,
    user_role_change,
)
from kb.platform.actors import SYSTEM_USERNAME
from kb.platform.forms import submitted_id
from kb.platform.views import render_after_change, render_page


def _render_organisation(request: HttpRequest, *, status: int = 200, **extra) -> HttpResponse:
    tree = department_tree_administered_by(user=request.user)
    if not tree and not request.user.is_superuser:
        raise PermissionDenied("Only department admins and superusers manage the organisation.")
    members = Prefetch("memberships", queryset=Membership.objects.select_related("user").order_by("user__username"))
    prefetch_related_objects([department for department, _ in tree], members)
    context = {
        "tree": tree,
        "all_departments": Department.objects.all(),
        "users": User.objects.exclude(username=SYSTEM_USERNAME).order_by("username")
        if request.user.is_superuser
        else [],
        "membership_roles": Membership.Role.choices,
        "user_roles": User.Role.choices,
        **extra,
    }
    return render_page(request, "accounts/organisation.html", partial="organisation", context=context, status=status)


def _attempt(request: HttpRequest, change) -> HttpResponse:
    return render_after_change(change, partial(_render_organisation, request))


def _administered_department(request: HttpRequest, department_id: int | str | None) -> Department:
    return get_object_or_404(departments_administered_by(user=request.user), pk=department_id or None)


def _optional_department(value: str | None) -> Department | None:
    return get_object_or_404(Department, pk=submitted_id(value)) if value else None


@login_required
@require_GET
def organisation_page(request: HttpRequest) -> HttpResponse:
    return _render_organisation(request)


@login_required
@require_POST
def department_create_view(request: HttpRequest) -> HttpResponse:
    parent = _optional_department(request.POST.get("parent"))
    name = request.POST.get("name", "").strip()
    return _attempt(request, lambda: department_create(acting_user=request.user, name=name, parent=parent))


@login_required
@require_POST
def department_move_view(request: HttpRequest, department_id: int) -> HttpResponse:
    department = get_object_or_404(Department, pk=department_id)
    parent = _optional_department(request.POST.get("parent"))
    return _attempt(request, lambda: department_move(acting_user=request.user, department=department, parent=parent))


@login_required
@require_POST
def membership_create_view(request: HttpRequest, department_id: int) -> HttpResponse:
    department = _administered_department(request, department_id)
    user = User.objects.filter(username=request.POST.get("username", "").strip()).first()
    if user is None:
        return _render_organisation(request, status=400, error="No user has that username.")
    role = request.POST.get("role", Membership.Role.MEMBER)
    return _attempt(
        request, lambda: membership_create(acting_user=request.user, user=user, department=department, role=role)
    )


@login_required
@require_POST
def membership_role_change_view(request: HttpRequest, membership_id: int) -> HttpResponse:
    membership = _administered_membership(request, membership_id)
    role = request.POST.get("role", "")
    return _attempt(request, lambda: membership_role_change(acting_user=request.user, membership=membership, role=role))


@login_required
@require_POST
def membership_delete_view(request: HttpRequest, membership_id: int) -> HttpResponse:
    membership = _administered_membership(request, membership_id)
    return _attempt(request, lambda: membership_delete(acting_user=request.user, membership=membership))


@login_required
@require_POST
def user_create_view(request: HttpRequest) -> HttpResponse:
    username = request.POST.get("username", "").strip()
    password = request.POST.get("password", "")
    role = request.POST.get("role", User.Role.EMPLOYEE)
    if len(password) < 12:
        return _render_organisation(request, status=400, error="Give the new user a password of 12 characters or more.")
    return _attempt(
        request, lambda: user_create(acting_user=request.user, username=username, password=password, role=role)
    )


@login_required
@require_POST
def user_role_change_view(request: HttpRequest, user_id: int) -> HttpResponse:
    user = get_object_or_404(User, pk=user_id)
    role = request.POST.get("role", "")
    return _attempt(request, lambda: user_role_change(acting_user=request.user, user=user, role=role))


@login_required
@require_POST
def user_deactivate_view(request: HttpRequest, user_id: int) -> HttpResponse:
    user = get_object_or_404(User.objects.exclude(username=SYSTEM_USERNAME), pk=user_id)
    return _attempt(request, lambda: user_deactivate(acting_user=request.user, user=user))


@login_required
@require_POST
def user_reactivate_view(request: HttpRequest, user_id: int) -> HttpResponse:
    user = get_object_or_404(User.objects.exclude(username=SYSTEM_USERNAME), pk=user_id)
    return _attempt(request, lambda: user_reactivate(acting_user=request.user, user=user))


def _administered_membership(request: HttpRequest, membership_id: int) -> Membership:
    return get_object_or_404(
        Membership.objects.select_related("user", "department"),
        pk=membership_id,
        department__in=departments_administered_by(user=request.user),
    )


def _render_api_tokens(
    request: HttpRequest, *, status: int = 200, error: str = "", issued: IssuedApiToken | None = None
) -> HttpResponse:
    context = {
        "tokens": api_tokens_of_user(user=request.user),
        "scopes": ApiToken.Scope.choices,
        "now": timezone.now(),
        "error": error,
        "issued": issued,
    }
    response = render_page(request, "accounts/api_tokens.html", partial="api-tokens", context=context, status=status)
    response["Cache-Control"] = "no-store"  # a new token is in it, once
    return response


@login_required
@require_GET
def api_tokens_page(request: HttpRequest) -> HttpResponse:
    """The user's own API tokens: made, listed and revoked here, by everyone for themselves."""
    return _render_api_tokens(request)


def _submitted_expiry(value: str) -> datetime | None:
    """A token valid until the end of the day chosen, in the server's time zone."""
    if not value.strip():
        return None
    try:
        day = date.fromisoformat(value.strip())
    except ValueError:
        raise ValidationError("The expiry is not a date.") from None
    if day >= date.max:
        raise ValidationError("Leave the expiry empty for a token that lasts until it is revoked.")
    return timezone.make_aware(datetime.combine(day + timedelta(days=1), time.min))


@login_required
@require_POST
def api_token_create_view(request: HttpRequest) -> HttpResponse:
    """The new token is in this response only: it is never stored or shown again."""
    try:
        issued = api_token_create(
            acting_user=request.user,
            name=request.POST.get("name", ""),
            scopes=request.POST.getlist("scope"),
            expires_at=_submitted_expiry(request.POST.get("expires_on", "")),
        )
    except ValidationError as error:
        return _render_api_tokens(request, status=400, error=" ".join(error.messages))
    return _render_api_tokens(request, issued=issued)


@login_required
@require_POST
def api_token_revoke_view(request: HttpRequest, token_id: int) -> HttpResponse:
    change = partial(api_token_revoke, acting_user=request.user, token_id=token_id)
    return render_after_change(change, partial(_render_api_tokens, request))
