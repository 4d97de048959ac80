"""Outgoing notifications as rows of the provider-work engine (`booking_project.provider_work`; the row is the
truth, a Celery task only its courier): one delivery per result event, channel and recipient, written in the
transaction that records the event; reminders due before a session; and, on both, the flag that hands a
delivery that gave up to a person."""

import uuid

from django.conf import settings
from django.db import models

from booking_project.provider_work import NeedsPersonRow, ProviderWorkRow


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


class DeliveryState(models.TextChoices):
    PENDING = "pending", "Pending"
    RUNNING = "running", "Being delivered"
    RETRY_WAIT = "retry_wait", "Waiting to retry"
    DELIVERED = "delivered", "Delivered"
    # Not needed any more: the session moved on (an invitation to a cancelled session), or nobody to tell.
    SUPERSEDED = "superseded", "Not needed any more"
    # Refused for good or out of attempts: a person is asked to look (requires_manual_intervention).
    GIVEN_UP = "given_up", "Given up"


DELIVERY_FINAL_STATES = frozenset({DeliveryState.DELIVERED, DeliveryState.SUPERSEDED, DeliveryState.GIVEN_UP})
_UNFINISHED = [DeliveryState.PENDING, DeliveryState.RUNNING, DeliveryState.RETRY_WAIT]

# `notifications_app.services` is the only code that moves a delivery.
DELIVERY_TRANSITIONS: dict[str, frozenset[str]] = {
    DeliveryState.PENDING: frozenset({DeliveryState.RUNNING, DeliveryState.SUPERSEDED, DeliveryState.GIVEN_UP}),
    DeliveryState.RUNNING: frozenset({DeliveryState.RUNNING, DeliveryState.RETRY_WAIT, *DELIVERY_FINAL_STATES}),
    DeliveryState.RETRY_WAIT: frozenset({DeliveryState.RUNNING, DeliveryState.SUPERSEDED, DeliveryState.GIVEN_UP}),
    DeliveryState.DELIVERED: frozenset(),
    DeliveryState.SUPERSEDED: frozenset(),
    # An operator's retry.
    DeliveryState.GIVEN_UP: frozenset({DeliveryState.PENDING}),
}

# A reminder is re-armed when its session's start moves (or the session comes back): from any state.
REMINDER_TRANSITIONS: dict[str, frozenset[str]] = {
    **DELIVERY_TRANSITIONS,
    DeliveryState.RUNNING: DELIVERY_TRANSITIONS[DeliveryState.RUNNING] | {DeliveryState.PENDING},
    DeliveryState.RETRY_WAIT: DELIVERY_TRANSITIONS[DeliveryState.RETRY_WAIT] | {DeliveryState.PENDING},
    DeliveryState.DELIVERED: frozenset({DeliveryState.PENDING}),
    DeliveryState.SUPERSEDED: frozenset({DeliveryState.PENDING}),
}


class NotificationWorkRow(ProviderWorkRow, NeedsPersonRow):
    """The engine's row plus the one manual-intervention surface of notifications."""

    state = models.CharField(max_length=16, choices=DeliveryState.choices, default=DeliveryState.PENDING)
    delivered_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        abstract = True


class NotificationDelivery(NotificationWorkRow):
    """One thing a result event asks us to tell someone: a participant's calendar event brought in line with
    the session (calendar), the session's reminder rows (reminders, no recipient), an email to one recipient
    (email, with its kind). Written in the transaction that records the event; unique per (event, channel,
    recipient, email kind), so recording or handling the event twice delivers nothing twice."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    event_id = models.UUIDField()
    session_id = models.UUIDField(db_index=True)
    channel = models.CharField(max_length=10, choices=Channel.choices)
    recipient = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    email_kind = models.CharField(max_length=20, choices=EmailKind.choices, blank=True)
    # The event's body: what an email reports (operation, failure reason); the session's time is read fresh.
    payload = models.JSONField(default=dict)
    # When the event was recorded: orders the .ics versions of one session (its SEQUENCE).
    event_at = models.DateTimeField()

    class Meta:
        verbose_name_plural = "notification deliveries"
        # What an operator may do with a notification that gave up, a delivery or a reminder (the admin's actions
        # declare which they need): sending again writes to people, more than looking at the list.
        permissions = [
            ("retry_notification", "Can send a notification that gave up again"),
            ("resolve_notification", "Can mark a notification that gave up resolved"),
        ]
        constraints = [
            models.UniqueConstraint(
                fields=["event_id", "channel", "recipient", "email_kind"],
                name="delivery_once_per_event",
                nulls_distinct=False,
            ),
            models.CheckConstraint(condition=models.Q(state__in=DeliveryState.values), name="delivery_state_valid"),
            models.CheckConstraint(condition=models.Q(channel__in=Channel.values), name="delivery_channel_valid"),
            models.CheckConstraint(
                condition=models.Q(channel=Channel.EMAIL, email_kind__in=EmailKind.values)
                | (~models.Q(channel=Channel.EMAIL) & models.Q(email_kind="")),
                name="delivery_email_kind_valid",
            ),
        ]
        indexes = [
            models.Index(fields=["updated_at"], name="delivery_unfinished", condition=models.Q(state__in=_UNFINISHED)),
            models.Index(
                fields=["-manual_intervention_at"],
                name="delivery_needs_person",
                condition=models.Q(requires_manual_intervention=True),
            ),
        ]

    def __str__(self) -> str:
        what = f"{self.email_kind} email" if self.channel == Channel.EMAIL else self.get_channel_display()
        return f"{what} for session {self.session_id} to {self.recipient_id or 'all'} ({self.state})"


class Reminder(NotificationWorkRow):
    """A reminder due `offset_minutes` before a session's start: its `not_before` is the due time (then the
    retry's). The beat sender claims due rows with SELECT ... FOR UPDATE SKIP LOCKED and an attempt, and sends
    outside any transaction; a reschedule re-times the rows in place."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    session_id = models.UUIDField(db_index=True)
    recipient = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    channel = models.CharField(max_length=10, choices=[(Channel.EMAIL, Channel.EMAIL.label)], default=Channel.EMAIL)
    offset_minutes = models.PositiveIntegerField()
    due_at = models.DateTimeField()
    # The session start this reminder is for: a re-timed session re-arms a reminder sent for the old time.
    session_starts_at = models.DateTimeField()

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["session_id", "recipient", "channel", "offset_minutes"], name="reminder_once_per_offset"
            ),
            models.CheckConstraint(condition=models.Q(state__in=DeliveryState.values), name="reminder_state_valid"),
        ]
        indexes = [
            models.Index(fields=["not_before"], name="reminder_due", condition=models.Q(state__in=_UNFINISHED)),
            models.Index(
                fields=["-manual_intervention_at"],
                name="reminder_needs_person",
                condition=models.Q(requires_manual_intervention=True),
            ),
        ]

    def __str__(self) -> str:
        return f"reminder {self.offset_minutes} min before session {self.session_id} to {self.recipient_id}"
