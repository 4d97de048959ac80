import json

from django.contrib import admin, messages
from django.contrib.admin import helpers
from django.template.response import TemplateResponse
from django.utils.html import format_html, format_html_join
from django.utils.text import Truncator

from booking_project.admin import ViewOnlyAdmin
from booking_project.admin_queue import QueueSurface, queue_surface_register
from booking_project.errors import ApplicationError
from sessions_app.models import (
    AuditEntry,
    IdempotencyRecord,
    ManualIntervention,
    MeetingOperation,
    MeetingSaga,
    OutboxEvent,
    Session,
    SessionStudent,
)
from sessions_app.repairs import meeting_move_retry, saga_meeting_cancel_retry, saga_person_retry, saga_resolve
from sessions_app.services import session_reprovision


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
        "needs_person",
        "created_at",
    ]
    list_filter = ["status", "session_type", "meeting_provider", "saga__requires_manual_intervention"]
    search_fields = ["id", "topic", "counselor__username", "mentor__username", "meeting__meeting_no"]
    list_select_related = ["counselor", "mentor", "saga"]
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
        "audit_trail",
    ]

    def has_add_permission(self, request):
        return False

    @admin.display(description="audit trail")
    def audit_trail(self, session: Session) -> str:
        entries = AuditEntry.objects.filter(session_id=session.id).select_related("actor")
        return format_html(
            "<table><tr><th>when</th><th>action</th><th>who</th><th>via</th><th>from</th><th>to</th></tr>{}</table>",
            format_html_join(
                "",
                "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td><code>{}</code></td><td><code>{}</code></td></tr>",
                (
                    (e.at.isoformat(timespec="seconds"), e.get_action_display(), e.actor or "the system", e.via,
                     json.dumps(e.before), json.dumps(e.after))
                    for e in entries
                ),
            ),
        )  # fmt: skip

    def has_delete_permission(self, request, obj=None):
        return False

    @admin.display(boolean=True, description="manual intervention")
    def needs_person(self, session: Session) -> bool:
        return session.requires_manual_intervention


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


SAGA_FIELDS = [
    "session",
    "state",
    "round",
    "event_id",
    "attempts",
    "attempt_id",
    "attempt_started_at",
    "not_before",
    "outcome_unknown",
    "unexpected_errors",
    "meeting",
    "last_error",
    "compensation_reason",
    "cancel_attempts",
    "requires_manual_intervention",
    "manual_intervention_reason",
    "manual_intervention_at",
    "resolved_by",
    "resolved_at",
    "resolution_note",
    "last_driven_at",
    "created_at",
    "updated_at",
    "finished_at",
]


@admin.register(MeetingSaga)
class MeetingSagaAdmin(ViewOnlyAdmin):
    """Where every session's meeting provisioning stands."""

    list_display = ["session", "state", "round", "attempts", "requires_manual_intervention", "updated_at"]
    list_filter = ["state", "requires_manual_intervention"]
    search_fields = ["session__id", "event_id", "meeting__meeting_no"]
    list_select_related = ["session"]
    ordering = ["-updated_at"]
    fields = SAGA_FIELDS
    readonly_fields = SAGA_FIELDS


