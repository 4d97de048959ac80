from django import forms
from django.contrib import admin

from booking_project.admin import ViewOnlyAdmin
from holds_app.models import BalanceChange, Entitlement, Hold
from holds_app.services import BalanceBelowSpent, entitlement_units_check, entitlement_units_set


class EntitlementForm(forms.ModelForm):
    class Meta:
        model = Entitlement
        fields = ["student", "session_type", "units_bought"]

    def clean_units_bought(self):
        units = self.cleaned_data["units_bought"]
        if self.instance.pk:
            # The admin's change view runs in one transaction: the entitlement stays locked from this check to
            # the save (EntitlementAdmin.save_model), so no booking can hold a unit in between.
            try:
                entitlement_units_check(entitlement_id=self.instance.pk, units_bought=units)
            except BalanceBelowSpent as error:
                raise forms.ValidationError(error.message) from None
        return units


class HoldInline(admin.TabularInline):
    model = Hold
    extra = 0
    can_delete = False
    readonly_fields = ["id", "session_id", "status", "created_at", "released_at", "consumed_at"]

    def has_add_permission(self, request, obj=None):
        return False


class BalanceChangeInline(admin.TabularInline):
    model = BalanceChange
    extra = 0
    can_delete = False
    fields = readonly_fields = ["at", "actor", "via", "units_before", "units_after", "units_spent"]

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False


@admin.register(Entitlement)
class EntitlementAdmin(admin.ModelAdmin):
    form = EntitlementForm
    list_display = ["id", "student", "session_type", "units_bought", "units_free", "created_at"]
    list_filter = ["session_type"]
    search_fields = ["id", "student__id", "student__username", "student__email"]
    list_select_related = ["student"]
    autocomplete_fields = ["student"]
    inlines = [HoldInline, BalanceChangeInline]

    def get_queryset(self, request):
        return super().get_queryset(request).with_units_spent()

    def get_readonly_fields(self, request, obj=None):
        # Whose units, and of what, are fixed once bought: holds refer to them.
        return ["student", "session_type"] if obj is not None else []

    def save_model(self, request, obj, form, change):
        entitlement_units_set(entitlement=obj, units_bought=obj.units_bought, actor=request.user, via="admin")

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


@admin.register(BalanceChange)
class BalanceChangeAdmin(ViewOnlyAdmin):
    """Who changed a student's balance, when, from what to what (append-only)."""

    list_display = ["at", "entitlement", "actor", "via", "units_before", "units_after", "units_spent"]
    list_filter = ["via", "entitlement__session_type"]
    search_fields = ["entitlement__id", "entitlement__student__username", "actor__username"]
    list_select_related = ["entitlement", "actor"]
    date_hierarchy = "at"
