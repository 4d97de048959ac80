import uuid

from django.conf import settings
from django.contrib.postgres.constraints import ExclusionConstraint
from django.contrib.postgres.fields import DateTimeRangeField, RangeOperators
from django.db import models

SLOT_NO_OVERLAP = "calendar_slot_no_overlap"


class SlotStatus(models.TextChoices):
    BOOKED = "booked", "Booked"
    CANCELLED = "cancelled", "Cancelled"


class CalendarSlot(models.Model):
    """A stretch of one person's time taken by a session. Booked slots of a person never overlap."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="calendar_slots")
    # Half-open [start, end): a session ending at 10:00 does not collide with one starting at 10:00.
    during = DateTimeRangeField()
    status = models.CharField(max_length=16, choices=SlotStatus.choices, default=SlotStatus.BOOKED)
    session_type = models.CharField(max_length=32)
    # Filled in by the provisioning saga once the meeting exists.
    session_id = models.UUIDField(null=True, blank=True, db_index=True)
    meeting_id = models.UUIDField(null=True, blank=True)
    metadata = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [
            models.CheckConstraint(condition=models.Q(status__in=SlotStatus.values), name="slot_status_valid"),
            models.CheckConstraint(condition=~models.Q(during__isempty=True), name="slot_not_empty"),
            ExclusionConstraint(
                name=SLOT_NO_OVERLAP,
                expressions=[("user", RangeOperators.EQUAL), ("during", RangeOperators.OVERLAPS)],
                condition=models.Q(status=SlotStatus.BOOKED),
            ),
        ]

    def __str__(self) -> str:
        return f"slot {self.id} of {self.user_id} ({self.status})"

    @property
    def start(self):
        return self.during.lower

    @property
    def end(self):
        return self.during.upper


class CalendarEventStatus(models.TextChoices):
    PENDING = "pending", "Pending: nothing made at the provider yet"
    # A create was sent and may have reached the provider: its answer (the event id) is not recorded yet.
    CREATING = "creating", "Creating at the provider"
    ACTIVE = "active", "In the participant's calendar"
    DELETED = "deleted", "Deleted (or never made, the session being over)"


class CalendarEvent(models.Model):
    """A session's event in one participant's calendar: which provider, calendar and event hold it, and what it
    says now. The row is the truth a delivery task converges from; the provider call is only the courier."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    # A plain id, like the slots': the record outlives anything done to the session row.
    session_id = models.UUIDField()
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="calendar_events")
    provider = models.CharField(max_length=16, blank=True)
    calendar_id = models.CharField(max_length=255, blank=True)
    event_id = models.CharField(max_length=1024, blank=True)
    # Bumped when an event deleted for good has to be made again, so the new one gets a new idempotency key.
    generation = models.PositiveSmallIntegerField(default=0)
    status = models.CharField(max_length=16, choices=CalendarEventStatus.choices, default=CalendarEventStatus.PENDING)
    # What the provider's event says now, to know whether it must move.
    starts_at = models.DateTimeField(null=True, blank=True)
    ends_at = models.DateTimeField(null=True, blank=True)
    meeting_url = models.TextField(blank=True)
    summary = models.CharField(max_length=255, blank=True)
    last_error = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["session_id", "user"], name="calendar_event_once_per_participant"),
            models.CheckConstraint(
                condition=models.Q(status__in=CalendarEventStatus.values), name="calendar_event_status_valid"
            ),
        ]

    def __str__(self) -> str:
        return f"calendar event of {self.user_id} for session {self.session_id} ({self.status})"

    @property
    def idempotency_key(self) -> str:
        """Stable for the row: Feishu's idempotency_key and, as 32 base32hex characters, Google's event id."""
        return f"{self.id.hex}{self.generation:x}"
