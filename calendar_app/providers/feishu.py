"""Feishu Calendar v4: the app creates the event in its own calendar, then adds the participant as an attendee
(the participant sees it in their calendar). Shares the tenant token logic with the meeting client."""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from django.conf import settings

from booking_project.providers.feishu import FeishuOpenApi, event_path, events_path
from calendar_app.providers.base import (
    CalendarEventRequest,
    CalendarProviderClient,
    ProvidedCalendarEvent,
    busy_within,
)

EVENT_NOT_FOUND = 193001
FREEBUSY_PATH = "/open-apis/calendar/v4/freebusy/list"
# Feishu takes reminder offsets from -20160 to 20160 minutes (negative: after the start); we only remind before.
REMINDER_MINUTES_MAX = 20160


class FeishuCalendarClient(CalendarProviderClient):
    name = "feishu"

    def __init__(self, *, api: FeishuOpenApi, calendar_id: str = ""):
        self._api = api
        self._calendar_id = calendar_id

    @classmethod
    def from_settings(cls, *, clock: Callable[[], float] = time.monotonic) -> FeishuCalendarClient:
        return cls(
            api=FeishuOpenApi.from_settings(provider=cls.name, clock=clock), calendar_id=settings.FEISHU_CALENDAR_ID
        )

    def create(self, event: CalendarEventRequest, *, idempotency_key: str) -> ProvidedCalendarEvent:
        calendar_id = self._app_calendar_id()
        data = self._api.call(
            "POST",
            events_path(calendar_id),
            operation="calendar.create",
            params={"idempotency_key": idempotency_key},
            json={**_event_body(event), "attendee_ability": "none"},
        )
        try:
            event_id = str(data["event"]["event_id"])
        except (KeyError, TypeError):
            raise self._api.http.permanent(
                "the event answer carries no event_id", operation="calendar.create"
            ) from None
        # Adding an attendee already on the event changes nothing, so a repeated create is harmless here too.
        self._api.call(
            "POST",
            f"{event_path(calendar_id, event_id)}/attendees",
            operation="calendar.create",
            params={"user_id_type": "open_id"},
            json={"attendees": [_attendee(event)], "need_notification": True},
        )
        return ProvidedCalendarEvent(calendar_id=calendar_id, event_id=event_id)

    def update(self, calendar_id: str, event_id: str, event: CalendarEventRequest) -> None:
        self._api.call("PATCH", event_path(calendar_id, event_id), operation="calendar.update", json=_event_body(event))

    def delete(self, calendar_id: str, event_id: str) -> None:
        self._api.call(
            "DELETE",
            event_path(calendar_id, event_id),
            operation="calendar.delete",
            params={"need_notification": "true"},
            done_codes={EVENT_NOT_FOUND},
        )

    def busy(
        self, *, person: str, start: datetime, end: datetime, timeout_seconds: float
    ) -> list[tuple[datetime, datetime]]:
        data = self._api.call(
            "POST",
            FREEBUSY_PATH,
            operation="calendar.busy",
            params={"user_id_type": "open_id"},
            # The person's primary calendar, and the external calendars they connected to Feishu: all of it is
            # their time. Only busy events: one they marked free does not keep them from a session.
            json={
                "time_min": _rfc3339(start),
                "time_max": _rfc3339(end),
                "user_id": person,
                "include_external_calendar": True,
                "only_busy": True,
            },
            timeout_seconds=timeout_seconds,
        )
        # Feishu leaves an empty list out of its answer.
        entries = data.get("freebusy_list", []) if isinstance(data, dict) else None
        try:
            if not isinstance(entries, list) or not all(isinstance(entry, dict) for entry in entries):
                raise ValueError("freebusy_list is not a list of objects")
            return busy_within(
                [(entry.get("start_time"), entry.get("end_time")) for entry in entries], start=start, end=end
            )
        except ValueError as error:
            raise self._api.http.permanent(
                f"the free/busy answer cannot be read: {error}", operation="calendar.busy"
            ) from None

    def close(self) -> None:
        self._api.close()

    def _app_calendar_id(self) -> str:
        return self._api.app_calendar_id(configured=self._calendar_id, operation="calendar.create")

    def prepare(self, *, operation: str) -> None:
        self._api.prepare(operation=operation)


def _rfc3339(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


def _event_body(event: CalendarEventRequest) -> dict[str, Any]:
    body: dict[str, Any] = {
        "summary": event.summary,
        "description": event.description,
        "start_time": {"timestamp": str(int(event.start_time.timestamp())), "timezone": event.time_zone},
        "end_time": {"timestamp": str(int(event.end_time.timestamp())), "timezone": event.time_zone},
        "vchat": {"vc_type": "third_party", "meeting_url": event.meeting_url},
    }
    # Sent on every create and patch, so a moved event's reminders are the offsets before its new start. An
    # offset Feishu would refuse is left out rather than failing the whole event (the email reminder still goes).
    reminders = sorted({minutes for minutes in event.reminder_minutes if 0 <= minutes <= REMINDER_MINUTES_MAX})
    if reminders:
        body["reminders"] = [{"minutes": minutes} for minutes in reminders]
    return body


def _attendee(event: CalendarEventRequest) -> dict[str, str]:
    if event.attendee_open_id:
        return {"type": "user", "user_id": event.attendee_open_id}
    return {"type": "third_party", "third_party_email": event.attendee_email}
