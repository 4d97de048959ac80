"""The one interface every calendar provider client offers. Errors are the provider layer's four kinds of
answer (`booking_project.providers.outcomes`)."""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import ClassVar


@dataclass(frozen=True)
class CalendarEventRequest:
    """The event a participant should see in their calendar, and who they are at that provider."""

    summary: str
    description: str
    start_time: datetime  # aware
    end_time: datetime  # aware
    meeting_url: str
    time_zone: str  # IANA name: how the provider shows the times to the participant
    # Feishu: the participant's open_id (empty: invited by email). Google: always by email.
    attendee_open_id: str
    attendee_email: str
    # Minutes before the start at which the calendar itself reminds (each client keeps the ones its provider
    # accepts). Empty: the event carries no reminders of ours.
    reminder_minutes: tuple[int, ...] = ()


@dataclass(frozen=True)
class ProvidedCalendarEvent:
    calendar_id: str
    event_id: str


class CalendarProviderClient(ABC):
    name: ClassVar[str]

    @abstractmethod
    def create(self, event: CalendarEventRequest, *, idempotency_key: str) -> ProvidedCalendarEvent:
        """Make the event and invite the participant. The same `idempotency_key` makes no second event: the
        provider answers with the one made the first time."""

    @abstractmethod
    def update(self, calendar_id: str, event_id: str, event: CalendarEventRequest) -> None:
        """Move the event to `event`'s times (and link, summary)."""

    @abstractmethod
    def delete(self, calendar_id: str, event_id: str) -> None:
        """Delete the event. An event the provider no longer has counts as deleted: no error."""

    @abstractmethod
    def busy(
        self, *, person: str, start: datetime, end: datetime, timeout_seconds: float
    ) -> list[tuple[datetime, datetime]]:
        """The times `person` (Feishu: an open_id; Google: a calendar id, the person's email) is busy in
        their own calendar between `start` and `end`, as the provider answers them (aware UTC, sorted, clipped
        to the window). One request of at most `timeout_seconds`, never repeated: someone waits on it. A
        calendar the provider will not show us raises PermanentProviderError, no answer TransientProviderError."""

    def prepare(self, *, operation: str) -> None:  # noqa: B027 - a client without a token has nothing to do
        """Have what a call needs ready (an access token), so the call then waits only on its own answer."""

    def close(self) -> None:  # noqa: B027 - optional
        pass


def busy_within(
    answered: list[tuple[object, object]], *, start: datetime, end: datetime
) -> list[tuple[datetime, datetime]]:
    """The provider's busy (start, end) pairs of RFC 3339 text as aware UTC datetimes, cut to [start, end),
    sorted; those outside the window dropped. ValueError for a pair that is not two times with an offset,
    the first before the second: a caller that cannot read an answer must not guess the mentor is free."""
    intervals = []
    for first, last in answered:
        busy_from, busy_until = _rfc3339(first), _rfc3339(last)
        if busy_until <= busy_from:
            raise ValueError("a busy time that ends before it starts")
        busy_from, busy_until = max(busy_from, start), min(busy_until, end)
        if busy_from < busy_until:
            intervals.append((busy_from, busy_until))
    return sorted(intervals)


def _rfc3339(value: object) -> datetime:
    if not isinstance(value, str):
        raise ValueError("a busy time that is not text")
    moment = datetime.fromisoformat(value)
    if moment.tzinfo is None:
        raise ValueError("a busy time without an offset")
    return moment.astimezone(UTC)
