from django.contrib import admin

from booking_project.admin import ViewOnlyAdmin
from sessions_app.models import IdempotencyRecord, OutboxEvent, Session, SessionStudent


class SessionStudentInline(admin.TabularInline):
    model = SessionStudent
    extra = 0
    can_delete = False
    readonly_fields = ["student", "position"]

    def has_add_permission(self, request, obj=None):
        return False


@admin.register(Session)
class SessionAdmin(admin.ModelAdmin):
    list_display = [
        "id",
        "session_type",
        "status",
        "scheduled_at",
        "duration_minutes",
        "meeting_provider",
        "counselor",
        "mentor",
        "requires_manual_intervention",
        "created_at",
    ]
    list_filter = ["status", "session_type", "meeting_provider", "requires_manual_intervention"]
    search_fields = ["id", "topic", "counselor__username", "mentor__username", "meeting__meeting_no"]
    list_select_related = ["counselor", "mentor"]
    date_hierarchy = "scheduled_at"
    ordering = ["-created_at"]
    inlines = [SessionStudentInline]
    # Status, slots and meeting move only through the services (the state machine lives there).
    readonly_fields = [
        "id",
        "session_type",
        "status",
        "counselor",
        "mentor",
        "scheduled_at",
        "duration_minutes",
        "meeting_provider",
        "meeting",
        "slot_ids",
        "failure_reason",
        "requires_manual_intervention",
        "created_at",
        "updated_at",
        "status_changed_at",
    ]

    def has_add_permission(self, request):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


@admin.register(OutboxEvent)
class OutboxEventAdmin(ViewOnlyAdmin):
    list_display = ["id", "type", "version", "created_at", "published_at"]
    list_filter = ["type", ("published_at", admin.EmptyFieldListFilter)]
    search_fields = ["id", "type", "payload__sessionId"]
    date_hierarchy = "created_at"
    ordering = ["-created_at"]


@admin.register(IdempotencyRecord)
class IdempotencyRecordAdmin(ViewOnlyAdmin):
    list_display = ["key", "counselor", "session", "response_status", "created_at"]
    search_fields = ["key", "session__id", "counselor__username"]
    list_filter = ["response_status"]
    list_select_related = ["counselor"]
    date_hierarchy = "created_at"
