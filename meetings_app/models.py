import uuid

from django.conf import settings
from django.db import models


class MeetingProvider(models.TextChoices):
    FEISHU = "feishu", "Feishu"
    ZOOM = "zoom", "Zoom"


class MeetingStatus(models.TextChoices):
    ACTIVE = "active", "Active"
    CANCELLED = "cancelled", "Cancelled"


class Meeting(models.Model):
    """A meeting that exists (or existed) at a provider. A row is written as soon as the provider answers."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    provider = models.CharField(max_length=16, choices=MeetingProvider.choices)
    # Feishu's reserve id or Zoom's meeting id: what update and cancel address at the provider.
    provider_meeting_id = models.CharField(max_length=255)
    meeting_no = models.CharField(max_length=64, blank=True)
    join_url = models.URLField(max_length=1000)
    host_id = models.CharField(max_length=128, blank=True)
    status = models.CharField(max_length=16, choices=MeetingStatus.choices, default=MeetingStatus.ACTIVE)
    start_time = models.DateTimeField()
    duration_minutes = models.PositiveIntegerField()
    topic = models.CharField(max_length=200)
    # Who asked for the meeting (the booking session's id): how a saga re-driven after a crash finds the
    # meeting it already made instead of making a second one.
    reference = models.CharField(max_length=64, blank=True, db_index=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    cancelled_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["provider", "provider_meeting_id"], name="meeting_unique_at_provider"),
            models.CheckConstraint(condition=models.Q(status__in=MeetingStatus.values), name="meeting_status_valid"),
            models.CheckConstraint(
                condition=models.Q(provider__in=MeetingProvider.values), name="meeting_provider_valid"
            ),
        ]
        # A Feishu event names its meeting by number only (meetings_app/selectors.py).
        indexes = [models.Index(fields=["provider", "meeting_no"], name="meeting_by_number")]

    def __str__(self) -> str:
        return f"{self.provider} meeting {self.meeting_no or self.provider_meeting_id} ({self.status})"


class PausableProvider(models.TextChoices):
    """The providers an operator can pause during their outage: the one list of them. Feishu paused holds its
    meetings and its calendar events (one vendor, one outage); Google Calendar and email are not pausable."""

    FEISHU = "feishu", "Feishu (meetings and calendar events)"
    ZOOM = "zoom", "Zoom"


class ProviderPause(models.Model):
    """Whether an operator has paused a provider: while paused, every piece of provider work that would call it
    waits (no attempt spent); bookings still answer at once. One row per provider, written only by
    `provider_pause` / `provider_resume`."""

    provider = models.CharField(max_length=16, choices=PausableProvider.choices, primary_key=True)
    paused = models.BooleanField(default=False)
    paused_at = models.DateTimeField(null=True, blank=True)
    paused_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    reason = models.TextField(blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        verbose_name = "provider pause"
        permissions = [("pause_provider", "Can pause and resume a provider")]
        constraints = [
            models.CheckConstraint(
                condition=models.Q(provider__in=PausableProvider.values), name="provider_pause_provider_valid"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.get_provider_display()}: {'paused' if self.paused else 'running'}"


class PauseAction(models.TextChoices):
    PAUSE = "pause", "Paused"
    RESUME = "resume", "Resumed"


class ProviderPauseChange(models.Model):
    """Who paused or resumed a provider, when and why: appended by the services, never changed."""

    id = models.BigAutoField(primary_key=True)
    provider = models.CharField(max_length=16, choices=PausableProvider.choices)
    action = models.CharField(max_length=8, choices=PauseAction.choices)
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    reason = models.TextField(blank=True)
    # On resume: how many waiting pieces of work were woken to drain at PROVIDER_RESUME_DRAIN_PER_SECOND.
    woken = models.PositiveIntegerField(default=0)
    at = models.DateTimeField(auto_now_add=True, db_index=True)

    class Meta:
        ordering = ["-at", "-id"]
        verbose_name = "provider pause change"
        constraints = [
            models.CheckConstraint(condition=models.Q(action__in=PauseAction.values), name="pause_change_action_valid"),
        ]

    def __str__(self) -> str:
        return f"{self.provider} {self.action} by {self.actor_id or 'the system'} at {self.at:%Y-%m-%d %H:%M:%S}"


class ProviderEventKind(models.TextChoices):
    STARTED = "started", "Meeting started"
    ENDED = "ended", "Meeting ended"


class ProviderEvent(models.Model):
    """An event a provider told us about (a webhook), kept once: its key makes a redelivery change nothing.

    Recorded even when no meeting of ours matches, so an operator can see what the providers sent.
    """

    id = models.BigAutoField(primary_key=True)
    provider = models.CharField(max_length=16, choices=MeetingProvider.choices)
    # Feishu's header.event_id; Zoom sends no event id, so the SHA-256 of (event, meeting uuid, event_ts).
    event_key = models.CharField(max_length=128)
    kind = models.CharField(max_length=16, choices=ProviderEventKind.choices)
    # What the provider calls the meeting: Zoom's meeting id, Feishu's meeting number.
    provider_reference = models.CharField(max_length=255, blank=True)
    meeting = models.ForeignKey(Meeting, null=True, blank=True, on_delete=models.SET_NULL, related_name="events")
    happened_at = models.DateTimeField()
    received_at = models.DateTimeField(auto_now_add=True)
    payload = models.JSONField()

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["provider", "event_key"], name="provider_event_once"),
            models.CheckConstraint(
                condition=models.Q(kind__in=ProviderEventKind.values), name="provider_event_kind_valid"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.provider} meeting {self.kind} ({self.provider_reference})"
