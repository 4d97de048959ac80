from django.contrib import admin

from holds_app.models import Entitlement, Hold


class HoldInline(admin.TabularInline):
    model = Hold
    extra = 0
    can_delete = False
    readonly_fields = ["id", "session_id", "status", "created_at", "released_at", "consumed_at"]

    def has_add_permission(self, request, obj=None):
        return False


@admin.register(Entitlement)
class EntitlementAdmin(admin.ModelAdmin):
    list_display = ["id", "student", "session_type", "units_bought", "created_at"]
    list_filter = ["session_type"]
    search_fields = ["id", "student__id", "student__username", "student__email"]
    list_select_related = ["student"]
    autocomplete_fields = ["student"]
    inlines = [HoldInline]


@admin.register(Hold)
class HoldAdmin(admin.ModelAdmin):
    list_display = ["id", "session_id", "entitlement", "status", "created_at", "released_at", "consumed_at"]
    list_filter = ["status", "entitlement__session_type"]
    search_fields = ["id", "session_id", "entitlement__student__username"]
    list_select_related = ["entitlement"]
    date_hierarchy = "created_at"

    # Holds change only through the booking services, so that the balance stays true: view only.
    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False
