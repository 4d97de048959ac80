"""Google Calendar API v3 events (PROVIDERS.md "Google Calendar"). Access tokens come from google-auth, not
from us: any bearer token is accepted, but one is required. Errors are `{"error": {"code", "message",
"errors": [{"domain", "reason", "message"}]}}`."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Any

from meetings_app.sandbox.state import (
    CalendarEvent,
    ProviderRequest,
    Reply,
    SandboxState,
    busy_overlapping,
    iso_utc,
    parse_datetime,
    parse_rfc3339,
    utc_now,
)

GOOGLE_ID_ALPHABET = "0123456789abcdefghijklmnopqrstuv"  # base32hex, the only alphabet Google accepts for ids
GOOGLE_REMINDER_METHODS = ("email", "popup")
GOOGLE_REMINDER_OVERRIDES_MAX = 5
GOOGLE_REMINDER_MINUTES = range(0, 40320 + 1)  # up to four weeks before the start


def google_error(status: int, reason: str, message: str, headers: dict[str, str] | None = None) -> Reply:
    body = {
        "error": {
            "code": status,
            "message": message,
            "errors": [{"domain": "global", "reason": reason, "message": message}],
        }
    }
    return Reply(status, body, headers or {})


def google_injected_failure(operation: str, status: int) -> Reply:
    """What Google answers when it is overloaded or broken."""
    headers = {"Retry-After": "1"} if status == 429 else {}
    if status in (403, 429):
        return google_error(status, "rateLimitExceeded", "Rate Limit Exceeded", headers)
    if status >= 500:
        return google_error(status, "backendError", "Backend Error", headers)
    return google_error(status, "badRequest", "Bad Request", headers)


def google_authorize(state: SandboxState, request: ProviderRequest) -> Reply | None:
    # Google's tokens come from google-auth, not from us: any bearer token will do, but one is required.
    if request.bearer_token() is None:
        return google_error(401, "required", "Login Required.")
    return None


def _google_time(value: Any) -> datetime | str | None:
    """An aware datetime for `dateTime`, the date string for an all-day `date`, None when unusable."""
    if "dateTime" in value:
        text, zone_name = value["dateTime"], value.get("timeZone")
        moment = parse_datetime(text, zone_name)
        # Google will not guess the zone of a local time: it needs an offset or a timeZone.
        if moment is None or (not zone_name and datetime.fromisoformat(text).tzinfo is None):
            return None
        return moment
    date = value.get("date")
    return date if isinstance(date, str) and len(date) == 10 else None


def _google_event_problem(event: dict) -> Reply | None:
    for name in ("start", "end"):
        if not isinstance(event.get(name), dict):
            return google_error(400, "required", f"Missing {name} time.")
    start, end = _google_time(event["start"]), _google_time(event["end"])
    if start is None or end is None:
        return google_error(400, "invalid", "Invalid start or end time: a dateTime needs an offset or a timeZone.")
    if type(start) is not type(end):
        return google_error(400, "invalid", "Start and end times must either both be date or both be dateTime.")
    if end <= start:
        return google_error(400, "timeRangeEmpty", "The specified time range is empty.")
    attendees = event.get("attendees", [])
    if not isinstance(attendees, list) or any(not isinstance(a, dict) or not a.get("email") for a in attendees):
        return google_error(400, "required", "Missing attendee email.")
    return _google_reminders_problem(event.get("reminders"))


def _google_reminders_problem(reminders: Any) -> Reply | None:
    if reminders is None:
        return None
    if not isinstance(reminders, dict):
        return google_error(400, "invalid", "Invalid value for: reminders")
    overrides = reminders.get("overrides") or []
    if not isinstance(overrides, list) or not all(isinstance(override, dict) for override in overrides):
        return google_error(400, "invalid", "Invalid value for: reminders.overrides")
    if overrides and reminders.get("useDefault", False) is not False:
        return google_error(
            400,
            "cannotUseDefaultRemindersAndSpecifyOverride",
            "Cannot specify both default reminders and overrides at the same time.",
        )
    if len(overrides) > GOOGLE_REMINDER_OVERRIDES_MAX:
        return google_error(400, "invalid", "Too many reminder overrides: at most 5.")
    for override in overrides:
        if override.get("method") not in GOOGLE_REMINDER_METHODS:
            return google_error(400, "required", "Missing or invalid reminder method.")
        minutes = override.get("minutes")
        if isinstance(minutes, bool) or not isinstance(minutes, int) or minutes not in GOOGLE_REMINDER_MINUTES:
            return google_error(400, "invalid", "Invalid reminder minutes: from 0 to 40320.")
    return None


def _google_valid_id(event_id: Any) -> bool:
    return (
        isinstance(event_id, str)
        and 5 <= len(event_id) <= 1024
        and all(character in GOOGLE_ID_ALPHABET for character in event_id)
    )


def _google_stamp(resource: dict) -> None:
    resource["updated"] = utc_now().isoformat(timespec="milliseconds").replace("+00:00", "Z")
    resource["etag"] = f'"{time.time_ns() // 1000}"'


def _google_attendees(attendees: list[dict]) -> list[dict]:
    return [{"responseStatus": "needsAction", **attendee} for attendee in attendees]


def google_event_insert(state: SandboxState, request: ProviderRequest, calendar_id: str) -> Reply:
    body = request.json_object()
    if body is None:
        return google_error(400, "parseError", "Parse Error")
    event_id = body.get("id")
    if event_id is not None and not _google_valid_id(event_id):
        return google_error(400, "invalid", "Invalid resource id value.")
    if event_id is not None and ("google", calendar_id, event_id) in state.events:
        # Deleted events keep their id, so re-inserting one is a conflict as well.
        return google_error(409, "duplicate", "The requested identifier already exists.")
    if problem := _google_event_problem(body):
        return problem
    event_id = event_id or "".join(state.random.choices(GOOGLE_ID_ALPHABET, k=26))
    now = utc_now().isoformat(timespec="milliseconds").replace("+00:00", "Z")
    resource = {
        "kind": "calendar#event",
        **body,
        "id": event_id,
        "status": "confirmed",
        "htmlLink": f"https://www.google.com/calendar/event?eid={event_id}",
        "created": now,
        "creator": {"email": calendar_id, "self": True},
        "organizer": {"email": calendar_id, "self": True},
        "iCalUID": f"{event_id}@google.com",
        "sequence": 0,
        "reminders": body.get("reminders", {"useDefault": True}),
        "eventType": "default",
    }
    if "attendees" in body:
        resource["attendees"] = _google_attendees(body["attendees"])
    _google_stamp(resource)
    state.events[("google", calendar_id, event_id)] = CalendarEvent("google", calendar_id, event_id, resource)
    return Reply(200, resource)


def _google_event(state: SandboxState, calendar_id: str, event_id: str) -> CalendarEvent | Reply:
    event = state.events.get(("google", calendar_id, event_id))
    if event is None:
        return google_error(404, "notFound", "Not Found")
    if event.resource["status"] == "cancelled":
        return google_error(410, "deleted", "Resource has been deleted")
    return event


def google_event_get(state: SandboxState, request: ProviderRequest, calendar_id: str, event_id: str) -> Reply:
    event = state.events.get(("google", calendar_id, event_id))
    if event is None:
        return google_error(404, "notFound", "Not Found")
    # Google's get returns a deleted event too, with status "cancelled".
    return Reply(200, event.resource)


def _google_event_change(
    state: SandboxState, request: ProviderRequest, calendar_id: str, event_id: str, *, replace: bool
) -> Reply:
    event = _google_event(state, calendar_id, event_id)
    if isinstance(event, Reply):
        return event
    body = request.json_object()
    if body is None:
        return google_error(400, "parseError", "Parse Error")
    fixed = ("id", "kind", "created", "creator", "organizer", "iCalUID", "htmlLink", "status", "etag", "updated")
    changes = {name: value for name, value in body.items() if name not in fixed}
    if replace:
        changed = {name: value for name, value in event.resource.items() if name in fixed or name == "sequence"}
        changed.update(changes)
    else:
        changed = {**event.resource, **changes}
    if problem := _google_event_problem(changed):
        return problem
    if "attendees" in changes:
        changed["attendees"] = _google_attendees(changes["attendees"])
    changed["sequence"] = event.resource.get("sequence", 0) + 1
    _google_stamp(changed)
    event.resource.clear()
    event.resource.update(changed)
    return Reply(200, event.resource)


def google_event_patch(state: SandboxState, request: ProviderRequest, calendar_id: str, event_id: str) -> Reply:
    return _google_event_change(state, request, calendar_id, event_id, replace=False)


def google_event_update(state: SandboxState, request: ProviderRequest, calendar_id: str, event_id: str) -> Reply:
    return _google_event_change(state, request, calendar_id, event_id, replace=True)


def google_event_delete(state: SandboxState, request: ProviderRequest, calendar_id: str, event_id: str) -> Reply:
    event = _google_event(state, calendar_id, event_id)
    if isinstance(event, Reply):
        return event
    event.resource["status"] = "cancelled"
    _google_stamp(event.resource)
    return Reply(204)


def _google_busy_events(state: SandboxState, calendar_id: str) -> list[tuple[datetime, datetime]]:
    """The confirmed, opaque timed events of the calendar: its own, and those it is invited to (not declined)."""
    intervals = []
    for event in state.events.values():
        resource = event.resource
        if event.provider != "google" or resource.get("status") != "confirmed":
            continue
        if resource.get("transparency") == "transparent":
            continue
        invited = any(
            attendee.get("email") == calendar_id and attendee.get("responseStatus") != "declined"
            for attendee in resource.get("attendees", [])
        )
        if not (invited or event.calendar_id == calendar_id):
            continue
        start, end = _google_time(resource.get("start") or {}), _google_time(resource.get("end") or {})
        if isinstance(start, datetime) and isinstance(end, datetime):
            intervals.append((start.astimezone(UTC), end.astimezone(UTC)))
    return intervals


def _google_readable(state: SandboxState, calendar_id: str) -> bool:
    """A person's calendar (an email) or one the sandbox holds events in; any other id is not found."""
    return "@" in calendar_id or calendar_id == "primary" or any(key[1] == calendar_id for key in state.events)


