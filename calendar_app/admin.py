from django.contrib import admin
from django.db.models import Count

from accounts_app.models import Role
from booking_project.admin import ViewOnlyAdmin
from calendar_app.models import (
    CalendarEvent,
    CalendarSlot,
    MentorSchedule,
    WorkingHours,
    WorkingHoursException,
)


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


class WorkingHoursInline(admin.TabularInline):
    model = WorkingHours
    fk_name = "mentor"
    extra = 0


class WorkingHoursExceptionInline(admin.TabularInline):
    model = WorkingHoursException
    fk_name = "mentor"
    extra = 0


@admin.register(MentorSchedule)
class MentorScheduleAdmin(admin.ModelAdmin):
    """Each mentor's weekly hours and dated exceptions, in the mentor's time zone (shown here, set on the
    person's profile). Who may edit them is the usual model permissions, of this page and of the hours."""

    list_display = ["username", "full_name", "time_zone", "weekly_ranges"]
    search_fields = ["username", "first_name", "last_name", "email"]
    fields = ["username", "full_name", "time_zone"]
    readonly_fields = ["username", "full_name", "time_zone"]
    inlines = [WorkingHoursInline, WorkingHoursExceptionInline]

    def get_queryset(self, request):
        return (
            super()
            .get_queryset(request)
            .filter(role=Role.MENTOR)
            .select_related("profile")
            .annotate(weekly_count=Count("working_hours"))
        )

    def has_add_permission(self, request, obj=None):
        return False  # mentors are made as people; this page only gives them hours

    def has_delete_permission(self, request, obj=None):
        return False

    @admin.display(description="name")
    def full_name(self, mentor):
        return mentor.get_full_name()

    @admin.display(description="time zone")
    def time_zone(self, mentor):
        profile = getattr(mentor, "profile", None)
        return profile.time_zone if profile is not None else "UTC"

    @admin.display(description="weekly ranges")
    def weekly_ranges(self, mentor):
        return mentor.weekly_count or "none: every hour counts"
