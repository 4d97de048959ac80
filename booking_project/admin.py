from django.contrib import admin


class ViewOnlyAdmin(admin.ModelAdmin):
    """For rows that only the services may write (holds, slots, meetings, events): operators look, the
    services change, so balances, calendars and provider state never drift apart."""

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False
