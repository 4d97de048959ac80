"""The control API under `/_sandbox/` (API.md "Provider sandbox"): read and change the config, reset, and see
what the fake providers hold and how many calls they received. These endpoints never wait and never fail
on purpose; their errors are in the app's error shape."""

from __future__ import annotations

import math
import re
from datetime import UTC, datetime
from typing import Any

from meetings_app.sandbox.feishu import FEISHU_ATTENDEE_ID_FIELD
from meetings_app.sandbox.state import (
    OPERATIONS,
    PROVIDERS,
    CalendarEvent,
    Meeting,
    ProviderRequest,
    Reply,
    SandboxState,
    control_error,
    iso_utc,
    parse_datetime,
    unix_seconds,
)


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def configure(state: SandboxState, body: dict) -> Reply:
    unknown = set(body) - {"latencyMs", "failRate", "failStatus", "failNext", "failProvider", "expireTokens"}
    if unknown:
        return control_error(400, "VALIDATION_ERROR", f"Unknown settings: {', '.join(sorted(unknown))}.")
    if "latencyMs" in body and not (_is_number(body["latencyMs"]) and body["latencyMs"] >= 0):
        return control_error(400, "VALIDATION_ERROR", "latencyMs must be a number >= 0.")
    if "failRate" in body and not (_is_number(body["failRate"]) and 0 <= body["failRate"] <= 1):
        return control_error(400, "VALIDATION_ERROR", "failRate must be a number between 0 and 1.")
    status = body.get("failStatus", 500)
    if isinstance(status, bool) or not isinstance(status, int) or not 400 <= status <= 599:
        return control_error(400, "VALIDATION_ERROR", "failStatus must be an HTTP error status (400-599).")
    fail_next = body.get("failNext", {})
    if not isinstance(fail_next, dict) or any(
        op not in OPERATIONS or isinstance(n, bool) or not isinstance(n, int) or n < 0 for op, n in fail_next.items()
    ):
        return control_error(
            400, "VALIDATION_ERROR", f"failNext maps operations ({', '.join(OPERATIONS)}) to whole numbers >= 0."
        )
    if body.get("failProvider") not in (None, *PROVIDERS):
        return control_error(400, "VALIDATION_ERROR", f"failProvider is null or one of {', '.join(PROVIDERS)}.")
    if not isinstance(body.get("expireTokens", False), bool):
        return control_error(400, "VALIDATION_ERROR", "expireTokens must be true or false.")
    with state.lock:
        for name in ("latencyMs", "failRate", "failStatus", "failProvider"):
            if name in body:
                state.config[name] = body[name]
        state.config["failNext"].update(fail_next)
        if body.get("expireTokens"):
            state.expire_tokens()
    return current_config(state)


def current_config(state: SandboxState) -> Reply:
    with state.lock:
        return Reply(200, {**state.config, "failNext": dict(state.config["failNext"])})


def _meeting_view(meeting: Meeting) -> dict:
    resource = meeting.resource
    if meeting.provider == "feishu":
        return {
            "provider": "feishu",
            "id": meeting.id,
            "status": meeting.status,
            "topic": resource["meeting_settings"].get("topic"),
            "startTime": None,
            "duration": None,
            "endTime": iso_utc(datetime.fromtimestamp(int(resource["end_time"]), UTC)),
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
    return {
        "provider": event.provider,
        "calendarId": event.calendar_id,
        "id": event.id,
        "status": resource.get("status"),
        "summary": resource.get("summary"),
        "start": _event_time(event.provider, start),
        "end": _event_time(event.provider, end),
        "meetingUrl": meeting_url,
        "attendees": attendees,
    }


def control(state: SandboxState, request: ProviderRequest) -> Reply:
    endpoint = (request.method, request.path.rstrip("/"))
    if endpoint == ("GET", "/_sandbox/config"):
        return current_config(state)
    if endpoint == ("POST", "/_sandbox/config"):
        body = request.json_object()
        if body is None:
            return control_error(400, "VALIDATION_ERROR", "The body must be a JSON object.")
        return configure(state, body)
    if endpoint == ("POST", "/_sandbox/reset"):
        state.reset()
        return current_config(state)
    with state.lock:
        if endpoint == ("GET", "/_sandbox/meetings"):
            return Reply(200, {"meetings": [_meeting_view(meeting) for meeting in state.meetings.values()]})
        if endpoint == ("GET", "/_sandbox/calendar-events"):
            return Reply(200, {"events": [_event_view(event) for event in state.events.values()]})
        if endpoint == ("GET", "/_sandbox/requests"):
            return Reply(200, dict(state.requests))
    return control_error(404, "NOT_FOUND", f"No sandbox endpoint {request.method} {request.path}.")
