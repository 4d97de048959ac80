"""Meetings at the providers, and the meetings table that remembers every one of them.

Provider calls are never made inside a database transaction: a slow provider must not hold rows locked.
The row of a meeting is committed right after the provider answers, in a short transaction of its own,
so a meeting that exists at a provider is known here before anything else can fail.
"""

import logging
import time
from collections.abc import Callable
from typing import Any
from uuid import UUID

from django.conf import settings
from django.db import DatabaseError, IntegrityError, transaction
from django.utils import timezone

from booking_project.db import connection_give_back
from booking_project.errors import ApplicationError
from booking_project.metrics import provider_call_observed, provider_pause_change_observed
from booking_project.provider_work import paused_work_wake, woken_work_redrive
from meetings_app.models import (
    Meeting,
    MeetingStatus,
    PausableProvider,
    PauseAction,
    ProviderPause,
    ProviderPauseChange,
)
from meetings_app.providers import meeting_provider_client
from meetings_app.providers.base import (
    MeetingProviderClient,
    MeetingRequest,
    ProvidedMeeting,
    ProviderError,
)

logger = logging.getLogger(__name__)


class MeetingManager:
    """create_meeting / update_meeting / cancel_meeting: the provider call, then the meetings table."""

    def __init__(self, client_for: Callable[[str], MeetingProviderClient] = meeting_provider_client):
        self._client_for = client_for

    def create_meeting(self, *, provider: str, request: MeetingRequest) -> Meeting:
        """Create the meeting at the provider and store it. Raises TransientProviderError or
        PermanentProviderError; nothing is stored then."""
        provided = self._call(provider, "create", request.reference, lambda c: c.create(request))
        return self._store(provider=provider, provided=provided, request=request)

    def find_meeting(self, *, provider: str, request: MeetingRequest) -> Meeting | None:
        """The active meeting already made for `request.reference`: first in our table, then, where the
        provider can list meetings, at the provider (stored here when found). None when neither knows one."""
        known = (
            Meeting.objects.filter(provider=provider, reference=request.reference, status=MeetingStatus.ACTIVE)
            .order_by("created_at")
            .first()
        )
        if known is not None:
            return known
        client = self._client_for(provider)
        if not client.can_find_by_reference:
            return None
        provided = self._call(provider, "find", request.reference, lambda c: c.find_by_reference(request))
        if provided is None:
            return None
        return self._store(provider=provider, provided=provided, request=request)

    def leftover_cancel(self, *, provider: str, request: MeetingRequest) -> str | None:
        """Cancel, at the provider, the meeting a call whose answer was lost may have made for
        `request.reference`. A provider that takes an idempotency key is asked again with it (answering the first
        meeting, or making it now) and that one is cancelled; one that lists meetings is searched. Returns the
        provider's id of the meeting cancelled, None when the provider shows none. Raises ValueError for a
        provider that can do neither: only a person can look then."""
        client = self._client_for(provider)
        if client.repeat_create_is_safe:
            provided = self._call(provider, "create", request.reference, lambda c: c.create(request))
        elif client.can_find_by_reference:
            provided = self._call(provider, "find", request.reference, lambda c: c.find_by_reference(request))
        else:
            raise ValueError(f"{provider} can neither repeat a create safely nor look a meeting up")
        if provided is None:
            return None
        self._provided_cancel(provider=provider, request=request, provided=provided)
        return provided.provider_meeting_id

    def extras_cancel(self, *, provider: str, request: MeetingRequest, keep: str) -> int:
        """Cancel every meeting at the provider carrying `request.reference` other than `keep` (the session's
        own): what a create whose answer was lost made after our lookup. Returns how many were cancelled."""
        found = self._call(provider, "find", request.reference, lambda c: c.find_all_by_reference(request))
        extras = [provided for provided in found if provided.provider_meeting_id != keep]
        for provided in extras:
            self._provided_cancel(provider=provider, request=request, provided=provided)
            logger.warning(
                "meeting.extra_cancelled",
                extra={"provider": provider, "sessionId": request.reference, "meetingNo": provided.meeting_no},
            )
        return len(extras)

    def _provided_cancel(self, *, provider: str, request: MeetingRequest, provided: ProvidedMeeting) -> None:
        """Cancel a meeting found at the provider, remembered in our table first when the table takes it; when
        it refuses (what broke the saga in the first place, perhaps), the meeting is cancelled all the same."""
        try:
            meeting = self._store(provider=provider, provided=provided, request=request)
        except DatabaseError:
            logger.warning("meeting.leftover_not_stored", extra={"provider": provider, "sessionId": request.reference})
            self._call(provider, "cancel", request.reference, lambda c: c.cancel(provided.provider_meeting_id))
        else:
            self.cancel_meeting(meeting_id=meeting.id)

    def update_meeting(self, *, meeting_id: UUID, request: MeetingRequest) -> Meeting:
        meeting = Meeting.objects.get(id=meeting_id)
        self._call(
            meeting.provider, "update", request.reference, lambda c: c.update(meeting.provider_meeting_id, request)
        )
        Meeting.objects.filter(id=meeting.id).update(
            start_time=request.start_time,
            duration_minutes=request.duration_minutes,
            topic=request.topic,
            updated_at=timezone.now(),
        )
        meeting.refresh_from_db()
        return meeting

    def cancel_meeting(self, *, meeting_id: UUID) -> Meeting | None:
        """Cancel the meeting at its provider and mark it cancelled. An unknown or already cancelled meeting
        is a no-op (None or the row as it is); so is one the provider no longer knows."""
        meeting = Meeting.objects.filter(id=meeting_id).first()
        if meeting is None or meeting.status == MeetingStatus.CANCELLED:
            return meeting
        self._call(meeting.provider, "cancel", meeting.reference, lambda c: c.cancel(meeting.provider_meeting_id))
        now = timezone.now()
        Meeting.objects.filter(id=meeting.id, status=MeetingStatus.ACTIVE).update(
            status=MeetingStatus.CANCELLED, cancelled_at=now, updated_at=now
        )
        meeting.refresh_from_db()
        return meeting

    def _call(self, provider: str, operation: str, reference: str, call: Callable[[MeetingProviderClient], object]):
        connection_give_back()
        started = time.perf_counter()
        outcome = "ok"
        try:
            return call(self._client_for(provider))
        except ProviderError as error:
            outcome = type(error).__name__
            raise
        finally:
            provider_call_observed(
                provider=provider,
                operation=operation,
                error=None if outcome == "ok" else outcome,
                seconds=time.perf_counter() - started,
            )
            logger.info(
                "provider.call",
                extra={
                    "provider": provider,
                    "operation": operation,
                    "sessionId": reference,
                    "outcome": outcome,
                    "durationMs": round((time.perf_counter() - started) * 1000, 1),
                },
            )

    @staticmethod
    def _store(*, provider: str, provided: ProvidedMeeting, request: MeetingRequest) -> Meeting:
        fields = {
            "meeting_no": provided.meeting_no,
            "join_url": provided.join_url,
            "host_id": provided.host_id,
            "start_time": request.start_time,
            "duration_minutes": request.duration_minutes,
            "topic": request.topic[:200],
            "reference": request.reference,
        }
        try:
            with transaction.atomic():
                meeting, _ = Meeting.objects.get_or_create(
                    provider=provider, provider_meeting_id=provided.provider_meeting_id, defaults=fields
                )
        except IntegrityError:
            # Two workers stored the same provider meeting at once; the other one's row is the row.
            meeting = Meeting.objects.get(provider=provider, provider_meeting_id=provided.provider_meeting_id)
        return meeting


