"""The one interface every meeting provider client offers.

A client speaks the provider's real HTTP API on the shared provider layer (`booking_project.providers`): its
access token is cached there, every request has a timeout, and every answer is classified exactly once into
done, refused, not done or unknown (`booking_project.providers.outcomes`).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from datetime import datetime
from typing import ClassVar

from booking_project.providers.outcomes import (  # noqa: F401 - the errors a meeting client raises
    NotDoneError,
    OutcomeUnknownError,
    PermanentProviderError,
    ProviderError,
    TransientProviderError,
)


@dataclass(frozen=True)
class MeetingRequest:
    """What we ask a provider for. `reference` is the booking session's id: Zoom carries it in the
    meeting's agenda, so a meeting made before a crash can be found again."""

    reference: str
    topic: str
    start_time: datetime  # aware
    duration_minutes: int
    host_id: str  # Feishu: the owner's open_id. Zoom: the host's user id or email.
    # The same for every attempt of one saga round: a provider that takes one (Feishu calendar) answers a
    # repeated create with the meeting made the first time.
    idempotency_key: str = ""

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
    # Whether a create repeated with the same request answers the first meeting instead of making a second.
    repeat_create_is_safe: bool = False

    def prepare(self, *, operation: str) -> None:  # noqa: B027 - a client without a token has nothing to do
        """Have what a call needs ready (an access token), so the call then waits only on its own answer."""

    @abstractmethod
    def create(self, request: MeetingRequest) -> ProvidedMeeting: ...

    @abstractmethod
    def update(self, provider_meeting_id: str, request: MeetingRequest) -> None: ...

    @abstractmethod
    def cancel(self, provider_meeting_id: str) -> None:
        """Cancel the meeting. A meeting the provider no longer knows counts as cancelled: no error."""

    def find_all_by_reference(self, request: MeetingRequest) -> list[ProvidedMeeting]:
        """Every meeting of `request.host_id` made for `request.reference` (not expired), if the provider can
        tell; empty otherwise."""
        return []

    def find_by_reference(self, request: MeetingRequest) -> ProvidedMeeting | None:
        """The meeting of `request.host_id` made for `request.reference` (past start included, as long as it has
        not expired), if the provider can tell."""
        return None
