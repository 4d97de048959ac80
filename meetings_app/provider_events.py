"""What a provider's event (a webhook that passed meetings_app/event_verification.py) means, and the one place
that records it and tells the rest of the system.

meetings_app knows nothing of sessions: whoever cares when a meeting really starts or ends registers a listener,

    @meeting_listener
    def session_meeting_moved(*, meeting: Meeting, happened: str, at: datetime) -> None: ...

called with happened "started" or "ended" and `at` the aware time the provider gave. Listeners run inside the
transaction that records the event: if one fails unexpectedly, the record goes too and the provider's
redelivery tries again; if one refuses with an ApplicationError (nothing to do in the state it finds), its own
writes are undone and the event stays recorded, since a redelivery would be refused the same way.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from django.db import IntegrityError, transaction
from django.utils import timezone

from booking_project.errors import ApplicationError
from meetings_app.event_verification import EventMalformed
from meetings_app.models import Meeting, MeetingProvider, ProviderEvent, ProviderEventKind
from meetings_app.selectors import meeting_for_provider_event

logger = logging.getLogger(__name__)

MeetingListener = Callable[..., None]
_listeners: list[MeetingListener] = []


def meeting_listener(function: MeetingListener) -> MeetingListener:
    """Register `function(meeting=, happened=, at=)` to hear of every meeting a provider reports started or
    ended (once per event). Registering the same function twice registers it once."""
    if function not in _listeners:
        _listeners.append(function)
    return function


def meeting_listener_remove(function: MeetingListener) -> None:
    """Forget a listener (for tests that register their own)."""
    if function in _listeners:
        _listeners.remove(function)


@dataclass(frozen=True)
class ProviderEventNotice:
    """A meeting event as read from a provider's body, before it is recorded."""

    provider: str
    event_key: str
    kind: str  # ProviderEventKind
    reference: str  # Zoom's meeting id or Feishu's meeting number
    happened_at: datetime
    payload: dict[str, Any]


ZOOM_KINDS = {"meeting.started": ProviderEventKind.STARTED, "meeting.ended": ProviderEventKind.ENDED}
FEISHU_KINDS = {
    "vc.meeting.all_meeting_started_v1": ProviderEventKind.STARTED,
    "vc.meeting.all_meeting_ended_v1": ProviderEventKind.ENDED,
}


def _dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _iso_time(value: Any) -> datetime | None:
    if not isinstance(value, str) or not value:
        return None
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        return None
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def _unix_time(value: Any, *, per_second: int) -> datetime | None:
    if isinstance(value, bool):
        return None
    try:
        number = int(value)
        return datetime.fromtimestamp(number / per_second, UTC)
    except (TypeError, ValueError, OverflowError, OSError):
        return None


def _reference(value: Any) -> str | None:
    if isinstance(value, bool) or not isinstance(value, int | str):
        return None
    text = str(value).strip()
    return text if text and len(text) <= 255 else None


def zoom_event_read(event: dict[str, Any]) -> ProviderEventNotice | None:
    """The notice of a Zoom meeting.started / meeting.ended; None for any other event (answered, ignored)."""
    kind = ZOOM_KINDS.get(event.get("event"))
    if kind is None:
        return None
    meeting = _dict(_dict(event.get("payload")).get("object"))
    reference = _reference(meeting.get("id"))
    if reference is None:
        raise EventMalformed(f"{event['event']} carries no payload.object.id.")
    # Zoom has no event id; a redelivery repeats the same event, meeting instance and event time.
    identity = [event["event"], str(meeting.get("uuid") or reference), str(event.get("event_ts"))]
    happened_at = (
        _iso_time(meeting.get("start_time" if kind == ProviderEventKind.STARTED else "end_time"))
        or _unix_time(event.get("event_ts"), per_second=1000)
        or timezone.now()
    )
    return ProviderEventNotice(
        provider=MeetingProvider.ZOOM,
        event_key=hashlib.sha256(json.dumps(identity).encode()).hexdigest(),
        kind=kind,
        reference=reference,
        happened_at=happened_at,
        payload=event,
    )


def feishu_event_read(event: dict[str, Any]) -> ProviderEventNotice | None:
    """The notice of a Feishu all_meeting_started / all_meeting_ended (v2 schema); None for any other event."""
    header = _dict(event.get("header"))
    kind = FEISHU_KINDS.get(header.get("event_type"))
    if kind is None:
        return None
    event_id = header.get("event_id")
    if not isinstance(event_id, str) or not event_id or len(event_id) > 128:
        raise EventMalformed("The event carries no header.event_id.")
    meeting = _dict(_dict(event.get("event")).get("meeting"))
    reference = _reference(meeting.get("meeting_no"))
    if reference is None:
        raise EventMalformed(f"{header['event_type']} carries no event.meeting.meeting_no.")
    happened_at = (
        _unix_time(meeting.get("start_time" if kind == ProviderEventKind.STARTED else "end_time"), per_second=1)
        or _unix_time(header.get("create_time"), per_second=1000)
        or timezone.now()
    )
    return ProviderEventNotice(
        provider=MeetingProvider.FEISHU,
        event_key=event_id,
        kind=kind,
        reference=reference,
        happened_at=happened_at,
        payload=event,
    )


def provider_event_record(*, notice: ProviderEventNotice) -> ProviderEvent | None:
    """Record the event once and tell the listeners, in one transaction. None when it was recorded before (a
    redelivery): nothing changes. An event for a meeting we do not know is recorded, and nobody is told."""
    with transaction.atomic(durable=True):
        meeting = meeting_for_provider_event(provider=notice.provider, reference=notice.reference)
        try:
            with transaction.atomic():
                recorded = ProviderEvent.objects.create(
                    provider=notice.provider,
                    event_key=notice.event_key,
                    kind=notice.kind,
                    provider_reference=notice.reference,
                    meeting=meeting,
                    happened_at=notice.happened_at,
                    payload=notice.payload,
                )
        except IntegrityError:
            logger.info("provider_event.repeated", extra={"provider": notice.provider, "eventKey": notice.event_key})
            return None
        log = {
            "provider": notice.provider,
            "eventKey": notice.event_key,
            "kind": notice.kind,
            "meetingId": str(meeting.id) if meeting else None,
        }
        logger.info("provider_event.recorded", extra=log)
        if meeting is not None:
            _listeners_tell(meeting=meeting, happened=str(notice.kind), at=notice.happened_at, log=log)
    return recorded


def _listeners_tell(*, meeting: Meeting, happened: str, at: datetime, log: dict[str, Any]) -> None:
    for listener in list(_listeners):
        try:
            with transaction.atomic():
                listener(meeting=meeting, happened=happened, at=at)
        except ApplicationError as refusal:
            logger.info("provider_event.refused_by_listener", extra={**log, "reason": refusal.message})
