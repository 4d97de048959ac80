"""Outgoing notifications as rows (the row is the truth, a Celery task only its courier): one email per
recipient per event, reminders due before a session, and the notifications that gave up, parked for a person."""

import uuid

from django.conf import settings
from django.db import models


class Channel(models.TextChoices):
    EMAIL = "email", "Email"
    CALENDAR = "calendar", "Calendar event"
    REMINDERS = "reminders", "Reminder schedule"


class EmailKind(models.TextChoices):
    INVITATION = "invitation", "Invitation"
    RESCHEDULED = "rescheduled", "Rescheduled"
    CANCELLED = "cancelled", "Cancelled"
    MEETING_FAILED = "meeting_failed", "Meeting could not be created"
    UPDATE_FAILED = "update_failed", "Meeting could not be moved"


class DeliveryStatus(models.TextChoices):
    PENDING = "pending", "Pending"
    SENT = "sent", "Sent"
    # Not sent on purpose: the session moved on (an invitation to a cancelled session), or no address.
    SKIPPED = "skipped", "Skipped"
    FAILED = "failed", "Failed"


class EmailDelivery(models.Model):
    """One email to one recipient about one integration event. Unique per (event, recipient, kind): an event
    handled twice sends nothing twice."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    event_id = models.UUIDField()
    session_id = models.UUIDField(db_index=True)
    recipient = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    kind = models.CharField(max_length=20, choices=EmailKind.choices)
    status = models.CharField(max_length=10, choices=DeliveryStatus.choices, default=DeliveryStatus.PENDING)
    # The event's body: what the email reports (operation, failure reason); the session's time is read fresh.
    payload = models.JSONField(default=dict)
    # When the event was recorded: orders the .ics versions of one session (its SEQUENCE).
    event_at = models.DateTimeField()
    attempts = models.PositiveSmallIntegerField(default=0)
    last_error = models.TextField(blank=True)
    sent_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        verbose_name_plural = "email deliveries"
        constraints = [
            models.UniqueConstraint(fields=["event_id", "recipient", "kind"], name="email_once_per_event"),
            models.CheckConstraint(condition=models.Q(kind__in=EmailKind.values), name="email_kind_valid"),
            models.CheckConstraint(condition=models.Q(status__in=DeliveryStatus.values), name="email_status_valid"),
        ]

    def __str__(self) -> str:
        return f"{self.kind} email to {self.recipient_id} ({self.status})"


class ReminderStatus(models.TextChoices):
    PENDING = "pending", "Pending"
    SENT = "sent", "Sent"
    CANCELLED = "cancelled", "Cancelled"
    FAILED = "failed", "Failed"


class Reminder(models.Model):
    """A reminder due `offset_minutes` before a session's start. The beat sender claims due rows with
    SELECT ... FOR UPDATE SKIP LOCKED; a reschedule re-times the pending rows in place."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    session_id = models.UUIDField(db_index=True)
    recipient = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    channel = models.CharField(max_length=10, choices=[(Channel.EMAIL, Channel.EMAIL.label)], default=Channel.EMAIL)
    offset_minutes = models.PositiveIntegerField()
    due_at = models.DateTimeField()
    # The session start this reminder is for: a re-timed session re-arms a reminder sent for the old time.
    session_starts_at = models.DateTimeField()
    status = models.CharField(max_length=10, choices=ReminderStatus.choices, default=ReminderStatus.PENDING)
    attempts = models.PositiveSmallIntegerField(default=0)
    last_error = models.TextField(blank=True)
    sent_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["session_id", "recipient", "channel", "offset_minutes"], name="reminder_once_per_offset"
            ),
            models.CheckConstraint(condition=models.Q(status__in=ReminderStatus.values), name="reminder_status_valid"),
        ]
        indexes = [
            models.Index(fields=["due_at"], name="reminder_due", condition=models.Q(status=ReminderStatus.PENDING)),
        ]

    def __str__(self) -> str:
        return f"reminder {self.offset_minutes} min before session {self.session_id} to {self.recipient_id}"


class FailedNotificationStatus(models.TextChoices):
    PARKED = "parked", "Parked"
    RETRIED = "retried", "Retried"


class FailedNotification(models.Model):
    """A notification that gave up after its retries (or was refused for good): listed in the admin, where an
    operator can send it again. Its failure never touched the session, the hold, the slots or the meeting."""

    id = models.BigAutoField(primary_key=True)
    channel = models.CharField(max_length=10, choices=Channel.choices)
    session_id = models.UUIDField(null=True, blank=True, db_index=True)
    recipient = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    # The Celery task and its keyword arguments: what "retry" enqueues again.
    task = models.CharField(max_length=100)
    payload = models.JSONField(default=dict)
    error = models.TextField()
    attempts = models.PositiveSmallIntegerField()
    status = models.CharField(
        max_length=10, choices=FailedNotificationStatus.choices, default=FailedNotificationStatus.PARKED
    )
    failed_at = models.DateTimeField(auto_now_add=True, db_index=True)
    retried_at = models.DateTimeField(null=True, blank=True)
    retried_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )

    class Meta:
        ordering = ["-failed_at", "-id"]
        constraints = [
            models.CheckConstraint(
                condition=models.Q(status__in=FailedNotificationStatus.values), name="failed_notification_status_valid"
            ),
        ]
        # Sending a notification again writes to people: more than looking at the list (view_failednotification).
        permissions = [("retry_failednotification", "Can send a failed notification again")]

    def __str__(self) -> str:
        return f"failed {self.channel} notification for session {self.session_id}"
