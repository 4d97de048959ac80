from django.contrib import admin, messages
from django.contrib.admin import helpers
from django.db import models
from django.template.response import TemplateResponse

from booking_project.admin import ViewOnlyAdmin
from booking_project.errors import ApplicationError
from meetings_app.models import Meeting, ProviderEvent, ProviderPause, ProviderPauseChange
from meetings_app.services import provider_pause, provider_resume


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


@admin.register(ProviderPause)
class ProviderPauseAdmin(ViewOnlyAdmin):
    """Pause a provider during its outage, resume it after: its work waits, then drains at a bounded rate. The
    rows change only through the two actions (the services), each asking for a reason that the audit keeps."""

    list_display = ["provider", "paused", "paused_at", "paused_by", "reason", "updated_at"]
    list_select_related = ["paused_by"]
    ordering = ["provider"]
    actions = ["pause", "resume"]

    # Looking (view_providerpause) is not pausing: each action needs meetings_app.pause_provider, and
    # ActionPermissionsAdmin answers 403 to anyone without it.
    def has_pause_permission(self, request) -> bool:
        return request.user.has_perm("meetings_app.pause_provider")

    @admin.action(description="Pause the provider (its work waits)", permissions=["pause"])
    def pause(self, request, queryset):
        return self._with_reason(request, queryset, "pause", reason_required=True)

    @admin.action(description="Resume the provider (its waiting work drains)", permissions=["pause"])
    def resume(self, request, queryset):
        return self._with_reason(request, queryset, "resume", reason_required=False)

    def _with_reason(self, request, queryset, action: str, *, reason_required: bool):
        if "reason" in request.POST:
            reason = request.POST["reason"].strip()
            if reason or not reason_required:
                for pause in queryset:
                    self._act(request, action, pause.provider, reason)
                return None
            self.message_user(request, "Say why the provider is paused.", messages.ERROR)
        return TemplateResponse(
            request,
            "admin/meetings_app/provider_pause_reason.html",
            {
                **self.admin_site.each_context(request),
                "title": f"{action.capitalize()} providers",
                "pauses": queryset,
                "action": action,
                "reason_required": reason_required,
                "opts": self.model._meta,
                "action_checkbox_name": helpers.ACTION_CHECKBOX_NAME,
            },
        )

    def _act(self, request, action: str, provider: str, reason: str) -> None:
        try:
            if action == "pause":
                done = provider_pause(provider=provider, actor=request.user, reason=reason)
                verdict = "paused: its work waits." if done else "was paused already."
            else:
                woken = provider_resume(provider=provider, actor=request.user, reason=reason)
                done = woken is not None
                verdict = f"resumed: {woken} waiting piece(s) of work woken." if done else "was running."
        except ApplicationError as error:
            self.message_user(request, f"{provider}: {error.message}", messages.ERROR)
            return
        self.message_user(request, f"{provider} {verdict}", messages.SUCCESS if done else messages.INFO)


@admin.register(ProviderPauseChange)
class ProviderPauseChangeAdmin(ViewOnlyAdmin):
    """Who paused or resumed which provider, when and why (appended by the services, never edited)."""

    list_display = ["at", "provider", "action", "actor", "reason", "woken"]
    list_filter = ["provider", "action"]
    list_select_related = ["actor"]
    date_hierarchy = "at"


@admin.register(ProviderEvent)
class ProviderEventAdmin(ViewOnlyAdmin):
    list_display = ["received_at", "provider", "kind", "provider_reference", "meeting", "happened_at", "event_key"]
    list_filter = ["provider", "kind"]
    search_fields = ["event_key", "provider_reference", "meeting__id"]
    date_hierarchy = "received_at"
    list_select_related = ["meeting"]
