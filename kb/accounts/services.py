from django.db import transaction

from kb.accounts.models import Department, Membership, User
from kb.audit.models import AuditEvent
from kb.audit.services import audit_record


@transaction.atomic
def department_create(*, acting_user: User | None, name: str) -> Department:
    department = Department(name=name)
    department.full_clean()
    department.save()
    audit_record(actor=acting_user, kind=AuditEvent.Kind.DEPARTMENT_CREATED, subject=department, after={"name": name})
    return department


@transaction.atomic
def user_create(
    *,
    acting_user: User | None,
    username: str,
    password: str,
    role: User.Role = User.Role.EMPLOYEE,
    is_superuser: bool = False,
) -> User:
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
def membership_delete(*, acting_user: User | None, membership: Membership) -> None:
    """Leaving a department takes effect on the next query: permissions are never cached."""
    audit_record(
        actor=acting_user,
        kind=AuditEvent.Kind.MEMBERSHIP_DELETED,
        subject=membership,
        before={"user": membership.user_id, "department": membership.department_id, "role": membership.role},
    )
    membership.delete()


@transaction.atomic
def membership_create(
    *, acting_user: User | None, user: User, department: Department, role: Membership.Role = Membership.Role.MEMBER
) -> Membership:
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
