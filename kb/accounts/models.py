from django.conf import settings
from django.contrib.auth.models import AbstractUser
from django.db import models


class User(AbstractUser):
    class Role(models.TextChoices):
        EMPLOYEE = "employee", "Employee"
        AUDITOR = "auditor", "Compliance auditor"

    # Department administration is per department (Membership.role); superusers are Django superusers.
    class Directory(models.TextChoices):
        LOCAL = "", "Local account"
        LDAP = "ldap", "LDAP"
        OIDC = "oidc", "OpenID Connect"

    role = models.CharField(max_length=16, choices=Role.choices, default=Role.EMPLOYEE)
    # Where the account came from: a directory's users have no password here and get their departments from it.
    directory = models.CharField(max_length=8, choices=Directory.choices, default=Directory.LOCAL, blank=True)


class Department(models.Model):
    """A unit of the organisation; departments nest (Finance › Payroll) and access follows the tree."""

    name = models.CharField(max_length=120, unique=True)
    parent = models.ForeignKey("self", null=True, blank=True, on_delete=models.PROTECT, related_name="children")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class DepartmentAncestry(models.Model):
    """The tree's closure: a row for each department and each of its ancestors, itself included at depth 0.

    Kept by the department services so that "this department or any above it" is one join inside the SQL of every
    permission-filtered search, instead of a recursive query per request or a walk in Python.
    """

    department = models.ForeignKey(Department, on_delete=models.CASCADE, related_name="ancestry")
    ancestor = models.ForeignKey(Department, on_delete=models.CASCADE, related_name="descendancy")
    depth = models.PositiveSmallIntegerField()

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["department", "ancestor"], name="ancestry_unique_department_ancestor")
        ]
        indexes = [models.Index(fields=["ancestor", "department"], name="ancestry_by_ancestor")]

    def __str__(self) -> str:
        return f"{self.ancestor_id} above {self.department_id} by {self.depth}"


class Membership(models.Model):
    class Role(models.TextChoices):
        MEMBER = "member", "Member"
        ADMIN = "admin", "Department admin"

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="memberships")
    department = models.ForeignKey(Department, on_delete=models.CASCADE, related_name="memberships")
    role = models.CharField(max_length=16, choices=Role.choices, default=Role.MEMBER)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["user", "department"], name="membership_unique_user_department")]

    def __str__(self) -> str:
        return f"{self.user} in {self.department} ({self.role})"
