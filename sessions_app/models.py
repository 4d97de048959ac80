import uuid
from functools import cached_property

from django.conf import settings
from django.contrib.postgres.fields import ArrayField
from django.db import models

from meetings_app.models import MeetingProvider
from sessions_app.types import SESSION_TYPE_CHOICES, SESSION_TYPES


class SessionStatus(models.TextChoices):
    PENDING_MEETING = "PENDING_MEETING", "Pending meeting"
    SCHEDULED = "SCHEDULED", "Scheduled"
    IN_PROGRESS = "IN_PROGRESS", "In progress"
    COMPLETED = "COMPLETED", "Completed"
    MEETING_FAILED = "MEETING_FAILED", "Meeting failed"
    CANCELLED = "CANCELLED", "Cancelled"


# The session's state machine. `session_transition` is the only code that changes a status.
ALLOWED_TRANSITIONS: dict[str, frozenset[str]] = {
    SessionStatus.PENDING_MEETING: frozenset(
        {SessionStatus.SCHEDULED, SessionStatus.MEETING_FAILED, SessionStatus.CANCELLED}
    ),
    SessionStatus.SCHEDULED: frozenset({SessionStatus.IN_PROGRESS, SessionStatus.COMPLETED, SessionStatus.CANCELLED}),
    SessionStatus.IN_PROGRESS: frozenset({SessionStatus.COMPLETED}),
    SessionStatus.MEETING_FAILED: frozenset({SessionStatus.PENDING_MEETING, SessionStatus.CANCELLED}),
    SessionStatus.COMPLETED: frozenset(),
    SessionStatus.CANCELLED: frozenset(),
}


class Session(models.Model):
    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    session_type = models.CharField(max_length=32, choices=SESSION_TYPE_CHOICES)
    status = models.CharField(max_length=20, choices=SessionStatus.choices, default=SessionStatus.PENDING_MEETING)
    counselor = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="booked_sessions")
    mentor = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="mentored_sessions")
    students = models.ManyToManyField(
        settings.AUTH_USER_MODEL, through="SessionStudent", related_name="attended_sessions"
    )
    scheduled_at = models.DateTimeField()
    duration_minutes = models.PositiveSmallIntegerField()
    meeting_provider = models.CharField(max_length=16, choices=MeetingProvider.choices)
    topic = models.CharField(max_length=200)
    meeting = models.ForeignKey(
        "meetings_app.Meeting", on_delete=models.PROTECT, null=True, blank=True, related_name="sessions"
    )
    # The calendar slots this session holds (one per participant), for the saga and the lifecycle.
    slot_ids = ArrayField(models.UUIDField(), default=list)
    failure_reason = models.TextField(null=True, blank=True)
    requires_manual_intervention = models.BooleanField(default=False)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    updated_at = models.DateTimeField(auto_now=True)
    status_changed_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.CheckConstraint(condition=models.Q(status__in=SessionStatus.values), name="session_status_valid"),
            models.CheckConstraint(condition=models.Q(session_type__in=list(SESSION_TYPES)), name="session_type_valid"),
            models.CheckConstraint(condition=models.Q(duration_minutes__gte=1), name="session_duration_positive"),
            models.CheckConstraint(
                condition=models.Q(meeting_provider__in=MeetingProvider.values), name="session_provider_valid"
            ),
            # A scheduled or running session always has its meeting.
            models.CheckConstraint(
                condition=~models.Q(status__in=[SessionStatus.SCHEDULED, SessionStatus.IN_PROGRESS])
                | models.Q(meeting__isnull=False),
                name="session_scheduled_has_meeting",
            ),
        ]
        indexes = [
            models.Index(fields=["status", "created_at"], name="session_status_created"),
            models.Index(fields=["scheduled_at"], name="session_scheduled_at"),
        ]

    def __str__(self) -> str:
        return f"{self.session_type} {self.id} ({self.status})"

    @cached_property
    def student_ids(self) -> list[uuid.UUID]:
        """Students in booking order; the booking service fills this in so rendering costs no query."""
        return [row.student_id for row in self.session_students.all()]


class SessionStudent(models.Model):
    session = models.ForeignKey(Session, on_delete=models.CASCADE, related_name="session_students")
    student = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    position = models.PositiveSmallIntegerField()

    class Meta:
        ordering = ["position"]
        constraints = [
            models.UniqueConstraint(fields=["session", "student"], name="session_student_once"),
        ]
        indexes = [models.Index(fields=["student"], name="session_student_student")]


class OutboxEvent(models.Model):
    """An integration event recorded in the transaction that caused it; published after commit."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    type = models.CharField(max_length=100, db_index=True)
    version = models.PositiveSmallIntegerField()
    payload = models.JSONField()
    created_at = models.DateTimeField(auto_now_add=True)
    published_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        indexes = [
            models.Index(
                fields=["created_at"], name="outbox_unpublished", condition=models.Q(published_at__isnull=True)
            ),
        ]

    def __str__(self) -> str:
        return f"{self.type} v{self.version} {self.id}"


class IdempotencyRecord(models.Model):
    """The first answer to a booking sent with an Idempotency-Key, kept to be replayed (API.md "Book")."""

    counselor = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    key = models.CharField(max_length=255)
    request_fingerprint = models.CharField(max_length=64)
    session = models.ForeignKey(Session, on_delete=models.CASCADE, related_name="+")
    response_status = models.PositiveSmallIntegerField()
    response_body = models.JSONField()
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["counselor", "key"], name="idempotency_key_once_per_counselor"),
        ]
