import uuid

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
