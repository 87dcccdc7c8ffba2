from django.contrib import admin


class ReadOnlyAdmin(admin.ModelAdmin):
    """Rows that change only through the app's services, which check permissions and write the audit trail in the
    same transaction: the admin shows them and changes nothing."""

    def has_add_permission(self, request, obj=None) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False
