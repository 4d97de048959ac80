"""A stand-in for Feishu, Zoom and Google Calendar that speaks their real HTTP APIs on a local port.

Point `FEISHU_BASE_URL` at `url`, `ZOOM_API_BASE_URL` at `{url}/v2`, `ZOOM_OAUTH_URL` at `{url}/oauth/token`
and `GOOGLE_CALENDAR_BASE_URL` at `{url}/calendar/v3`. Every provider call first waits `latencyMs`, then
may fail on purpose (`failNext`, then `failRate`), and only then is applied: once applied it stays applied
even if the caller has hung up, as with the real providers. `/_sandbox/...` configures the sandbox and
shows what it holds (API.md "Provider sandbox"); those endpoints never wait and never fail on purpose.

Standard library only, so the demo and load tests can run it anywhere Python runs.
"""

from __future__ import annotations

import base64
import binascii
import json
import math
import random
import re
import secrets
import socket
import sys
import threading
import time
import traceback
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from http.client import HTTPMessage
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

# What /_sandbox/config's failNext counts and /_sandbox/requests reports ("token" is counted, never failed).
OPERATIONS = ("create", "update", "cancel", "calendar", "read")
COUNTED = (*OPERATIONS, "token")

FEISHU_TOKEN_TTL_S = 7200
FEISHU_RESERVE_REACH = timedelta(days=30)
FEISHU_PRIMARY_CALENDAR_ID = "feishu.cn_sandbox-primary@group.calendar.feishu.cn"
LAST_UNIX_SECOND = 253_402_300_799  # 9999-12-31T23:59:59Z, the last moment datetime can hold
ZOOM_TOKEN_TTL_S = 3600
ZOOM_ACCOUNT_OWNER_ID = "sandboxAccountOwner01"  # who `me` is for this account's server-to-server app
ZOOM_PAGE_SIZE_DEFAULT = 30
ZOOM_PAGE_SIZE_MAX = 300
GOOGLE_ID_ALPHABET = "0123456789abcdefghijklmnopqrstuv"  # base32hex, the only alphabet Google accepts for ids


@dataclass
class Reply:
    status: int
    body: Any = None  # JSON-serialisable; None sends an empty body
    headers: dict[str, str] = field(default_factory=dict)


@dataclass
class ProviderRequest:
    method: str
    path: str
    query: dict[str, str]
    headers: HTTPMessage
    raw_body: bytes

    def json_object(self) -> dict | None:
        """The body as a JSON object; {} when empty, None when it is not a JSON object."""
        if not self.raw_body.strip():
            return {}
        try:
            value = json.loads(self.raw_body)
        except (ValueError, UnicodeDecodeError):
            return None
        return value if isinstance(value, dict) else None

    def form(self) -> dict[str, str]:
        try:
            text = self.raw_body.decode()
        except UnicodeDecodeError:
            return {}
        return {key: values[0] for key, values in parse_qs(text).items()}

    def bearer_token(self) -> str | None:
        scheme, _, token = (self.headers.get("Authorization") or "").strip().partition(" ")
        token = token.strip()
        return token if scheme.lower() == "bearer" and token else None


@dataclass
class Meeting:
    provider: str  # "feishu" | "zoom"
    id: str
    resource: dict  # the provider's own representation, as its API returns it
    status: str = "active"


@dataclass
class CalendarEvent:
    provider: str  # "feishu" | "google"
    calendar_id: str
    id: str
    resource: dict


@dataclass
class IssuedToken:
    provider: str  # "feishu" | "zoom"
    expired: bool = False


# ---------------------------------------------------------------------------------------------------------
# Error bodies, each in its provider's own shape


def feishu_error(status: int, code: int, msg: str, headers: dict[str, str] | None = None) -> Reply:
    return Reply(status, {"code": code, "msg": msg}, headers or {})


def zoom_error(status: int, code: int, message: str, headers: dict[str, str] | None = None, **extra) -> Reply:
    return Reply(status, {"code": code, "message": message, **extra}, headers or {})


def google_error(status: int, reason: str, message: str, headers: dict[str, str] | None = None) -> Reply:
    body = {
        "error": {
            "code": status,
            "message": message,
            "errors": [{"domain": "global", "reason": reason, "message": message}],
        }
    }
    return Reply(status, body, headers or {})


def control_error(status: int, code: str, message: str) -> Reply:
    return Reply(status, {"error": {"code": code, "message": message, "details": {}}})


def injected_failure(provider: str, operation: str, status: int) -> Reply:
    """The answer a provider gives when it is overloaded or broken, in that provider's words."""
    headers = {"Retry-After": "1"} if status == 429 else {}
    if provider == "feishu":
        if status == 429:
            headers["X-Ogw-Ratelimit-Limit"] = "50"
            headers["X-Ogw-Ratelimit-Reset"] = "1"
            return feishu_error(status, 99991400, "request trigger frequency limit", headers)
        if operation == "calendar":
            return feishu_error(status, 190003, "internal service error", headers)
        return feishu_error(status, 121001, "internal error", headers)
    if provider == "zoom":
        if status == 429:
            headers.update({"X-RateLimit-Limit": "30", "X-RateLimit-Remaining": "0", "X-RateLimit-Type": "QPS"})
            message = "You have reached the maximum per-second rate limit for this API. Try again later."
            return zoom_error(status, 429, message, headers)
        return zoom_error(status, status, "The server encountered an error. Try again later.", headers)
    if status in (403, 429):
        return google_error(status, "rateLimitExceeded", "Rate Limit Exceeded", headers)
    if status >= 500:
        return google_error(status, "backendError", "Backend Error", headers)
    return google_error(status, "badRequest", "Bad Request", headers)


