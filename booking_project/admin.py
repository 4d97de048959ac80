from django.contrib import admin
from django.core.exceptions import PermissionDenied


class ActionPermissionsAdmin(admin.ModelAdmin):
    """Admin actions that declare the permission they need (`@admin.action(permissions=["retry"])`, checked by
    the admin's `has_retry_permission`) answer 403 to a user without it. Django would only leave the action out
    of the menu and answer a POST of it with "No action selected": a refusal must be a refusal."""

    def changelist_view(self, request, extra_context=None):
        name = request.POST.get("action") if request.method == "POST" else None
        action = self.get_action(name) if name else None
        if action is not None:
            func = action[0]
            for permission in getattr(func, "allowed_permissions", ()):
                if not getattr(self, f"has_{permission}_permission")(request):
                    raise PermissionDenied
        return super().changelist_view(request, extra_context)


class ViewOnlyAdmin(ActionPermissionsAdmin):
    """For rows that only the services may write (holds, slots, meetings, events): operators look, the
    services change, so balances, calendars and provider state never drift apart."""

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False
