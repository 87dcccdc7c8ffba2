from django.db.models import QuerySet

from kb.accounts.models import Department, Membership, User


def departments_of_user(*, user: User) -> QuerySet[Department]:
    return Department.objects.filter(memberships__user=user)


def departments_administered_by(*, user: User) -> QuerySet[Department]:
    if user.is_superuser:
        return Department.objects.all()
    return Department.objects.filter(memberships__user=user, memberships__role=Membership.Role.ADMIN)