# ---------------------------------------------------------------------------------------------------------
# Time helpers


def utc_now() -> datetime:
    return datetime.now(UTC)


def iso_utc(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_datetime(value: Any, zone_name: str | None = None) -> datetime | None:
    """An aware datetime from an ISO-8601 string; a naive one is read in `zone_name` (UTC if unknown)."""
    if not isinstance(value, str) or not value:
        return None
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        return None
    if moment.tzinfo is None:
        try:
            zone = ZoneInfo(zone_name) if zone_name else UTC
        except (ZoneInfoNotFoundError, ValueError, OSError):  # unknown, malformed, a directory, too long
            zone = UTC
        moment = moment.replace(tzinfo=zone)
    return moment


def unix_seconds(value: Any) -> int | None:
    """Feishu sends timestamps as strings of digits; its SDK sends integers. Both are fine."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.strip().isdigit():
        return int(value.strip())
    return None


# ---------------------------------------------------------------------------------------------------------
# The state every provider holds, and the rules for touching it


class SandboxState:
    """Everything the fake providers hold, behind one lock. Handlers run with the lock held, so each
    operation is atomic; nobody sleeps while holding it."""

    def __init__(self, *, latency_ms: float = 0, fail_rate: float = 0.0):
        self.lock = threading.Lock()
        self.startup_config = {"latencyMs": latency_ms, "failRate": fail_rate, "failStatus": 500}
        self.random = random.Random()
        # Tokens survive /_sandbox/reset, so a client's cached token keeps working across tests;
        # `expireTokens` is the way to invalidate them.
        self.tokens: dict[str, IssuedToken] = {}
        # Ids stay unique for the sandbox's whole life: rows made before a reset may still name them.
        self.used_ids: set[str] = set()
        self._clear()

    def _clear(self) -> None:
        # failProvider (null, "feishu", "zoom" or "google"): injected failures hit that provider's calls only,
        # so one provider can be down while the others answer.
        self.config: dict[str, Any] = {
            **self.startup_config,
            "failNext": dict.fromkeys(OPERATIONS, 0),
            "failProvider": None,
        }
        self.meetings: dict[tuple[str, str], Meeting] = {}  # insertion order is creation order
        self.events: dict[tuple[str, str, str], CalendarEvent] = {}
        self.feishu_event_keys: dict[tuple[str, str], str] = {}  # (calendar_id, idempotency_key) -> event_id
        self.requests = dict.fromkeys(COUNTED, 0)

    def reset(self) -> None:
        with self.lock:
            self._clear()

    def count(self, operation: str) -> None:
        with self.lock:
            self.requests[operation] += 1

    def latency_seconds(self) -> float:
        with self.lock:
            return self.config["latencyMs"] / 1000

    def should_fail(self, operation: str, provider: str | None = None) -> bool:
        if self.config["failProvider"] not in (None, provider):
            return False
        pending = self.config["failNext"]
        if pending.get(operation, 0) > 0:
            pending[operation] -= 1
            return True
        return self.random.random() < self.config["failRate"]

    def issue_token(self, provider: str, token: str) -> str:
        self.tokens[token] = IssuedToken(provider)
        return token

    def token_state(self, provider: str, token: str | None) -> str:
        """'valid', 'expired' or 'unknown' for this provider."""
        issued = self.tokens.get(token) if token else None
        if issued is None or issued.provider != provider:
            return "unknown"
        return "expired" if issued.expired else "valid"

    def expire_tokens(self) -> None:
        for issued in self.tokens.values():
            issued.expired = True

    def _new_number(self, kind: str, low: int, high: int) -> int:
        while True:
            number = self.random.randrange(low, high)
            if f"{kind}:{number}" not in self.used_ids:
                self.used_ids.add(f"{kind}:{number}")
                return number

    def new_meeting_no(self) -> str:
        return str(self._new_number("feishu-meeting-no", 100_000_000, 1_000_000_000))

    def new_zoom_id(self) -> int:
        return self._new_number("zoom", 80_000_000_000, 100_000_000_000)

    def new_feishu_reserve_id(self) -> str:
        return str(self._new_number("feishu-reserve", 6_900_000_000_000_000_000, 7_400_000_000_000_000_000))


# ---------------------------------------------------------------------------------------------------------
# Feishu: tenant token, VC reservations, calendar v4

FEISHU_AUTH_FAILURE = (401, 99991663, "Invalid access token for authorization.")


def feishu_ok(data: dict) -> Reply:
    return Reply(200, {"code": 0, "msg": "success", "data": data})


def feishu_authorize(state: SandboxState, request: ProviderRequest) -> Reply | None:
    if state.token_state("feishu", request.bearer_token()) != "valid":
        return feishu_error(*FEISHU_AUTH_FAILURE)
    return None


def feishu_tenant_token(state: SandboxState, request: ProviderRequest) -> Reply:
    body = request.json_object()
    if body is None or not body.get("app_id") or not body.get("app_secret"):
        return feishu_error(400, 10003, "invalid param")
    token = state.issue_token("feishu", f"t-{secrets.token_hex(20)}")
    return Reply(200, {"code": 0, "msg": "ok", "tenant_access_token": token, "expire": FEISHU_TOKEN_TTL_S})


def _feishu_end_time_problem(end_time: int | None) -> str | None:
    if end_time is None:
        return "end_time must be unix seconds"
    now = utc_now().timestamp()
    if end_time <= now:
        return "end_time must be in the future"
    if end_time > now + FEISHU_RESERVE_REACH.total_seconds():
        return "end_time must be at most 30 days ahead"
    return None


def _feishu_reserve(state: SandboxState, reserve_id: str) -> Meeting | None:
    meeting = state.meetings.get(("feishu", reserve_id))
    return meeting if meeting is not None and meeting.status == "active" else None


def _feishu_reserve_not_found() -> Reply:
    return feishu_error(404, 121004, "reserve not found")


def feishu_reserve_apply(state: SandboxState, request: ProviderRequest) -> Reply:
    body = request.json_object()
    if body is None:
        return feishu_error(400, 99992402, "field validation failed")
    missing = [name for name in ("end_time", "owner_id") if body.get(name) in (None, "")]
    if missing:
        return feishu_error(400, 121003, f"param error: {', '.join(missing)} is required")
    end_time = unix_seconds(body["end_time"])
    if problem := _feishu_end_time_problem(end_time):
        return feishu_error(400, 121003, f"param error: {problem}")
    settings = body.get("meeting_settings") or {}
    if not isinstance(settings, dict):
        return feishu_error(400, 99992402, "field validation failed: meeting_settings")
    reserve_id = state.new_feishu_reserve_id()
    meeting_no = state.new_meeting_no()
    resource = {
        "id": reserve_id,
        "meeting_no": meeting_no,
        "url": f"https://vc.feishu.cn/j/{meeting_no}",
        "app_link": (
            "https://applink.feishu.cn/client/videochat/open?source=openplatform&action=join"
            f"&idtype=reservationid&id={reserve_id}&preview=1&mic=1&speaker=1&camera=1"
        ),
        "live_link": f"https://meetings.feishu.cn/s/{secrets.token_hex(6)}",
        "end_time": str(end_time),
        "expire_status": 1,
        "reserve_user_id": str(body["owner_id"]),
        "meeting_settings": dict(settings),
    }
    state.meetings[("feishu", reserve_id)] = Meeting("feishu", reserve_id, resource)
    return feishu_ok({"reserve": resource})


def feishu_reserve_get(state: SandboxState, request: ProviderRequest, reserve_id: str) -> Reply:
    meeting = _feishu_reserve(state, reserve_id)
    if meeting is None:
        return _feishu_reserve_not_found()
    return feishu_ok({"reserve": meeting.resource})


def feishu_reserve_update(state: SandboxState, request: ProviderRequest, reserve_id: str) -> Reply:
    meeting = _feishu_reserve(state, reserve_id)
    if meeting is None:
        return _feishu_reserve_not_found()
    body = request.json_object()
    if body is None:
        return feishu_error(400, 99992402, "field validation failed")
    end_time = None
    if body.get("end_time") not in (None, ""):
        end_time = unix_seconds(body["end_time"])
        if problem := _feishu_end_time_problem(end_time):
            return feishu_error(400, 121003, f"param error: {problem}")
    settings = body.get("meeting_settings")
    if settings is not None and not isinstance(settings, dict):
        return feishu_error(400, 99992402, "field validation failed: meeting_settings")
    if end_time is not None:
        meeting.resource["end_time"] = str(end_time)
    if settings:
        meeting.resource["meeting_settings"].update(settings)
    return feishu_ok({"reserve": meeting.resource})


def feishu_reserve_delete(state: SandboxState, request: ProviderRequest, reserve_id: str) -> Reply:
    meeting = _feishu_reserve(state, reserve_id)
    if meeting is None:
        return _feishu_reserve_not_found()
    meeting.status = "cancelled"
    meeting.resource["expire_status"] = 2
    return feishu_ok({})


def feishu_primary_calendar(state: SandboxState, request: ProviderRequest) -> Reply:
    calendar = {
        "calendar_id": FEISHU_PRIMARY_CALENDAR_ID,
        "summary": "Sandbox",
        "description": "",
        "permissions": "private",
        "color": -1,
        "type": "primary",
        "summary_alias": "",
        "is_deleted": False,
        "is_third_party": False,
        "role": "owner",
    }
    return feishu_ok({"calendars": [{"calendar": calendar, "user_id": "ou_sandbox_app"}]})


def _feishu_time_problem(value: Any) -> str | None:
    if not isinstance(value, dict):
        return "is required"
    if "timestamp" in value:
        seconds = unix_seconds(value["timestamp"])
        return None if seconds is not None and 0 <= seconds <= LAST_UNIX_SECOND else "timestamp must be unix seconds"
    if isinstance(value.get("date"), str):
        return None
    return "needs timestamp or date"


def _feishu_event_problem(event: dict) -> str | None:
    for name in ("start_time", "end_time"):
        if problem := _feishu_time_problem(event.get(name)):
            return f"{name} {problem}"
    return None


def _feishu_event(state: SandboxState, calendar_id: str, event_id: str) -> CalendarEvent | None:
    event = state.events.get(("feishu", calendar_id, event_id))
    return event if event is not None and event.resource.get("status") != "cancelled" else None


def _feishu_event_not_found() -> Reply:
    return feishu_error(404, 193001, "event not found")


def feishu_event_create(state: SandboxState, request: ProviderRequest, calendar_id: str) -> Reply:
    key = request.query.get("idempotency_key")
    if key and (calendar_id, key) in state.feishu_event_keys:
        # The same key answers with the event it made the first time, not a second event.
        event = state.events[("feishu", calendar_id, state.feishu_event_keys[(calendar_id, key)])]
        return feishu_ok({"event": _feishu_event_body(event.resource)})
    body = request.json_object()
    if body is None:
        return feishu_error(400, 99992402, "field validation failed")
    if problem := _feishu_event_problem(body):
        return feishu_error(400, 190002, f"invalid parameters in request: {problem}")
    event_id = f"{uuid.uuid4()}_0"
    resource = {
        "visibility": "default",
        "attendee_ability": "none",
        "free_busy_status": "busy",
        "color": -1,
        **body,
        "event_id": event_id,
        "organizer_calendar_id": calendar_id,
        "status": "confirmed",
        "is_exception": False,
        "recurring_event_id": "",
        "create_time": str(int(utc_now().timestamp())),
        "app_link": f"https://applink.feishu.cn/client/calendar/event/detail?calendarId={calendar_id}&key={event_id}",
        "attendees": [],
    }
    state.events[("feishu", calendar_id, event_id)] = CalendarEvent("feishu", calendar_id, event_id, resource)
    if key:
        state.feishu_event_keys[(calendar_id, key)] = event_id
    return feishu_ok({"event": _feishu_event_body(resource)})


def _feishu_event_body(resource: dict) -> dict:
    # Feishu answers attendees through their own endpoint, not inside the event.
    return {name: value for name, value in resource.items() if name != "attendees"}


def feishu_event_get(state: SandboxState, request: ProviderRequest, calendar_id: str, event_id: str) -> Reply:
    event = state.events.get(("feishu", calendar_id, event_id))
    if event is None:
        return _feishu_event_not_found()
    return feishu_ok({"event": _feishu_event_body(event.resource)})


def feishu_event_patch(state: SandboxState, request: ProviderRequest, calendar_id: str, event_id: str) -> Reply:
    event = _feishu_event(state, calendar_id, event_id)
    if event is None:
        return _feishu_event_not_found()
    body = request.json_object()
    if body is None:
        return feishu_error(400, 99992402, "field validation failed")
    fixed = ("event_id", "organizer_calendar_id", "status", "attendees", "create_time", "app_link")
    changes = {name: value for name, value in body.items() if name not in fixed}
    if problem := _feishu_event_problem({**event.resource, **changes}):
        return feishu_error(400, 190002, f"invalid parameters in request: {problem}")
    event.resource.update(changes)
    return feishu_ok({"event": _feishu_event_body(event.resource)})


def feishu_event_delete(state: SandboxState, request: ProviderRequest, calendar_id: str, event_id: str) -> Reply:
    event = _feishu_event(state, calendar_id, event_id)
    if event is None:
        return _feishu_event_not_found()
    event.resource["status"] = "cancelled"
    return feishu_ok({})


FEISHU_ATTENDEE_ID_FIELD = {
    "user": "user_id",
    "chat": "chat_id",
    "resource": "room_id",
    "third_party": "third_party_email",
}


def feishu_event_attendees_add(state: SandboxState, request: ProviderRequest, calendar_id: str, event_id: str) -> Reply:
    event = _feishu_event(state, calendar_id, event_id)
    if event is None:
        return _feishu_event_not_found()
    body = request.json_object()
    attendees = body.get("attendees") if body is not None else None
    if not isinstance(attendees, list) or not attendees:
        return feishu_error(400, 190002, "invalid parameters in request: attendees is required")
    for attendee in attendees:
        id_field = FEISHU_ATTENDEE_ID_FIELD.get(attendee.get("type")) if isinstance(attendee, dict) else None
        if id_field is None or not isinstance(attendee.get(id_field), str) or not attendee[id_field]:
            return feishu_error(400, 190002, "invalid parameters in request: attendee type and id are required")
    known = {attendee[FEISHU_ATTENDEE_ID_FIELD[attendee["type"]]]: attendee for attendee in event.resource["attendees"]}
    for attendee in attendees:
        identity = attendee[FEISHU_ATTENDEE_ID_FIELD[attendee["type"]]]
        if identity not in known:
            known[identity] = {
                **attendee,
                "attendee_id": f"{attendee['type']}_{len(known) + 1}",
                "rsvp_status": "needs_action",
                "is_optional": bool(attendee.get("is_optional", False)),
                "is_organizer": False,
                "is_external": attendee["type"] == "third_party",
            }
    event.resource["attendees"] = list(known.values())
    return feishu_ok({"attendees": event.resource["attendees"]})


# ---------------------------------------------------------------------------------------------------------
# Zoom: server-to-server OAuth, meetings


def zoom_authorize(state: SandboxState, request: ProviderRequest) -> Reply | None:
    token_state = state.token_state("zoom", request.bearer_token())
    if token_state == "expired":
        return zoom_error(401, 124, "Access token is expired.")
    if token_state != "valid":
        return zoom_error(401, 124, "Invalid access token.")
    return None


def zoom_oauth_token(state: SandboxState, request: ProviderRequest) -> Reply:
    scheme, _, credentials = (request.headers.get("Authorization") or "").partition(" ")
    try:
        client_id, _, client_secret = base64.b64decode(credentials.strip(), validate=True).decode().partition(":")
    except (binascii.Error, UnicodeDecodeError):
        client_id = client_secret = ""
    if scheme.lower() != "basic" or not client_id or not client_secret:
        return Reply(401, {"reason": "Invalid client_id or client_secret", "error": "invalid_client"})
    # Zoom's docs put the parameters in the query string; form-encoded bodies work as well.
    params = {**request.form(), **request.query}
    if params.get("grant_type") != "account_credentials":
        return Reply(400, {"reason": "unsupported grant type", "error": "unsupported_grant_type"})
    if not params.get("account_id"):
        return Reply(400, {"reason": "Invalid request : Missing account_id.", "error": "invalid_request"})
    token = state.issue_token("zoom", f"eyJzYW5kYm94Ijp0cnVlfQ.{secrets.token_urlsafe(32)}")
    return Reply(
        200,
        {
            "access_token": token,
            "token_type": "bearer",
            "expires_in": ZOOM_TOKEN_TTL_S,
            "scope": "meeting:read:admin meeting:write:admin user:read:admin",
            "api_url": "https://api.zoom.us",
        },
    )


def _zoom_host(user_id: str) -> str:
    return ZOOM_ACCOUNT_OWNER_ID if user_id == "me" else user_id


def _zoom_invalid(field_name: str) -> Reply:
    return zoom_error(400, 300, "Validation Failed.", errors=[{"field": field_name, "message": "Invalid field."}])


def _zoom_meeting_changes(body: dict, current: dict | None) -> dict | Reply:
    """The meeting fields `body` sets, validated as Zoom does, or the 400 it answers."""
    changes: dict[str, Any] = {}
    for name, limit in (("topic", 200), ("agenda", 2000)):
        if name in body:
            if not isinstance(body[name], str) or len(body[name]) > limit:
                return _zoom_invalid(name)
            changes[name] = body[name]
    if "type" in body:
        if body["type"] not in (1, 2, 3, 8, 10):
            return _zoom_invalid("type")
        changes["type"] = body["type"]
    if "duration" in body:
        if isinstance(body["duration"], bool) or not isinstance(body["duration"], int) or body["duration"] < 0:
            return _zoom_invalid("duration")
        changes["duration"] = body["duration"]
    if "timezone" in body:
        if not isinstance(body["timezone"], str):
            return _zoom_invalid("timezone")
        changes["timezone"] = body["timezone"]
    if "start_time" in body:
        zone_name = changes.get("timezone") or (current or {}).get("timezone")
        start = parse_datetime(body["start_time"], zone_name)
        if start is None:
            return _zoom_invalid("start_time")
        changes["start_time"] = iso_utc(start)
    if "settings" in body:
        if not isinstance(body["settings"], dict):
            return _zoom_invalid("settings")
        changes["settings"] = {**(current or {}).get("settings", {}), **body["settings"]}
    return changes


def _zoom_meeting(state: SandboxState, meeting_id: str) -> Meeting | None:
    meeting = state.meetings.get(("zoom", meeting_id))
    return meeting if meeting is not None and meeting.status == "active" else None


def _zoom_meeting_not_found(meeting_id: str) -> Reply:
    return zoom_error(404, 3001, f"Meeting does not exist: {meeting_id}.")


def zoom_meeting_create(state: SandboxState, request: ProviderRequest, user_id: str) -> Reply:
    body = request.json_object()
    if body is None:
        return zoom_error(400, 300, "Request Body should be a valid JSON object.")
    changes = _zoom_meeting_changes(body, None)
    if isinstance(changes, Reply):
        return changes
    meeting_id = state.new_zoom_id()
    password = "".join(state.random.choices("abcdefghjkmnpqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ23456789", k=6))
    host_id = _zoom_host(user_id)
    now = utc_now()
    resource = {
        "uuid": base64.b64encode(secrets.token_bytes(16)).decode(),
        "id": meeting_id,
        "host_id": host_id,
        "host_email": user_id if "@" in user_id else f"{host_id}@sandbox.zoom.us",
        "topic": "Zoom meeting",
        "type": 2,
        "status": "waiting",
        "start_time": iso_utc(now),
        "duration": 60,
        "timezone": "UTC",
        "agenda": "",
        "created_at": iso_utc(now),
        "start_url": f"https://zoom.us/s/{meeting_id}?zak={secrets.token_urlsafe(24)}",
        "join_url": f"https://zoom.us/j/{meeting_id}",
        "password": password,
        "h323_password": f"{state.random.randrange(100000, 1000000)}",
        "pstn_password": f"{state.random.randrange(100000, 1000000)}",
        "encrypted_password": secrets.token_urlsafe(24),
        "settings": {},
        "pre_schedule": False,
        **changes,
    }
    state.meetings[("zoom", str(meeting_id))] = Meeting("zoom", str(meeting_id), resource)
    return Reply(201, resource)


def _zoom_page_offset(token: str) -> int | None:
    if not token:
        return 0
    try:
        kind, _, offset = base64.urlsafe_b64decode(token.encode()).decode().partition(":")
        return int(offset) if kind == "offset" and int(offset) >= 0 else None
    except (binascii.Error, UnicodeDecodeError, ValueError):
        return None


LISTED_FIELDS = ("uuid", "id", "host_id", "topic", "type", "start_time", "duration", "timezone", "agenda")


def zoom_meeting_list(state: SandboxState, request: ProviderRequest, user_id: str) -> Reply:
    try:
        page_size = int(request.query.get("page_size") or ZOOM_PAGE_SIZE_DEFAULT)
    except ValueError:
        return _zoom_invalid("page_size")
    page_size = max(1, min(page_size, ZOOM_PAGE_SIZE_MAX))
    offset = _zoom_page_offset(request.query.get("next_page_token", ""))
    if offset is None:
        return zoom_error(400, 300, "Invalid next_page_token.")
    host_id = _zoom_host(user_id)
    listing = request.query.get("type") or "scheduled"
    now = utc_now()

    def listed(meeting: Meeting) -> bool:
        if meeting.provider != "zoom" or meeting.status != "active" or meeting.resource["host_id"] != host_id:
            return False
        try:
            end = datetime.fromisoformat(meeting.resource["start_time"]) + timedelta(
                minutes=meeting.resource["duration"]
            )
        except OverflowError:
            end = datetime.max.replace(tzinfo=UTC)
        if listing in ("upcoming", "upcoming_meetings"):
            return end > now
        if listing == "previous_meetings":
            return end <= now
        return listing in ("scheduled", "live")

    meetings = sorted(
        (meeting.resource for meeting in state.meetings.values() if listed(meeting)),
        key=lambda resource: (resource["start_time"], resource["id"]),
    )
    page = meetings[offset : offset + page_size]
    more = offset + page_size < len(meetings)
    next_token = base64.urlsafe_b64encode(f"offset:{offset + page_size}".encode()).decode() if more else ""
    return Reply(
        200,
        {
            "page_size": page_size,
            "total_records": len(meetings),
            "next_page_token": next_token,
            "meetings": [
                {
                    **{name: resource[name] for name in LISTED_FIELDS},
                    "created_at": resource["created_at"],
                    "join_url": resource["join_url"],
                }
                for resource in page
            ],
        },
    )


def zoom_meeting_get(state: SandboxState, request: ProviderRequest, meeting_id: str) -> Reply:
    meeting = _zoom_meeting(state, meeting_id)
    if meeting is None:
        return _zoom_meeting_not_found(meeting_id)
    return Reply(200, meeting.resource)


def zoom_meeting_patch(state: SandboxState, request: ProviderRequest, meeting_id: str) -> Reply:
    meeting = _zoom_meeting(state, meeting_id)
    if meeting is None:
        return _zoom_meeting_not_found(meeting_id)
    body = request.json_object()
    if body is None:
        return zoom_error(400, 300, "Request Body should be a valid JSON object.")
    changes = _zoom_meeting_changes(body, meeting.resource)
    if isinstance(changes, Reply):
        return changes
    meeting.resource.update(changes)
    return Reply(204)


def zoom_meeting_delete(state: SandboxState, request: ProviderRequest, meeting_id: str) -> Reply:
    meeting = _zoom_meeting(state, meeting_id)
    if meeting is None:
        return _zoom_meeting_not_found(meeting_id)
    meeting.status = "cancelled"
    return Reply(204)


# ---------------------------------------------------------------------------------------------------------
# Google Calendar v3: events


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


# ---------------------------------------------------------------------------------------------------------
# Routing

Action = Callable[..., Reply]


@dataclass(frozen=True)
class Route:
    method: str
    pattern: re.Pattern
    provider: str
    operation: str  # one of COUNTED
    action: Action


AUTHORIZERS: dict[str, Callable[[SandboxState, ProviderRequest], Reply | None]] = {
    "feishu": feishu_authorize,
    "zoom": zoom_authorize,
    "google": google_authorize,
}

SEGMENT = r"([^/]+)"
FEISHU_EVENTS = rf"/open-apis/calendar/v4/calendars/{SEGMENT}/events"
GOOGLE_EVENTS = rf"/calendar/v3/calendars/{SEGMENT}/events"

ROUTES = [
    Route(method, re.compile(f"^{path}$"), provider, operation, action)
    for method, path, provider, operation, action in [
        ("POST", "/open-apis/auth/v3/tenant_access_token/internal", "feishu", "token", feishu_tenant_token),
        ("POST", "/open-apis/vc/v1/reserves/apply", "feishu", "create", feishu_reserve_apply),
        ("GET", f"/open-apis/vc/v1/reserves/{SEGMENT}", "feishu", "read", feishu_reserve_get),
        ("PUT", f"/open-apis/vc/v1/reserves/{SEGMENT}", "feishu", "update", feishu_reserve_update),
        ("DELETE", f"/open-apis/vc/v1/reserves/{SEGMENT}", "feishu", "cancel", feishu_reserve_delete),
        ("POST", "/open-apis/calendar/v4/calendars/primary", "feishu", "calendar", feishu_primary_calendar),
        ("POST", FEISHU_EVENTS, "feishu", "calendar", feishu_event_create),
        ("GET", f"{FEISHU_EVENTS}/{SEGMENT}", "feishu", "calendar", feishu_event_get),
        ("PATCH", f"{FEISHU_EVENTS}/{SEGMENT}", "feishu", "calendar", feishu_event_patch),
        ("DELETE", f"{FEISHU_EVENTS}/{SEGMENT}", "feishu", "calendar", feishu_event_delete),
        ("POST", f"{FEISHU_EVENTS}/{SEGMENT}/attendees", "feishu", "calendar", feishu_event_attendees_add),
        ("POST", "/oauth/token", "zoom", "token", zoom_oauth_token),
        ("POST", f"/v2/users/{SEGMENT}/meetings", "zoom", "create", zoom_meeting_create),
        ("GET", f"/v2/users/{SEGMENT}/meetings", "zoom", "read", zoom_meeting_list),
        ("GET", f"/v2/meetings/{SEGMENT}", "zoom", "read", zoom_meeting_get),
        ("PATCH", f"/v2/meetings/{SEGMENT}", "zoom", "update", zoom_meeting_patch),
        ("DELETE", f"/v2/meetings/{SEGMENT}", "zoom", "cancel", zoom_meeting_delete),
        ("POST", GOOGLE_EVENTS, "google", "calendar", google_event_insert),
        ("GET", f"{GOOGLE_EVENTS}/{SEGMENT}", "google", "calendar", google_event_get),
        ("PATCH", f"{GOOGLE_EVENTS}/{SEGMENT}", "google", "calendar", google_event_patch),
        ("PUT", f"{GOOGLE_EVENTS}/{SEGMENT}", "google", "calendar", google_event_update),
        ("DELETE", f"{GOOGLE_EVENTS}/{SEGMENT}", "google", "calendar", google_event_delete),
    ]
]


def find_route(method: str, path: str) -> tuple[Route, list[str]] | None:
    for route in ROUTES:
        if route.method == method and (match := route.pattern.match(path)):
            return route, [unquote(value) for value in match.groups()]
    return None


def perform(state: SandboxState, route: Route, request: ProviderRequest, params: list[str]) -> Reply:
    """Apply one provider call: authorise it, maybe fail it on purpose (changing nothing), else act."""
    with state.lock:
        if route.operation != "token":
            if refusal := AUTHORIZERS[route.provider](state, request):
                return refusal
            if state.should_fail(route.operation, route.provider):
                return injected_failure(route.provider, route.operation, state.config["failStatus"])
        return route.action(state, request, *params)


# ---------------------------------------------------------------------------------------------------------
# /_sandbox control endpoints


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
    if body.get("failProvider") not in (None, *AUTHORIZERS):
        return control_error(400, "VALIDATION_ERROR", f"failProvider is null or one of {', '.join(AUTHORIZERS)}.")
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


def serve(state: SandboxState, request: ProviderRequest) -> Reply:
    """The whole life of one request: control endpoints at once, provider calls after the latency."""
    if request.path == "/_sandbox" or request.path.startswith("/_sandbox/"):
        return control(state, request)
    found = find_route(request.method, request.path)
    if found is None:
        return control_error(404, "NOT_FOUND", f"No endpoint {request.method} {request.path}.")
    route, params = found
    state.count(route.operation)
    if (latency := state.latency_seconds()) > 0:
        time.sleep(latency)
    return perform(state, route, request, params)


# ---------------------------------------------------------------------------------------------------------
# HTTP


class SandboxRequestHandler(BaseHTTPRequestHandler):
    # Keep-alive, so load tests do not pay a TCP handshake per call.
    protocol_version = "HTTP/1.1"
    server_version = "ProviderSandbox/1.0"
    # An idle keep-alive connection holds a thread; give it back after a while.
    timeout = 120

    server: SandboxHTTPServer

    def do_GET(self) -> None:
        self._respond()

    do_POST = do_PUT = do_PATCH = do_DELETE = do_GET

    def _respond(self) -> None:
        try:
            raw_body = self._read_body()
        except (ValueError, OSError):
            self.close_connection = True
            self._send(control_error(400, "BAD_REQUEST", "Unreadable request body."))
            return
        url = urlsplit(self.path)
        request = ProviderRequest(
            method=self.command,
            path=url.path,
            query={key: values[0] for key, values in parse_qs(url.query, keep_blank_values=True).items()},
            headers=self.headers,
            raw_body=raw_body,
        )
        try:
            reply = serve(self.server.state, request)
        except Exception:
            # A bug of the sandbox's own: say so plainly rather than pass for a provider's injected failure.
            traceback.print_exc()
            reply = control_error(500, "SANDBOX_BUG", "The sandbox itself failed; see its stderr.")
        self._send(reply)

    def _read_body(self) -> bytes:
        if "chunked" in (self.headers.get("Transfer-Encoding") or "").lower():
            chunks = []
            while (size := int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)) > 0:
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
            while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                pass  # trailers
            return b"".join(chunks)
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length > 0 else b""

    def _send(self, reply: Reply) -> None:
        payload = b"" if reply.body is None else json.dumps(reply.body).encode()
        try:
            self.send_response(reply.status)
            if reply.body is not None:
                self.send_header("Content-Type", "application/json; charset=utf-8")
            self.send_header("Content-Length", str(len(payload)))
            for name, value in reply.headers.items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(payload)
        except OSError:
            # The caller hung up (it timed out while we slept). The operation is applied all the same.
            self.close_connection = True

    def log_request(self, code="-", size="-") -> None:
        if self.server.verbose:
            sys.stderr.write(f"sandbox {self.command} {self.path} {code}\n")

    def log_message(self, format, *args) -> None:
        if self.server.verbose:
            sys.stderr.write(f"sandbox {format % args}\n")


class SandboxHTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    # Hundreds of callers connect at once in load tests; a short backlog would drop their SYNs.
    request_queue_size = 1024
    allow_reuse_address = True

    def __init__(self, address: tuple[str, int], state: SandboxState, *, verbose: bool = False):
        self.state = state
        self.verbose = verbose
        self._connections: set[socket.socket] = set()
        self._connections_lock = threading.Lock()
        super().__init__(address, SandboxRequestHandler)

    def process_request(self, request, client_address) -> None:
        with self._connections_lock:
            self._connections.add(request)
        super().process_request(request, client_address)

    def shutdown_request(self, request) -> None:
        with self._connections_lock:
            self._connections.discard(request)
        super().shutdown_request(request)

    def close_connections(self) -> None:
        """Hang up on every open connection, so keep-alive threads do not outlive the server."""
        with self._connections_lock:
            connections = list(self._connections)
        for connection in connections:
            try:
                connection.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def handle_error(self, request, client_address) -> None:
        # Callers that hang up mid-request are part of the plan (timeouts, load tests): not worth a traceback.
        if isinstance(sys.exception(), ConnectionError | TimeoutError):
            return
        super().handle_error(request, client_address)


class ProviderSandbox:
    """The sandbox server. Binds at construction, so `url` is known before `start()`.

    `start()` serves from a daemon thread and `stop()` ends it; `serve_forever()` serves in the calling
    thread until interrupted. Usable as a context manager (`with ProviderSandbox().start() as sandbox:`).
    """

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        latency_ms: float = 0,
        fail_rate: float = 0.0,
        *,
        verbose: bool = False,
    ):
        self.state = SandboxState(latency_ms=latency_ms, fail_rate=fail_rate)
        self._httpd = SandboxHTTPServer((host, port), self.state, verbose=verbose)
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        host, port = self._httpd.server_address[:2]
        return f"http://{host}:{port}"

    def start(self) -> ProviderSandbox:
        if self._thread is None:
            self._thread = threading.Thread(
                target=self._httpd.serve_forever, kwargs={"poll_interval": 0.1}, name="provider-sandbox", daemon=True
            )
            self._thread.start()
        return self

    def serve_forever(self) -> None:
        """Serve in this thread until interrupted (KeyboardInterrupt, SystemExit), then close."""
        try:
            self._httpd.serve_forever(poll_interval=0.1)
        finally:
            self._close()

    def stop(self) -> None:
        """Stop a sandbox started with `start()`, hang up on its callers and free its port."""
        if self._thread is not None:
            self._httpd.shutdown()
            self._thread.join()
            self._thread = None
        self._close()

    def _close(self) -> None:
        self._httpd.server_close()
        self._httpd.close_connections()

    def __enter__(self) -> ProviderSandbox:
        return self.start()

    def __exit__(self, *exc_info) -> None:
        self.stop()