def _merged(intervals: list[tuple[datetime, datetime]]) -> list[tuple[datetime, datetime]]:
    merged: list[tuple[datetime, datetime]] = []
    for start, end in sorted(intervals):
        if merged and start <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(merged[-1][1], end))
        else:
            merged.append((start, end))
    return merged


def google_freebusy_query(state: SandboxState, request: ProviderRequest) -> Reply:
    """Each calendar's busy times cut to the window and merged where they touch, as Google answers them; a
    calendar it cannot show answers an `errors` entry, not an HTTP error."""
    body = request.json_object()
    if body is None:
        return google_error(400, "parseError", "Parse Error")
    for name in ("timeMin", "timeMax"):
        if name not in body:
            return google_error(400, "required", f"Missing {name} parameter.")
    time_min, time_max = parse_rfc3339(body["timeMin"]), parse_rfc3339(body["timeMax"])
    if time_min is None or time_max is None:
        return google_error(400, "invalid", "Bad Request: timeMin and timeMax must be RFC 3339 with an offset.")
    if time_max <= time_min:
        return google_error(400, "timeRangeEmpty", "The specified time range is empty.")
    items = body.get("items", [])
    if not isinstance(items, list) or any(not isinstance(item, dict) or not item.get("id") for item in items):
        return google_error(400, "invalid", "Invalid value for: items")
    calendars = {}
    for item in items:
        calendar_id = str(item["id"])
        if not _google_readable(state, calendar_id):
            calendars[calendar_id] = {"errors": [{"domain": "global", "reason": "notFound"}], "busy": []}
            continue
        intervals = _google_busy_events(state, calendar_id) + state.busy_set("google", calendar_id)
        busy = [
            (max(start, time_min), min(end, time_max)) for start, end in busy_overlapping(intervals, time_min, time_max)
        ]
        calendars[calendar_id] = {"busy": [{"start": iso_utc(s), "end": iso_utc(e)} for s, e in _merged(busy)]}
    return Reply(
        200,
        {
            "kind": "calendar#freeBusy",
            "timeMin": iso_utc(time_min),
            "timeMax": iso_utc(time_max),
            "calendars": calendars,
        },
    )


SEGMENT = r"([^/]+)"
EVENTS = rf"/calendar/v3/calendars/{SEGMENT}/events"

# (method, path pattern, operation counted and failed as, handler)
GOOGLE_ROUTES = [
    ("POST", EVENTS, "calendar", google_event_insert),
    ("GET", f"{EVENTS}/{SEGMENT}", "calendar", google_event_get),
    ("PATCH", f"{EVENTS}/{SEGMENT}", "calendar", google_event_patch),
    ("PUT", f"{EVENTS}/{SEGMENT}", "calendar", google_event_update),
    ("DELETE", f"{EVENTS}/{SEGMENT}", "calendar", google_event_delete),
    ("POST", "/calendar/v3/freeBusy", "calendar", google_freebusy_query),
]
