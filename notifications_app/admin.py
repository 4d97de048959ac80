from django.contrib import admin, messages

from booking_project.admin import ViewOnlyAdmin
from notifications_app.models import EmailDelivery, FailedNotification, FailedNotificationStatus, Reminder
from notifications_app.services import failed_notification_retry


@admin.register(FailedNotification)
class FailedNotificationAdmin(ViewOnlyAdmin):
    """Notifications that gave up after their retries. "Retry" enqueues each again, recording who and when."""

    list_display = ["failed_at", "channel", "session_id", "recipient", "attempts", "short_error", "status",
                    "retried_at", "retried_by"]  # fmt: skip
    list_filter = ["status", "channel"]
    search_fields = ["session_id", "recipient__username", "task"]
    list_select_related = ["recipient", "retried_by"]
    readonly_fields = ["channel", "session_id", "recipient", "task", "payload", "error", "attempts", "status",
                       "failed_at", "retried_at", "retried_by"]  # fmt: skip
    actions = ["retry"]

    @admin.display(description="error")
    def short_error(self, failed):
        return failed.error[:120]

    def has_retry_permission(self, request) -> bool:
        # Sending again writes to people: more than seeing the list.
        return request.user.has_perm("notifications_app.retry_failednotification")

    @admin.action(description="Retry the selected notifications", permissions=["retry"])
    def retry(self, request, queryset):
        retried = sum(
            failed_notification_retry(failed=failed, actor=request.user)
            for failed in queryset.filter(status=FailedNotificationStatus.PARKED)
        )
        skipped = queryset.count() - retried
        self.message_user(request, f"{retried} notification(s) enqueued again.", messages.SUCCESS)
        if skipped:
            self.message_user(request, f"{skipped} had already been retried.", messages.WARNING)


@admin.register(Reminder)
class ReminderAdmin(ViewOnlyAdmin):
    list_display = ["due_at", "session_id", "recipient", "offset_minutes", "status", "attempts", "sent_at"]
    list_filter = ["status", "offset_minutes"]
    search_fields = ["session_id", "recipient__username"]
    list_select_related = ["recipient"]


@admin.register(EmailDelivery)
class EmailDeliveryAdmin(ViewOnlyAdmin):
    list_display = ["created_at", "kind", "session_id", "recipient", "status", "attempts", "sent_at"]
    list_filter = ["status", "kind"]
    search_fields = ["session_id", "event_id", "recipient__username"]
    list_select_related = ["recipient"]
