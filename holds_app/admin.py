from django import forms
from django.contrib import admin

from booking_project.admin import ViewOnlyAdmin
from holds_app.models import SPENDING_HOLD_STATUSES, Entitlement, Hold


class EntitlementForm(forms.ModelForm):
    class Meta:
        model = Entitlement
        fields = ["student", "session_type", "units_bought"]

    def clean_units_bought(self):
        units = self.cleaned_data["units_bought"]
        if self.instance.pk:
            spent = self.instance.holds.filter(status__in=SPENDING_HOLD_STATUSES).count()
            if units < spent:
                raise forms.ValidationError(
                    f"{spent} units are already held or consumed; the balance cannot go below 0."
                )
        return units


class HoldInline(admin.TabularInline):
    model = Hold
    extra = 0
    can_delete = False
    readonly_fields = ["id", "session_id", "status", "created_at", "released_at", "consumed_at"]

    def has_add_permission(self, request, obj=None):
        return False


@admin.register(Entitlement)
class EntitlementAdmin(admin.ModelAdmin):
    form = EntitlementForm
    list_display = ["id", "student", "session_type", "units_bought", "units_free", "created_at"]
    list_filter = ["session_type"]
    search_fields = ["id", "student__id", "student__username", "student__email"]
    list_select_related = ["student"]
    autocomplete_fields = ["student"]
    inlines = [HoldInline]

    def get_queryset(self, request):
        return super().get_queryset(request).with_units_spent()

    @admin.display(description="free units", ordering="units_spent")
    def units_free(self, entitlement):
        return entitlement.units_bought - entitlement.units_spent


@admin.register(Hold)
class HoldAdmin(ViewOnlyAdmin):
    list_display = ["id", "session_id", "entitlement", "status", "created_at", "released_at", "consumed_at"]
    list_filter = ["status", "entitlement__session_type"]
    search_fields = ["id", "session_id", "entitlement__student__username"]
    list_select_related = ["entitlement"]
    date_hierarchy = "created_at"