@admin.register(ManualIntervention)
class ManualInterventionAdmin(ViewOnlyAdmin):
    """The operators' queue: sagas that need a person, newest first, with the three ways to deal with one."""

    list_display = ["session", "state", "manual_intervention_at", "short_reason", "session_status"]
    list_select_related = ["session"]
    search_fields = ["session__id", "manual_intervention_reason"]
    ordering = ["-manual_intervention_at"]
    fields = SAGA_FIELDS
    readonly_fields = SAGA_FIELDS
    actions = ["retry_provider_cancel", "retry_meeting_move", "reprovision", "resolve_with_note"]

    def get_queryset(self, request):
        return super().get_queryset(request).filter(requires_manual_intervention=True)

    # Each action names the permission it needs (ManualIntervention.Meta.permissions): seeing the queue
    # (view_manualintervention) is not working it. ActionPermissionsAdmin answers 403 to anyone without it.
    def has_retry_permission(self, request) -> bool:
        return request.user.has_perm("sessions_app.retry_manualintervention")

    def has_reprovision_permission(self, request) -> bool:
        return request.user.has_perm("sessions_app.reprovision_manualintervention")

    def has_resolve_permission(self, request) -> bool:
        return request.user.has_perm("sessions_app.resolve_manualintervention")

    @admin.display(description="reason")
    def short_reason(self, saga: ManualIntervention) -> str:
        return Truncator(saga.manual_intervention_reason).chars(120)

    @admin.display(description="session status")
    def session_status(self, saga: ManualIntervention) -> str:
        return saga.session.status

    @admin.action(description="Retry the provider cancel of the meeting", permissions=["retry"])
    def retry_provider_cancel(self, request, queryset):
        self._repair(
            request,
            queryset,
            saga_meeting_cancel_retry,
            done="meeting cancelled, resolved.",
            not_done="not cancelled (no meeting to cancel, the session uses it, or the provider refused again; "
            "see last error).",
        )

    @admin.action(description="Retry moving the meeting to the session's time", permissions=["retry"])
    def retry_meeting_move(self, request, queryset):
        self._repair(
            request,
            queryset,
            meeting_move_retry,
            done="meeting moved, resolved.",
            not_done="not moved (the session is not scheduled with an active meeting, or the provider refused "
            "again; see last error).",
        )

    def _repair(self, request, queryset, repair, *, done: str, not_done: str) -> None:
        """Run a repair (it resolves the intervention when it works) on each chosen saga and say how it went."""
        for saga in queryset:
            if repair(session_id=saga.session_id, actor_id=request.user.id):
                self.message_user(request, f"{saga.session_id}: {done}", messages.SUCCESS)
            else:
                self.message_user(request, f"{saga.session_id}: {not_done}", messages.WARNING)

    @admin.action(description="Re-provision the meeting", permissions=["reprovision"])
    def reprovision(self, request, queryset):
        for saga in queryset:
            try:
                outcome = session_reprovision(session_id=saga.session_id, actor=request.user)
            except ApplicationError as error:
                self.message_user(request, f"{saga.session_id}: {error.message}", messages.ERROR)
            else:
                self.message_user(request, f"{saga.session_id}: {outcome}", messages.SUCCESS)

    @admin.action(description="Mark resolved with a note", permissions=["resolve"])
    def resolve_with_note(self, request, queryset):
        if "note" in request.POST:
            note = request.POST["note"].strip()
            if note:
                for saga in queryset:
                    saga_resolve(session_id=saga.session_id, actor_id=request.user.id, note=note)
                self.message_user(request, f"{queryset.count()} resolved.", messages.SUCCESS)
                return None
            self.message_user(request, "Write a note saying what was done.", messages.ERROR)
        return TemplateResponse(
            request,
            "admin/sessions_app/resolve_with_note.html",
            {
                **self.admin_site.each_context(request),
                "title": "Mark resolved with a note",
                "sagas": queryset,
                "opts": self.model._meta,
                "action_checkbox_name": helpers.ACTION_CHECKBOX_NAME,
            },
        )


@admin.register(MeetingOperation)
class MeetingOperationAdmin(ViewOnlyAdmin):
    """Every meeting change after booking (a cancel, a move) and where it stands at the provider."""

    list_display = ["session", "kind", "state", "attempts", "created_at", "finished_at"]
    list_filter = ["kind", "state"]
    search_fields = ["session__id"]
    list_select_related = ["session"]
    ordering = ["-created_at"]


@admin.register(AuditEntry)
class AuditEntryAdmin(ViewOnlyAdmin):
    """The append-only trail: read here, filtered by session, action or person."""

    list_display = ["at", "action", "session_id", "actor", "via"]
    list_filter = ["action", "via"]
    search_fields = ["session_id", "actor__username"]
    list_select_related = ["actor"]
    date_hierarchy = "at"
    ordering = ["-at", "-id"]


# The operators' one queue (booking_project/admin_queue.py): a session's flag, retried or resolved with a note.
queue_surface_register(
    QueueSurface(
        kind="meeting_saga",
        retry=lambda saga, user: saga_person_retry(session_id=saga.session_id, actor_id=user.id),
        resolve=lambda saga, user, note: _resolved(saga, user, note),
        retry_permission="sessions_app.retry_manualintervention",
        resolve_permission="sessions_app.resolve_manualintervention",
        retry_label="move or cancel the meeting at the provider again",
    )
)


def _resolved(saga, user, note: str) -> bool:
    saga_resolve(session_id=saga.session_id, actor_id=user.id, note=note)
    return True
