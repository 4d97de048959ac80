from django.contrib import admin

from calendar_app.models import CalendarSlot


@admin.register(CalendarSlot)
class CalendarSlotAdmin(admin.ModelAdmin):
    list_display = ["id", "user", "start", "end", "status", "session_type", "session_id", "meeting_id"]
    list_filter = ["status", "session_type"]
    search_fields = ["id", "session_id", "meeting_id", "user__id", "user__username"]
    list_select_related = ["user"]
    date_hierarchy = "created_at"

    # Slots are taken and freed only by the booking services, which keep them in step with the
    # session, its hold and its meeting: the admin shows them and changes nothing.
    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False

    @admin.display(ordering="during")
    def start(self, slot):
        return slot.start

    @admin.display()
    def end(self, slot):
        return slot.end
