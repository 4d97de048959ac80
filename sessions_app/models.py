import uuid
from functools import cached_property

from django.conf import settings
from django.contrib.postgres.fields import ArrayField
from django.db import models

from booking_project.provider_work import NeedsPersonRow, ProviderWorkRow
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
    # When the meeting really began and ended, as the provider reported it (null until known).
    started_at = models.DateTimeField(null=True, blank=True)
    ended_at = models.DateTimeField(null=True, blank=True)
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
            # What the clock looks at every tick: the sessions it may have to start or complete.
            models.Index(
                fields=["scheduled_at"],
                name="session_clock_due",
                condition=models.Q(status__in=["SCHEDULED", "IN_PROGRESS"]),
            ),
            models.Index(fields=["counselor", "-created_at"], name="session_counselor_created"),
        ]

    def __str__(self) -> str:
        return f"{self.session_type} {self.id} ({self.status})"

    @cached_property
    def student_ids(self) -> list[uuid.UUID]:
        """Students in booking order; the booking service fills this in so rendering costs no query."""
        return [row.student_id for row in self.session_students.all()]

    @property
    def requires_manual_intervention(self) -> bool:
        saga = getattr(self, "saga", None)
        return bool(saga and saga.requires_manual_intervention)


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


class SagaState(models.TextChoices):
    PENDING = "pending", "Pending: provisioning not started"
    CREATING = "creating", "Creating the meeting at the provider"
    RETRY_WAIT = "retry_wait", "Waiting to retry the provider"
    MEETING_CREATED = "meeting_created", "Meeting created; session to be scheduled"
    CHECKING_LEFTOVERS = "checking_leftovers", "Scheduled; looking for a meeting a lost answer may have left"
    COMPENSATING = "compensating", "Compensating: giving back what the session held"
    SUCCEEDED = "succeeded", "Succeeded"
    FAILED = "failed", "Failed and compensated"


SAGA_FINAL_STATES = frozenset({SagaState.SUCCEEDED, SagaState.FAILED})
# Where the session's meeting is settled (a later leftover check does not change which meeting it has).
SAGA_SETTLED_STATES = SAGA_FINAL_STATES | {SagaState.CHECKING_LEFTOVERS}

# The saga's state machine; `sessions_app.saga` is the only code that moves it.
SAGA_TRANSITIONS: dict[str, frozenset[str]] = {
    SagaState.PENDING: frozenset({SagaState.CREATING, SagaState.COMPENSATING, SagaState.FAILED}),
    SagaState.CREATING: frozenset(
        {SagaState.CREATING, SagaState.RETRY_WAIT, SagaState.MEETING_CREATED, SagaState.COMPENSATING, SagaState.FAILED}
    ),
    # A late answer of an attempt taken over binds its meeting while the saga waits to retry.
    SagaState.RETRY_WAIT: frozenset(
        {SagaState.CREATING, SagaState.MEETING_CREATED, SagaState.COMPENSATING, SagaState.FAILED}
    ),
    SagaState.MEETING_CREATED: frozenset({SagaState.SUCCEEDED, SagaState.CHECKING_LEFTOVERS, SagaState.COMPENSATING}),
    SagaState.CHECKING_LEFTOVERS: frozenset({SagaState.CHECKING_LEFTOVERS, SagaState.SUCCEEDED}),
    SagaState.COMPENSATING: frozenset({SagaState.COMPENSATING, SagaState.FAILED}),
    SagaState.SUCCEEDED: frozenset(),
    # A counselor's retry starts a new round.
    SagaState.FAILED: frozenset({SagaState.PENDING}),
}