# ---------------------------------------------------------------------------------------------------------
# An operator's pause of a provider during its outage (DESIGN.md "Lifecycle after booking")


def provider_pause(*, provider: str, actor: Any, reason: str = "") -> bool:
    """Pause the provider: from this commit on, every piece of provider work that would call it waits (the
    engine's `work_run`) without spending an attempt; bookings still answer at once. Audited and counted.
    False when it was paused already (nothing changes)."""
    provider = _pausable(provider)
    with transaction.atomic(durable=True):
        pause = _pause_locked(provider)
        if pause.paused:
            return False
        pause.paused, pause.paused_at, pause.paused_by, pause.reason = True, timezone.now(), actor, reason
        pause.save(update_fields=["paused", "paused_at", "paused_by", "reason", "updated_at"])
        ProviderPauseChange.objects.create(provider=provider, action=PauseAction.PAUSE, actor=actor, reason=reason)
    provider_pause_change_observed(provider=provider, action=PauseAction.PAUSE)
    logger.warning("provider.paused", extra={"provider": provider, "actorId": _id(actor), "reason": reason})
    return True


def provider_resume(*, provider: str, actor: Any, reason: str = "") -> int | None:
    """Resume the provider: its waiting work is woken, oldest first, at PROVIDER_RESUME_DRAIN_PER_SECOND rows a
    second (couriers sent after commit), through the engine's usual path. Audited and counted. Returns how many
    rows were woken, or None when it was not paused (nothing changes)."""
    provider = _pausable(provider)
    with transaction.atomic(durable=True):
        pause = _pause_locked(provider)
        if not pause.paused:
            return None
        pause.paused = False
        pause.save(update_fields=["paused", "updated_at"])
        batches = paused_work_wake(provider, now=timezone.now(), per_second=settings.PROVIDER_RESUME_DRAIN_PER_SECOND)
        woken = sum(len(batch.keys) for batch in batches)
        ProviderPauseChange.objects.create(
            provider=provider, action=PauseAction.RESUME, actor=actor, reason=reason, woken=woken
        )
        # Robust: with the broker down the woken rows wait for the sweep; the operator's page still answers.
        transaction.on_commit(lambda: woken_work_redrive(batches), robust=True)
    provider_pause_change_observed(provider=provider, action=PauseAction.RESUME)
    logger.warning("provider.resumed", extra={"provider": provider, "actorId": _id(actor), "woken": woken})
    return woken


def _pausable(provider: str) -> str:
    if provider not in PausableProvider.values:
        raise ApplicationError(
            f"{provider!r} cannot be paused; pausable providers: {', '.join(PausableProvider.values)}.",
            details={"provider": [f"Choose one of {', '.join(PausableProvider.values)}."]},
        )
    return provider


def _pause_locked(provider: str) -> ProviderPause:
    ProviderPause.objects.get_or_create(provider=provider)
    return ProviderPause.objects.select_for_update().get(provider=provider)


def _id(actor: Any) -> str | None:
    return str(actor.pk) if actor is not None else None
