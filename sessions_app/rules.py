"""The booking window: how far ahead a session may start. One place, read by the booking rules
(services.booking_rules_check) and by what is offered (availability), so that what is offered books."""

from datetime import datetime, timedelta

from django.conf import settings

from meetings_app.models import MeetingProvider
from meetings_app.providers.feishu import RESERVE_MAX_DAYS_AHEAD as FEISHU_RESERVE_MAX_DAYS_AHEAD


def booking_horizon_end(*, now: datetime) -> datetime:
    """The latest start BOOKING_HORIZON_DAYS allows."""
    return now + timedelta(days=settings.BOOKING_HORIZON_DAYS)


def provider_latest_end(*, meeting_provider: str | None, now: datetime) -> datetime | None:
    """The latest end the provider's meeting may have: a Feishu reservation must end within its reach;
    None when the provider sets no such bound."""
    if meeting_provider == MeetingProvider.FEISHU:
        return now + timedelta(days=FEISHU_RESERVE_MAX_DAYS_AHEAD)
    return None


def booking_latest_start(*, duration_minutes: int, meeting_provider: str | None, now: datetime) -> datetime:
    """The latest start a booking of `duration_minutes` with `meeting_provider` may have."""
    latest = booking_horizon_end(now=now)
    latest_end = provider_latest_end(meeting_provider=meeting_provider, now=now)
    if latest_end is not None:
        latest = min(latest, latest_end - timedelta(minutes=duration_minutes))
    return latest
