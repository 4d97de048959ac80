import datetime
import uuid

from django.conf import settings
from django.contrib.auth.models import UserManager
from django.contrib.postgres.constraints import ExclusionConstraint
from django.contrib.postgres.fields import DateTimeRangeField, RangeOperators
from django.db import models

from accounts_app.models import Role, User

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


class Weekday(models.IntegerChoices):
    MONDAY = 0, "Monday"
    TUESDAY = 1, "Tuesday"
    WEDNESDAY = 2, "Wednesday"
    THURSDAY = 3, "Thursday"
    FRIDAY = 4, "Friday"
    SATURDAY = 5, "Saturday"
    SUNDAY = 6, "Sunday"


# A range may end at midnight: 00:00 as an end means the end of the day, not its start.
_RANGE_ORDERED = models.Q(ends_at__gt=models.F("starts_at")) | models.Q(ends_at=datetime.time(0, 0))


class WorkingHours(models.Model):
    """One weekly range of a mentor's working hours, in the mentor's own time zone (their profile's). A day
    with no range is a day off; a mentor with no range at all counts as working at any hour. Working hours
    guide what is offered (availability, suggestions); booking outside them stays allowed."""

    id = models.BigAutoField(primary_key=True)
    mentor = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="working_hours")
    weekday = models.PositiveSmallIntegerField(choices=Weekday.choices)
    starts_at = models.TimeField()
    ends_at = models.TimeField(help_text="00:00 means midnight, the end of the day.")

    class Meta:
        verbose_name = "weekly working hours"
        verbose_name_plural = "weekly working hours"
        ordering = ["mentor", "weekday", "starts_at"]
        constraints = [
            models.CheckConstraint(condition=models.Q(weekday__lte=6), name="working_hours_weekday_valid"),
            models.CheckConstraint(condition=_RANGE_ORDERED, name="working_hours_range_ordered"),
        ]

    def __str__(self) -> str:
        return f"{self.get_weekday_display()} {self.starts_at:%H:%M}-{self.ends_at:%H:%M}"

    def clean(self) -> None:
        from django.core.exceptions import ValidationError

        if self.starts_at is not None and self.ends_at not in (None, datetime.time(0, 0)):
            if self.ends_at <= self.starts_at:
                raise ValidationError("The end must be after the start (00:00 for midnight).")


class WorkingHoursExceptionKind(models.TextChoices):
    OFF = "off", "Not working (the whole day when no hours are given)"
    EXTRA = "extra", "Extra working hours"


class WorkingHoursException(models.Model):
    """A dated change to a mentor's weekly hours, in the mentor's time zone: a day (or some hours) off, or
    extra hours on that date."""

    id = models.BigAutoField(primary_key=True)
    mentor = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="working_hours_exceptions"
    )
    date = models.DateField()
    kind = models.CharField(max_length=8, choices=WorkingHoursExceptionKind.choices)
    starts_at = models.TimeField(null=True, blank=True)
    ends_at = models.TimeField(null=True, blank=True, help_text="00:00 means midnight, the end of the day.")
    note = models.CharField(max_length=200, blank=True)

    class Meta:
        ordering = ["mentor", "date", "starts_at"]
        indexes = [models.Index(fields=["mentor", "date"], name="working_exception_mentor_date")]
        constraints = [
            models.CheckConstraint(
                condition=models.Q(kind__in=WorkingHoursExceptionKind.values), name="working_exception_kind_valid"
            ),
            # Either both times (a range) or neither (the whole day, which only "off" can mean).
            models.CheckConstraint(
                condition=(models.Q(starts_at__isnull=True, ends_at__isnull=True, kind="off"))
                | (models.Q(starts_at__isnull=False, ends_at__isnull=False) & _RANGE_ORDERED),
                name="working_exception_range_valid",
            ),
        ]

    def __str__(self) -> str:
        hours = f" {self.starts_at:%H:%M}-{self.ends_at:%H:%M}" if self.starts_at is not None else ""
        return f"{self.date} {self.kind}{hours}"

    def clean(self) -> None:
        from django.core.exceptions import ValidationError

        if (self.starts_at is None) != (self.ends_at is None):
            raise ValidationError("Give both times, or neither for a whole day off.")
        if self.starts_at is None and self.kind == WorkingHoursExceptionKind.EXTRA:
            raise ValidationError("Extra hours need a start and an end.")
        if self.starts_at is not None and self.ends_at != datetime.time(0, 0) and self.ends_at <= self.starts_at:
            raise ValidationError("The end must be after the start (00:00 for midnight).")


class MentorScheduleManager(UserManager):
    def get_queryset(self):
        return super().get_queryset().filter(role=Role.MENTOR)


class MentorSchedule(User):
    """A mentor seen as their working hours: the admin edits weekly hours and exceptions on it."""

    objects = MentorScheduleManager()

    class Meta:
        proxy = True
        verbose_name = "mentor's working hours"
        verbose_name_plural = "mentors' working hours"
