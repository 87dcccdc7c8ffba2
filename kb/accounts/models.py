import hashlib

from django.conf import settings
from django.contrib.auth.models import AbstractUser
from django.contrib.postgres.fields import ArrayField
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
    # The API rate limit's current minute and the requests counted in it, over all the user's tokens
    # (kb.accounts.services.api_token_request_admit): more tokens do not make more requests.
    api_window_started_at = models.DateTimeField(null=True, blank=True, editable=False)
    api_window_requests = models.PositiveIntegerField(default=0, editable=False)


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


class ApiToken(models.Model):
    """A personal token for the API (/v1): it acts as its owner, within its scopes, until it expires or is revoked.

    Only a SHA-256 hash of the token is kept (the secret has 256 random bits: a slow hash would add nothing); the
    short public prefix finds the row. The owner sees the token once, when it is made.
    """

    class Scope(models.TextChoices):
        ASK = "ask", "Ask questions (/v1/chat/completions)"
        SEARCH = "search", "Search passages (/v1/search)"
        EMBEDDINGS = "embeddings", "Embed texts (/v1/embeddings)"

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="api_tokens")
    name = models.CharField(max_length=100)
    prefix = models.CharField(max_length=16, unique=True)
    secret_hash = models.CharField(max_length=64)
    scopes = ArrayField(models.CharField(max_length=16, choices=Scope.choices))
    created_at = models.DateTimeField(auto_now_add=True)
    expires_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)
    last_used_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return f"{self.name} ({self.prefix}…)"

    @staticmethod
    def hash_of(presented: str) -> str:
        return hashlib.sha256(presented.encode()).hexdigest()
