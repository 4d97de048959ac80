from django.contrib import admin
from django.db import models

from booking_project.admin import ViewOnlyAdmin
from meetings_app.models import Meeting, ProviderEvent


@admin.register(Meeting)
class MeetingAdmin(ViewOnlyAdmin):
    list_display = [
        "id",
        "provider",
        "meeting_no",
        "status",
        "start_time",
        "duration_minutes",
        "reference",
        "created_at",
    ]
    list_filter = ["provider", "status"]
    search_fields = ["id", "provider_meeting_id", "meeting_no", "topic", "reference"]
    date_hierarchy = "start_time"
    formfield_overrides = {models.URLField: {"assume_scheme": "https"}}  # meeting links are https


@admin.register(ProviderEvent)
class ProviderEventAdmin(ViewOnlyAdmin):
    list_display = ["received_at", "provider", "kind", "provider_reference", "meeting", "happened_at", "event_key"]
    list_filter = ["provider", "kind"]
    search_fields = ["event_key", "provider_reference", "meeting__id"]
    date_hierarchy = "received_at"
    list_select_related = ["meeting"]
