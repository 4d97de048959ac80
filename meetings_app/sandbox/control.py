"""The control API under `/_sandbox/` (API.md "Provider sandbox"): read and change the config, reset, and see
what the fake providers hold, how many calls they received and what was injected. These endpoints never
wait and never fail on purpose; their errors are in the app's error shape.

- `GET|POST /_sandbox/config` (POST: any subset of SETTINGS, all validated before any is applied; 400
  VALIDATION_ERROR with `details` per setting), `POST /_sandbox/reset`;
- `GET /_sandbox/meetings`, `GET /_sandbox/calendar-events`: what the providers hold (an event's `reminders`:
  the minutes before its start at which it reminds);
- `POST /_sandbox/meetings/{id}/start|end`: the meeting starts or ends and its provider's webhook goes to the app
  (sandbox/events.py);
- `POST /_sandbox/busy` `{"provider": "feishu"|"google", "user": "<open_id or email>", "start", "end"}` (RFC 3339
  with an offset, start before end) → 201: that person is busy then in their own calendar. Feishu's
  `freebusy/list` and Google's `freeBusy` answer these besides the confirmed events the sandbox holds for the
  person (invited, or on their own calendar). `GET /_sandbox/busy` lists them; `/_sandbox/reset` clears them.
  The free/busy endpoints count as the `calendar` operation, so latencyMs, failNext/failRate and failProvider
  apply to them (a latency past the client's timeout makes a calendar time out);
- `GET /_sandbox/requests`: provider calls received, by operation (`token` included);
- `GET /_sandbox/injected`: `{"failed": {op: n}, "answersLost": {op: n}, "byProvider": {provider: {"failed",
  "answersLost"}}}`, the calls failed before applying and the answers lost after applying.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any
from urllib.parse import unquote

from meetings_app.sandbox.events import meeting_event_send
from meetings_app.sandbox.feishu import FEISHU_ATTENDEE_ID_FIELD
from meetings_app.sandbox.state import (
    ANSWER_LOSS_DEFAULTS,
    OPERATIONS,
    PROVIDERS,
    TOKEN_LATENCY_DEFAULT,
    BusyTime,
    CalendarEvent,
    Meeting,
    ProviderRequest,
    Reply,
    SandboxState,
    control_error,
    iso_utc,
    parse_datetime,
    parse_rfc3339,
    unix_seconds,
)


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _is_whole(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_counts(value: Any) -> bool:
    return isinstance(value, dict) and all(op in OPERATIONS and _is_whole(n) and n >= 0 for op, n in value.items())


_AT_LEAST_ZERO = (lambda value: _is_number(value) and value >= 0, "a number >= 0")
_SHARE = (lambda value: _is_number(value) and 0 <= value <= 1, "a number between 0 and 1")
_ERROR_STATUS = (lambda value: _is_whole(value) and 400 <= value <= 599, "an HTTP error status (400-599)")
_COUNTS = (_is_counts, f"an object mapping operations ({', '.join(OPERATIONS)}) to whole numbers >= 0")

# Each setting /_sandbox/config takes: (is it valid?, what it must be). See the state module for what they do.
SETTINGS: dict[str, tuple[Callable[[Any], bool], str]] = {
    "latencyMs": _AT_LEAST_ZERO,
    "failRate": _SHARE,
    "failStatus": _ERROR_STATUS,
    "failNext": _COUNTS,
    "failProvider": (lambda value: value in (None, *PROVIDERS), f"null or one of {', '.join(PROVIDERS)}"),
    "applyThenFailNext": _COUNTS,
    "applyThenFailRate": _SHARE,
    "applyThenFailOperation": (lambda value: value in (None, *OPERATIONS), f"null or one of {', '.join(OPERATIONS)}"),
    "applyThenFailStatus": _ERROR_STATUS,
    "applyThenDelayMs": _AT_LEAST_ZERO,
    "tokenLatencyMs": _AT_LEAST_ZERO,
    "expireTokens": (lambda value: isinstance(value, bool), "true or false"),
}
COUNT_SETTINGS = ("failNext", "applyThenFailNext")  # merged into what is set: other operations keep their count


def configure(state: SandboxState, body: dict) -> Reply:
    """Change the settings `body` names (any subset), all or none: one invalid setting changes nothing."""
    problems = {name: ["Unknown setting."] for name in body if name not in SETTINGS}
    for name, (valid, rule) in SETTINGS.items():
        if name in body and not valid(body[name]):
            problems[name] = [f"{name} must be {rule}."]
    if problems:
        unknown = sorted(name for name in body if name not in SETTINGS)
        message = f"Unknown settings: {', '.join(unknown)}." if unknown else next(iter(problems.values()))[0]
        return control_error(400, "VALIDATION_ERROR", message, details=problems)
    with state.lock:
        for name, value in body.items():
            if name in COUNT_SETTINGS:
                state.config[name].update(value)
            elif name == "expireTokens":
                if value:
                    state.expire_tokens()
            else:
                state.config[name] = value
    return current_config(state)


def current_config(state: SandboxState) -> Reply:
    with state.lock:
        config = {**state.config, **{name: dict(state.config[name]) for name in COUNT_SETTINGS}}
    # Listed while in use only, so a sandbox that uses none of them shows the config it always showed.
    if all(config[name] == default for name, default in ANSWER_LOSS_DEFAULTS.items()):
        for name in ANSWER_LOSS_DEFAULTS:
            del config[name]
    if config["tokenLatencyMs"] == TOKEN_LATENCY_DEFAULT:
        del config["tokenLatencyMs"]
    return Reply(200, config)


def injected_counts(state: SandboxState) -> dict:
    """How many provider calls were failed before applying and how many answers were lost after applying, by
    operation, in total and per provider."""
    with state.lock:
        by_provider = {
            provider: {kind: dict(counts) for kind, counts in state.injected[provider].items()}
            for provider in PROVIDERS
        }
    totals = {
        kind: {op: sum(by_provider[provider][kind][op] for provider in PROVIDERS) for op in OPERATIONS}
        for kind in ("failed", "answersLost")
    }
    return {**totals, "byProvider": by_provider}


def _unix_iso(seconds: str) -> str:
    return iso_utc(datetime.fromtimestamp(int(seconds), UTC))


def _meeting_view(meeting: Meeting) -> dict:
    resource = meeting.resource
    if meeting.source == "calendar":
        # A Feishu video meeting a calendar event made: it has the event's times, and says which event.
        start, end = int(resource["start_time"]), int(resource["end_time"])
        return {
            "provider": "feishu",
            "id": meeting.id,
            "status": meeting.status,
            "topic": resource["topic"],
            "startTime": _unix_iso(resource["start_time"]),
            "duration": (end - start) // 60,
            "endTime": _unix_iso(resource["end_time"]),
            "hostId": resource["owner_id"],
            "agenda": None,
            "source": "calendar",
            "calendarId": resource["calendar_id"],
            "eventId": resource["event_id"],
            "meetingNo": resource["meeting_no"],
            "meetingUrl": resource["url"],
        }
    if meeting.provider == "feishu":
        return {
            "provider": "feishu",
            "id": meeting.id,
            "status": meeting.status,
            "topic": resource["meeting_settings"].get("topic"),
            "startTime": None,
            "duration": None,
            "endTime": _unix_iso(resource["end_time"]),
            "hostId": resource["reserve_user_id"],
            "agenda": None,
        }
    return {
        "provider": "zoom",
        "id": meeting.id,
        "status": meeting.status,
        "topic": resource["topic"],
        "startTime": resource["start_time"],
        "duration": resource["duration"],
        "endTime": None,
        "hostId": resource["host_id"],
        "agenda": resource["agenda"],
    }


def _event_time(provider: str, value: Any) -> str | None:
    if not isinstance(value, dict):
        return None
    if provider == "feishu" and "timestamp" in value:
        return iso_utc(datetime.fromtimestamp(unix_seconds(value["timestamp"]), UTC))
    if provider == "google" and "dateTime" in value:
        moment = parse_datetime(value["dateTime"], value.get("timeZone"))
        return iso_utc(moment) if moment else None
    return value.get("date")


URL_IN_TEXT = re.compile(r"https?://\S+")


def _as_dict(value: Any) -> dict:
    # Views read fields the client wrote; an odd value must not break the view.
    return value if isinstance(value, dict) else {}


def _google_meeting_url(resource: dict) -> str | None:
    entry_points = _as_dict(resource.get("conferenceData")).get("entryPoints")
    for entry in entry_points if isinstance(entry_points, list) else []:
        if _as_dict(entry).get("entryPointType") == "video" and entry.get("uri"):
            return entry["uri"]
    for text in (resource.get("location"), resource.get("description")):
        if isinstance(text, str) and (match := URL_IN_TEXT.search(text)):
            return match.group(0)
    return None


def _event_reminders(provider: str, reminders: Any) -> list[int]:
    """The minutes before the start at which the event reminds ([] for none, or a Google calendar's defaults)."""
    if provider == "feishu":
        return [reminder["minutes"] for reminder in reminders or []]
    reminders = _as_dict(reminders)
    return [] if reminders.get("useDefault") else [override["minutes"] for override in reminders.get("overrides") or []]


def _event_view(event: CalendarEvent) -> dict:
    resource = event.resource
    if event.provider == "feishu":
        meeting_url = _as_dict(resource.get("vchat")).get("meeting_url")
        start, end = resource.get("start_time"), resource.get("end_time")
        attendees = [a[FEISHU_ATTENDEE_ID_FIELD[a["type"]]] for a in resource.get("attendees", [])]
    else:
        meeting_url = _google_meeting_url(resource)
        start, end = resource.get("start"), resource.get("end")
        attendees = [attendee["email"] for attendee in resource.get("attendees", [])]
    view = {
        "provider": event.provider,
        "calendarId": event.calendar_id,
        "id": event.id,
        "status": resource.get("status"),
        "summary": resource.get("summary"),
        "start": _event_time(event.provider, start),
        "end": _event_time(event.provider, end),
        "meetingUrl": meeting_url,
        "attendees": attendees,
        "reminders": _event_reminders(event.provider, resource.get("reminders")),
    }
    if event.meeting_id is not None:
        # The event made a Feishu video meeting (vchat vc_type "vc"): the meeting itself, not an invitation.
        view["videoMeeting"] = True
    return view


BUSY_PROVIDERS = ("feishu", "google")


def _busy_view(busy: BusyTime) -> dict:
    return {"provider": busy.provider, "user": busy.user, "start": iso_utc(busy.start), "end": iso_utc(busy.end)}


def busy_add(state: SandboxState, body: dict | None) -> Reply:
    """Make a person busy in their own calendar for a while; every problem named at once, nothing added."""
    if body is None:
        return control_error(400, "VALIDATION_ERROR", "The body must be a JSON object.")
    problems: dict[str, list[str]] = {}
    if body.get("provider") not in BUSY_PROVIDERS:
        problems["provider"] = [f"provider must be one of {', '.join(BUSY_PROVIDERS)}."]
    if not isinstance(body.get("user"), str) or not body["user"].strip():
        problems["user"] = ["user must be the person's open_id (Feishu) or calendar id / email (Google)."]
    start, end = parse_rfc3339(body.get("start")), parse_rfc3339(body.get("end"))
    for name, moment in (("start", start), ("end", end)):
        if moment is None:
            problems[name] = [f"{name} must be an RFC 3339 date-time with an offset."]
    if start is not None and end is not None and end <= start:
        problems["end"] = ["end must be after start."]
    if problems:
        return control_error(400, "VALIDATION_ERROR", next(iter(problems.values()))[0], details=problems)
    busy = BusyTime(provider=body["provider"], user=body["user"].strip(), start=start, end=end)
    with state.lock:
        state.busy.append(busy)
    return Reply(201, _busy_view(busy))


MEETING_EVENT = re.compile(r"^/_sandbox/meetings/([^/]+)/(start|end)$")


def control(state: SandboxState, request: ProviderRequest) -> Reply:
    endpoint = (request.method, request.path.rstrip("/"))
    if request.method == "POST" and (match := MEETING_EVENT.match(endpoint[1])):
        return meeting_event_send(state, unquote(match.group(1)), "started" if match.group(2) == "start" else "ended")
    if endpoint == ("GET", "/_sandbox/config"):
        return current_config(state)
    if endpoint == ("POST", "/_sandbox/config"):
        body = request.json_object()
        if body is None:
            return control_error(400, "VALIDATION_ERROR", "The body must be a JSON object.")
        return configure(state, body)
    if endpoint == ("POST", "/_sandbox/busy"):
        return busy_add(state, request.json_object())
    if endpoint == ("POST", "/_sandbox/reset"):
        state.reset()
        return current_config(state)
    with state.lock:
        if endpoint == ("GET", "/_sandbox/meetings"):
            return Reply(200, {"meetings": [_meeting_view(meeting) for meeting in state.meetings.values()]})
        if endpoint == ("GET", "/_sandbox/calendar-events"):
            return Reply(200, {"events": [_event_view(event) for event in state.events.values()]})
        if endpoint == ("GET", "/_sandbox/busy"):
            return Reply(200, {"busy": [_busy_view(busy) for busy in state.busy]})
        if endpoint == ("GET", "/_sandbox/requests"):
            return Reply(200, dict(state.requests))
    if endpoint == ("GET", "/_sandbox/injected"):
        return Reply(200, injected_counts(state))
    return control_error(404, "NOT_FOUND", f"No sandbox endpoint {request.method} {request.path}.")
