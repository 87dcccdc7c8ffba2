from django.db.models import QuerySet

from kb.accounts.models import Department, DepartmentAncestry, Membership, User


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
