from django.contrib import admin

from kb.accounts.models import Department, Membership, User
from kb.platform.admin import ReadOnlyAdmin


@admin.register(User)
class UserAdmin(ReadOnlyAdmin):
    list_display = ["username", "email", "role", "directory", "is_active", "last_login"]
    list_filter = ["role", "directory", "is_active"]
    search_fields = ["username", "email"]
    exclude = ["password"]


@admin.register(Department)
class DepartmentAdmin(ReadOnlyAdmin):
    list_display = ["name", "parent", "created_at"]
    search_fields = ["name"]


@admin.register(Membership)
class MembershipAdmin(ReadOnlyAdmin):
    list_display = ["user", "department", "role", "created_at"]
    list_filter = ["role", "department"]
    search_fields = ["user__username", "department__name"]
