from django.contrib import admin, messages
from django.utils.text import Truncator

from booking_project.admin import ViewOnlyAdmin
from booking_project.admin_queue import QueueSurface, queue_surface_register
from notifications_app.models import NotificationDelivery, Reminder
from notifications_app.services import delivery_retry, notification_resolve, reminder_retry

RETRY_PERMISSION = "notifications_app.retry_notification"
RESOLVE_PERMISSION = "notifications_app.resolve_notification"

WORK_FIELDS = ["state", "attempts", "attempt_id", "attempt_started_at", "not_before", "outcome_unknown",
               "unexpected_errors", "last_error", "requires_manual_intervention", "manual_intervention_reason",
               "manual_intervention_at", "resolved_by", "resolved_at", "resolution_note", "last_driven_at",
               "created_at", "updated_at", "delivered_at", "finished_at"]  # fmt: skip


class _NeedsPersonActions:
    """What a person can do with a notification that gave up: send it again (a fresh set of attempts, with who
    and when kept), or mark it dealt with."""

    actions = ["retry", "resolve"]

    @admin.display(description="reason")
    def short_reason(self, row) -> str:
        return Truncator(row.manual_intervention_reason or row.last_error).chars(120)

    # Each action names the permission it needs (NotificationDelivery.Meta.permissions, for reminders too):
    # seeing the list (view_*) is not acting on it. ActionPermissionsAdmin answers 403 to anyone without it.
    def has_retry_permission(self, request) -> bool:
        return request.user.has_perm(RETRY_PERMISSION)

    def has_resolve_permission(self, request) -> bool:
        return request.user.has_perm(RESOLVE_PERMISSION)

    @admin.action(description="Retry the selected notifications", permissions=["retry"])
    def retry(self, request, queryset):
        send_again = delivery_retry if queryset.model is NotificationDelivery else reminder_retry
        key = "delivery_id" if queryset.model is NotificationDelivery else "reminder_id"
        retried = sum(send_again(**{key: row.id}, actor=request.user) for row in queryset)
        self.message_user(request, f"{retried} notification(s) enqueued again.", messages.SUCCESS)
        if skipped := queryset.count() - retried:
            self.message_user(request, f"{skipped} had not given up (nothing to retry).", messages.WARNING)

    @admin.action(description="Mark resolved (dealt with by hand)", permissions=["resolve"])
    def resolve(self, request, queryset):
        resolved = sum(notification_resolve(row=row, actor=request.user, note="dealt with by hand") for row in queryset)
        self.message_user(request, f"{resolved} resolved.", messages.SUCCESS)


@admin.register(NotificationDelivery)
class NotificationDeliveryAdmin(_NeedsPersonActions, ViewOnlyAdmin):
    """Every calendar event, reminder schedule and email a result event asked for, and where it stands. Filter
    on "requires manual intervention" for those that gave up: "retry" sends them again."""

    list_display = ["created_at", "channel", "email_kind", "session_id", "recipient", "state", "attempts",
                    "requires_manual_intervention", "short_reason", "delivered_at"]  # fmt: skip
    list_filter = ["requires_manual_intervention", "state", "channel", "email_kind"]
    search_fields = ["session_id", "event_id", "recipient__username"]
    list_select_related = ["recipient"]
    ordering = ["-created_at"]
    fields = ["event_id", "session_id", "channel", "email_kind", "recipient", "payload", "event_at", *WORK_FIELDS]
    readonly_fields = fields


@admin.register(Reminder)
class ReminderAdmin(_NeedsPersonActions, ViewOnlyAdmin):
    list_display = ["due_at", "session_id", "recipient", "offset_minutes", "state", "attempts",
                    "requires_manual_intervention", "short_reason", "delivered_at"]  # fmt: skip
    list_filter = ["requires_manual_intervention", "state", "offset_minutes"]
    search_fields = ["session_id", "recipient__username"]
    list_select_related = ["recipient"]
    ordering = ["-due_at"]
    fields = ["session_id", "recipient", "offset_minutes", "due_at", "session_starts_at", *WORK_FIELDS]
    readonly_fields = fields


# The operators' one queue (booking_project/admin_queue.py) works these kinds with the same two actions.
for _kind, _send_again in (
    ("notification_delivery", lambda row, user: delivery_retry(delivery_id=row.id, actor=user)),
    ("reminder", lambda row, user: reminder_retry(reminder_id=row.id, actor=user)),
):
    queue_surface_register(
        QueueSurface(
            kind=_kind,
            retry=_send_again,
            resolve=lambda row, user, note: notification_resolve(row=row, actor=user, note=note),
            retry_permission=RETRY_PERMISSION,
            resolve_permission=RESOLVE_PERMISSION,
            retry_label="send it again",
        )
    )
