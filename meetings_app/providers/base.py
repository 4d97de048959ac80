"""The one interface every meeting provider client offers, and the two kinds of error it may raise.

A client speaks the provider's real HTTP API. It owns its access token (cached, refreshed before expiry
and once more when the provider says it expired), puts a timeout on every request, and classifies every
failure exactly once: `TransientProviderError` (worth retrying: timeouts, connection errors, 5xx, rate
limits) or `PermanentProviderError` (retrying cannot help: other 4xx, business errors).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from datetime import datetime
from typing import ClassVar


class ProviderError(Exception):
    """A provider call failed. `provider` and `operation` say which; the message never carries a secret."""

    def __init__(self, message: str, *, provider: str, operation: str, status: int | None = None, code=None):
        super().__init__(message)
        self.provider = provider
        self.operation = operation
        self.status = status
        self.code = code


class TransientProviderError(ProviderError):
    """Worth retrying. `retry_after` (seconds) is set when the provider said how long to wait."""

    def __init__(self, message: str, *, retry_after: float | None = None, **kwargs):
        super().__init__(message, **kwargs)
        self.retry_after = retry_after


class PermanentProviderError(ProviderError):
    """Retrying cannot help: the request itself is refused."""


@dataclass(frozen=True)
class MeetingRequest:
    """What we ask a provider for. `reference` is the booking session's id: Zoom carries it in the
    meeting's agenda, so a meeting made before a crash can be found again."""

    reference: str
    topic: str
    start_time: datetime  # aware
    duration_minutes: int
    host_id: str  # Feishu: the owner's open_id. Zoom: the host's user id or email.

    @property
    def end_time(self) -> datetime:
        from datetime import timedelta

        return self.start_time + timedelta(minutes=self.duration_minutes)


@dataclass(frozen=True)
class ProvidedMeeting:
    """What the provider made: the id that update and cancel address, the number people dial, the link."""

    provider_meeting_id: str
    meeting_no: str
    join_url: str
    host_id: str


class MeetingProviderClient(ABC):
    name: ClassVar[str]
    # Whether `find_by_reference` can look a meeting up (Zoom lists a host's meetings; Feishu cannot).
    can_find_by_reference: ClassVar[bool] = False

    @abstractmethod
    def create(self, request: MeetingRequest) -> ProvidedMeeting: ...

    @abstractmethod
    def update(self, provider_meeting_id: str, request: MeetingRequest) -> None: ...

    @abstractmethod
    def cancel(self, provider_meeting_id: str) -> None:
        """Cancel the meeting. A meeting the provider no longer knows counts as cancelled: no error."""

    def find_by_reference(self, request: MeetingRequest) -> ProvidedMeeting | None:
        """The upcoming meeting of `request.host_id` made for `request.reference`, if the provider can tell."""
        return None
