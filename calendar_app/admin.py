from django.contrib import admin

from booking_project.admin import ViewOnlyAdmin
from calendar_app.models import CalendarEvent, CalendarSlot


@admin.register(CalendarSlot)
class CalendarSlotAdmin(ViewOnlyAdmin):
    list_display = ["id", "user", "start", "end", "status", "session_type", "session_id", "meeting_id"]
    list_filter = ["status", "session_type"]
    search_fields = ["id", "session_id", "meeting_id", "user__id", "user__username"]
    list_select_related = ["user"]
    date_hierarchy = "created_at"

    @admin.display(ordering="during")
    def start(self, slot):
        return slot.start

    @admin.display()
    def end(self, slot):
        return slot.end


@admin.register(CalendarEvent)
class CalendarEventAdmin(ViewOnlyAdmin):
    list_display = ["session_id", "user", "provider", "status", "starts_at", "event_id", "updated_at"]
    list_filter = ["status", "provider"]
    search_fields = ["session_id", "event_id", "user__username"]
    list_select_related = ["user"]
