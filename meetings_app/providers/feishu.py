"""Feishu (Lark) video meetings, made one of two ways (`FEISHU_MEETING_VIA`; the choice and its reasons are in
docs/feishu-meetings.md):

- `calendar` (default): an event in the app's calendar with `vchat.vc_type = "vc"`, for which Feishu makes the
  video meeting and answers its link. The create carries an `idempotency_key` derived from the session and its
  saga round, so a create repeated after an unknown outcome answers the meeting made the first time: certain.
  The organizer is the app.
- `reservation`: `vc/v1/reserves/apply`, owned by the mentor. Feishu can neither list reservations nor take an
  idempotency key, so after an unknown outcome nobody can tell whether one was made: a person is asked to look.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from typing import Any
from urllib.parse import quote, urlsplit

from django.conf import settings

from booking_project.providers.feishu import FeishuOpenApi, event_path, events_path
from meetings_app.providers.base import MeetingProviderClient, MeetingRequest, ProvidedMeeting

RESERVES_PATH = "/open-apis/vc/v1/reserves"
RESERVE_NOT_FOUND = 121004
EVENT_NOT_FOUND = 193001

# A reservation's end_time may be at most 30 days ahead (VC reserve apply).
RESERVE_MAX_DAYS_AHEAD = 30

VIA_CALENDAR = "calendar"
VIA_RESERVATION = "reservation"
MEETING_VIA_CHOICES = (VIA_CALENDAR, VIA_RESERVATION)


class FeishuMeetingClient(MeetingProviderClient):
    name = "feishu"
    can_find_by_reference = False  # Feishu has no list of reservations or of a calendar's vc meetings to search.

    def __init__(
        self,
        *,
        base_url: str,
        app_id: str,
        app_secret: str,
        timeout_seconds: float,
        via: str = VIA_CALENDAR,
        calendar_id: str = "",
        clock: Callable[[], float] = time.monotonic,
    ):
        if via not in MEETING_VIA_CHOICES:
            raise ValueError(f"FEISHU_MEETING_VIA must be one of {', '.join(MEETING_VIA_CHOICES)}, not {via!r}")
        self._api = FeishuOpenApi(
            provider=self.name,
            base_url=base_url,
            app_id=app_id,
            app_secret=app_secret,
            timeout_seconds=timeout_seconds,
            clock=clock,
        )
        self._http = self._api.http
        self.via = via
        self._calendar_id = calendar_id
        # With the idempotency key a repeated create answers the first meeting (see the module's docstring).
        self.repeat_create_is_safe = via == VIA_CALENDAR

    @classmethod
    def from_settings(cls, *, clock: Callable[[], float] = time.monotonic) -> FeishuMeetingClient:
        return cls(
            base_url=settings.FEISHU_BASE_URL,
            app_id=settings.FEISHU_APP_ID,
            app_secret=settings.FEISHU_APP_SECRET,
            timeout_seconds=settings.PROVIDER_TIMEOUT_SECONDS,
            via=settings.FEISHU_MEETING_VIA,
            calendar_id=settings.FEISHU_CALENDAR_ID,
            clock=clock,
        )

    def prepare(self, *, operation: str) -> None:
        self._api.prepare(operation=operation)

    def create(self, request: MeetingRequest) -> ProvidedMeeting:
        if self.via == VIA_CALENDAR:
            return self._calendar_meeting_create(request)
        data = self._api.call(
            "POST",
            f"{RESERVES_PATH}/apply",
            operation="create",
            params={"user_id_type": "open_id"},
            json={
                "end_time": _unix_seconds(request),
                "owner_id": request.host_id,
                "meeting_settings": {"topic": request.topic},
            },
        )
        reserve = data.get("reserve") if isinstance(data, dict) else None
        try:
            return ProvidedMeeting(
                provider_meeting_id=str(reserve["id"]),
                meeting_no=str(reserve["meeting_no"]),
                join_url=str(reserve["url"]),
                host_id=request.host_id,
            )
        except (KeyError, TypeError):
            raise self._http.permanent(
                "the reservation answer carries no reserve id, meeting_no and url", operation="create"
            ) from None

    def update(self, provider_meeting_id: str, request: MeetingRequest) -> None:
        if _is_calendar_meeting(provider_meeting_id):
            calendar_id, event_id = _calendar_meeting_ids(provider_meeting_id)
            self._api.call(
                "PATCH", event_path(calendar_id, event_id), operation="update", json=_calendar_meeting_times(request)
            )
            return
        self._api.call(
            "PUT",
            _reserve_path(provider_meeting_id),
            operation="update",
            json={"end_time": _unix_seconds(request), "meeting_settings": {"topic": request.topic}},
        )

    def cancel(self, provider_meeting_id: str) -> None:
        if _is_calendar_meeting(provider_meeting_id):
            calendar_id, event_id = _calendar_meeting_ids(provider_meeting_id)
            self._api.call(
                "DELETE", event_path(calendar_id, event_id), operation="cancel", done_codes={EVENT_NOT_FOUND}
            )
            return
        self._api.call("DELETE", _reserve_path(provider_meeting_id), operation="cancel", done_codes={RESERVE_NOT_FOUND})

    def _calendar_meeting_create(self, request: MeetingRequest) -> ProvidedMeeting:
        if not request.idempotency_key:
            raise ValueError("a Feishu calendar meeting needs the request's idempotency key")
        calendar_id = self._api.app_calendar_id(configured=self._calendar_id, operation="create")
        data = self._api.call(
            "POST",
            events_path(calendar_id),
            operation="create",
            params={"idempotency_key": request.idempotency_key},
            json={
                "summary": request.topic,
                # The session's marker, as Zoom's agenda carries it: a person looking at the app's calendar
                # can tell which booking an event belongs to.
                "description": f"Booking session {request.reference}",
                **_calendar_meeting_times(request),
                "vchat": {"vc_type": "vc"},
                "attendee_ability": "none",
            },
        )
        event = data.get("event") if isinstance(data, dict) else None
        vchat = event.get("vchat") if isinstance(event, dict) else None
        url = vchat.get("meeting_url") if isinstance(vchat, dict) else None
        if not isinstance(event, dict) or not event.get("event_id") or not url:
            raise self._http.permanent(
                "the calendar meeting answer carries no event_id and vchat.meeting_url", operation="create"
            )
        return ProvidedMeeting(
            provider_meeting_id=calendar_meeting_id(calendar_id, str(event["event_id"])),
            meeting_no=_meeting_no(str(url)),
            join_url=str(url),
            host_id=request.host_id,
        )

    def close(self) -> None:
        self._api.close()


def _reserve_path(provider_meeting_id: str) -> str:
    return f"{RESERVES_PATH}/{quote(provider_meeting_id, safe='')}"


def _unix_seconds(request: MeetingRequest) -> str:
    # Feishu's docs type end_time as a string of Unix seconds.
    return str(int(request.end_time.timestamp()))


# A calendar meeting is addressed by its calendar and event; a reservation id never contains this separator.
_CALENDAR_MEETING_PREFIX = "calendar:"


def _is_calendar_meeting(provider_meeting_id: str) -> bool:
    return provider_meeting_id.startswith(_CALENDAR_MEETING_PREFIX)


def calendar_meeting_id(calendar_id: str, event_id: str) -> str:
    """The id our meetings table keeps for a Feishu meeting made through a calendar event."""
    return f"{_CALENDAR_MEETING_PREFIX}{calendar_id}|{event_id}"


def _calendar_meeting_ids(provider_meeting_id: str) -> tuple[str, str]:
    calendar_id, _, event_id = provider_meeting_id.removeprefix(_CALENDAR_MEETING_PREFIX).rpartition("|")
    return calendar_id, event_id


def _calendar_meeting_times(request: MeetingRequest) -> dict[str, Any]:
    return {
        "start_time": {"timestamp": str(int(request.start_time.timestamp())), "timezone": "UTC"},
        "end_time": {"timestamp": str(int(request.end_time.timestamp())), "timezone": "UTC"},
    }


def _meeting_no(url: str) -> str:
    """The number people dial, from the link (`https://vc.feishu.cn/j/123456789`); the link itself otherwise."""
    last = urlsplit(url).path.rstrip("/").rpartition("/")[2]
    return last if re.fullmatch(r"\d{6,}", last) else url[:64]