class MeetingSaga(ProviderWorkRow, NeedsPersonRow):
    """Where the provisioning of a session's meeting stands: one row per session, the truth the Celery
    tasks read and write (the tasks are only couriers)."""

    session = models.OneToOneField(Session, on_delete=models.CASCADE, primary_key=True, related_name="saga")
    state = models.CharField(max_length=20, choices=SagaState.choices, default=SagaState.PENDING)
    # A counselor's retry after MEETING_FAILED starts round 2, 3, ...
    round = models.PositiveSmallIntegerField(default=1)
    # The `{type}.session.created` event this round answers; an event of an earlier round is ignored.
    event_id = models.UUIDField(null=True, blank=True)
    meeting = models.ForeignKey(
        "meetings_app.Meeting", on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    compensation_reason = models.TextField(blank=True)
    # A create's answer was lost in this round: once the session is scheduled, the provider is searched for a
    # meeting that lost call made after our lookup (it may land late), from this time on.
    leftover_check_after = models.DateTimeField(null=True, blank=True)
    cancel_attempts = models.PositiveSmallIntegerField(default=0)

    class Meta:
        constraints = [
            models.CheckConstraint(condition=models.Q(state__in=SagaState.values), name="saga_state_valid"),
        ]
        indexes = [
            models.Index(
                fields=["-manual_intervention_at"],
                name="saga_needs_person",
                condition=models.Q(requires_manual_intervention=True),
            ),
            models.Index(
                fields=["updated_at"],
                name="saga_unfinished",
                condition=~models.Q(state__in=[SagaState.SUCCEEDED, SagaState.FAILED]),
            ),
        ]

    def __str__(self) -> str:
        return f"meeting saga of {self.session_id} ({self.state}, round {self.round})"


class MeetingOperationKind(models.TextChoices):
    UPDATE = "update", "Move the meeting to the session's time"
    CANCEL = "cancel", "Cancel the meeting"


class MeetingOperationState(models.TextChoices):
    PENDING = "pending", "Waiting to run"
    RUNNING = "running", "Calling the provider"
    RETRY_WAIT = "retry_wait", "Waiting to retry the provider"
    SUCCEEDED = "succeeded", "Succeeded"
    FAILED = "failed", "Failed for good (a person is asked to act)"
    SUPERSEDED = "superseded", "Not needed any more (a later change took over)"


MEETING_OPERATION_FINAL_STATES = frozenset(
    {MeetingOperationState.SUCCEEDED, MeetingOperationState.FAILED, MeetingOperationState.SUPERSEDED}
)

# `sessions_app.meeting_operations` is the only code that moves an operation.
MEETING_OPERATION_TRANSITIONS: dict[str, frozenset[str]] = {
    MeetingOperationState.PENDING: frozenset({MeetingOperationState.RUNNING, *MEETING_OPERATION_FINAL_STATES}),
    MeetingOperationState.RUNNING: frozenset(
        {MeetingOperationState.RUNNING, MeetingOperationState.RETRY_WAIT, *MEETING_OPERATION_FINAL_STATES}
    ),
    MeetingOperationState.RETRY_WAIT: frozenset({MeetingOperationState.RUNNING, *MEETING_OPERATION_FINAL_STATES}),
    MeetingOperationState.SUCCEEDED: frozenset(),
    MeetingOperationState.FAILED: frozenset(),
    MeetingOperationState.SUPERSEDED: frozenset(),
}


class MeetingOperation(ProviderWorkRow):
    """A change to a session's meeting asked for after booking (reschedule: update; cancel: cancel), made
    at the provider after the request has answered. The row is the truth; tasks only carry its id."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    session = models.ForeignKey(Session, on_delete=models.CASCADE, related_name="meeting_operations")
    kind = models.CharField(max_length=16, choices=MeetingOperationKind.choices)
    state = models.CharField(
        max_length=16, choices=MeetingOperationState.choices, default=MeetingOperationState.PENDING
    )

    class Meta:
        constraints = [
            models.CheckConstraint(
                condition=models.Q(state__in=MeetingOperationState.values), name="meeting_operation_state_valid"
            ),
            models.CheckConstraint(
                condition=models.Q(kind__in=MeetingOperationKind.values), name="meeting_operation_kind_valid"
            ),
        ]
        indexes = [
            models.Index(
                fields=["updated_at"],
                name="meeting_operation_unfinished",
                condition=models.Q(
                    state__in=[
                        MeetingOperationState.PENDING,
                        MeetingOperationState.RUNNING,
                        MeetingOperationState.RETRY_WAIT,
                    ]
                ),
            ),
        ]

    def __str__(self) -> str:
        return f"meeting {self.kind} of {self.session_id} ({self.state})"


class ManualIntervention(MeetingSaga):
    """The operators' queue: sagas that need a person (the admin lists them newest first)."""

    class Meta:
        proxy = True
        verbose_name = "manual intervention"
        verbose_name_plural = "manual-intervention queue"
        # What an operator may do to the queue (the admin's actions declare which they need; seed_demo's
        # "operators" group has them all). Retry and re-provision call providers and may spend a unit.
        permissions = [
            ("retry_manualintervention", "Can retry the provider call of a manual intervention"),
            ("reprovision_manualintervention", "Can re-provision the meeting of a manual intervention"),
            ("resolve_manualintervention", "Can mark a manual intervention resolved"),
        ]


class AuditAction(models.TextChoices):
    BOOKED = "booked", "Booked"
    RETRIED = "retried", "Retried"
    STARTED = "started", "Started"
    CANCELLED = "cancelled", "Cancelled"
    RESCHEDULED = "rescheduled", "Rescheduled"
    COMPLETED = "completed", "Completed"
    INTERVENTION_RESOLVED = "intervention_resolved", "Manual intervention resolved"


class AuditEntry(models.Model):
    """Who did what to a session, when, through what, from what to what. Append-only: the database refuses
    UPDATE and DELETE on this table (a trigger, see the migration), so history cannot be rewritten."""

    id = models.BigAutoField(primary_key=True)
    # A plain id, not a foreign key: the trail outlives anything that happens to the session row.
    session_id = models.UUIDField(db_index=True)
    action = models.CharField(max_length=32, choices=AuditAction.choices)
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    # Where the action came from: "api", "admin", "web".
    via = models.CharField(max_length=16)
    before = models.JSONField(default=dict, blank=True)
    after = models.JSONField(default=dict, blank=True)
    at = models.DateTimeField(auto_now_add=True, db_index=True)

    class Meta:
        ordering = ["at", "id"]
        constraints = [
            models.CheckConstraint(condition=models.Q(action__in=AuditAction.values), name="audit_action_valid"),
        ]
        verbose_name_plural = "audit trail"

    def __str__(self) -> str:
        return f"{self.action} of {self.session_id} by {self.actor_id or 'the system'} at {self.at:%Y-%m-%d %H:%M:%S}"
