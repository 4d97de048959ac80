from django.contrib import admin

from meetings_app.models import Meeting


@admin.register(Meeting)
class MeetingAdmin(admin.ModelAdmin):
    list_display = ["id", "provider", "meeting_no", "status", "start_time", "duration_minutes", "topic", "created_at"]
    list_filter = ["provider", "status"]
    search_fields = ["id", "provider_meeting_id", "meeting_no", "topic"]
    date_hierarchy = "start_time"
    readonly_fields = [f.name for f in Meeting._meta.fields]

    # Meetings mirror the provider; only the meeting manager may change them.
    def has_add_permission(self, request):
        return False

    def has_delete_permission(self, request, obj=None):
        return False
