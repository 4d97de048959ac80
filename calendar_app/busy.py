"""The mentor's own calendar as a source of busy times: what the availability read leaves out besides the slots
we booked. Read through the provider layer (Feishu `freebusy/list`, Google `freeBusy.query`) while a counselor
waits, so with a short timeout, no retry and a short cache; a calendar that does not answer is reported, never
fatal.

Events we created ourselves: the mentor's calendar shows the events our app put there for our own sessions,
and those times are already busy in the slots table. An interval that exactly matches one of our live events
for this mentor (calendar_app's CalendarEvent rows: same provider, same start and end) is left out, so the
answer is the mentor's other commitments only, and an event whose session was just cancelled or moved (its
provider copy not yet deleted or moved) does not keep a freed time from being offered. Where the provider has
merged our event with an adjacent or overlapping one of the mentor's (Google merges busy intervals), the
merged interval stays: counting our session's time twice is harmless, as the slot already makes it busy.
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from django.conf import settings
from django.core.cache import cache

from accounts_app.models import CalendarProvider, User
from booking_project.providers.outcomes import ProviderError
from calendar_app.models import CalendarEvent, CalendarEventStatus

logger = logging.getLogger(__name__)

# The window asked of the provider is widened to whole hours, so that requests for nearly the same times (each
# counselor's "from now") share one cached answer.
WINDOW_GRAIN = timedelta(hours=1)
# Our events that may be in the provider's calendar now: made, or being made.
OUR_LIVE_EVENTS = (CalendarEventStatus.ACTIVE, CalendarEventStatus.CREATING)


@dataclass(frozen=True)
class CalendarBusy:
    """Busy times from the mentor's own calendar (aware UTC, sorted, within the window asked), and which
    calendars answered (`checked`) and which did not (`skipped`: no answer in time, an error, not readable,
    or its provider paused by an operator), each named "feishu:<open_id>" or "google:<email>"."""

    busy: list[tuple[datetime, datetime]]
    checked: list[str]
    skipped: list[str]


def mentor_calendar_busy(*, mentor: User, start: datetime, end: datetime) -> CalendarBusy:
    """When the mentor is busy in their own Feishu or Google calendar between `start` and `end`, our own
    sessions' events left out (module docstring). A mentor with no readable calendar (no profile, no Feishu
    open_id, no email) gives an empty answer with nothing checked or skipped. Never raises for the provider:
    a calendar that does not answer within CALENDAR_FREEBUSY_TIMEOUT_SECONDS, refuses, or is paused is in
    `skipped` with no busy times. Costs a cache read and one query (the pause), plus one query for our events
    and at most one provider request."""
    start, end = start.astimezone(UTC), end.astimezone(UTC)
    calendar = _mentor_calendar(mentor)
    if calendar is None or end <= start:
        return CalendarBusy(busy=[], checked=[], skipped=[])
    provider, person = calendar
    name = f"{provider}:{person}"
    answered = _provider_busy(mentor=mentor, provider=provider, person=person, start=start, end=end)
    if answered is None:
        return CalendarBusy(busy=[], checked=[], skipped=[name])
    within = [(max(s, start), min(e, end)) for s, e in answered if s < end and e > start]
    ours = _our_events(mentor=mentor, provider=provider, start=start, end=end) if within else set()
    return CalendarBusy(busy=[interval for interval in within if interval not in ours], checked=[name], skipped=[])


def _mentor_calendar(mentor: User) -> tuple[str, str] | None:
    """(provider, the person at that provider) as the calendar events reach them: Feishu by open_id, Google by
    email (their primary calendar's id)."""
    try:
        profile = mentor.profile
    except User.profile.RelatedObjectDoesNotExist:
        return None
    if profile.calendar_provider == CalendarProvider.FEISHU:
        return (CalendarProvider.FEISHU.value, profile.feishu_open_id) if profile.feishu_open_id else None
    if profile.calendar_provider == CalendarProvider.GOOGLE:
        return (CalendarProvider.GOOGLE.value, mentor.email) if mentor.email else None
    return None


def _provider_busy(
    *, mentor: User, provider: str, person: str, start: datetime, end: datetime
) -> list[tuple[datetime, datetime]] | None:
    """The provider's busy times over the widened window, from the cache or one request; None when the
    calendar is skipped. Only answers are cached: a calendar that failed is asked again next time."""
    from meetings_app.selectors import providers_paused

    if provider in providers_paused():
        logger.info("calendar.busy_skipped", extra={"mentorId": str(mentor.id), "provider": provider, "why": "paused"})
        return None
    window_start, window_end = _widened(start, end)
    key = _cache_key(provider, person, window_start, window_end)
    cached = cache.get(key)
    if cached is not None:
        return cached
    from calendar_app.providers import calendar_provider_client

    try:
        answered = calendar_provider_client(provider).busy(
            person=person,
            start=window_start,
            end=window_end,
            timeout_seconds=settings.CALENDAR_FREEBUSY_TIMEOUT_SECONDS,
        )
    except (ProviderError, ValueError) as error:
        logger.warning(
            "calendar.busy_skipped",
            extra={
                "mentorId": str(mentor.id),
                "provider": provider,
                "why": getattr(error, "kind", "unknown_provider"),
                "error": str(error),
            },
        )
        return None
    cache.set(key, answered, settings.CALENDAR_FREEBUSY_CACHE_SECONDS)
    return answered


def _our_events(*, mentor: User, provider: str, start: datetime, end: datetime) -> set[tuple[datetime, datetime]]:
    """Our live events in the mentor's calendar, cut to the window as the busy times are."""
    rows = CalendarEvent.objects.filter(
        user=mentor, provider=provider, status__in=OUR_LIVE_EVENTS, starts_at__lt=end, ends_at__gt=start
    ).values_list("starts_at", "ends_at")
    return {(max(s, start).astimezone(UTC), min(e, end).astimezone(UTC)) for s, e in rows}


def _widened(start: datetime, end: datetime) -> tuple[datetime, datetime]:
    grain = WINDOW_GRAIN.total_seconds()
    first = int(start.timestamp() // grain * grain)
    last = int(-(-end.timestamp() // grain) * grain)
    return datetime.fromtimestamp(first, UTC), datetime.fromtimestamp(last, UTC)


def _cache_key(provider: str, person: str, start: datetime, end: datetime) -> str:
    # The person's id is hashed: an email is no key to leave lying in Redis.
    who = hashlib.sha256(person.encode()).hexdigest()[:32]
    return f"calendar-busy:{provider}:{who}:{int(start.timestamp())}:{int(end.timestamp())}"
