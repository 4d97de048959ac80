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
