"""Zoom as its API answers: Server-to-Server OAuth (`/oauth/token`) and meetings under `/v2`
(PROVIDERS.md "Zoom"). Errors are `{"code", "message"}`."""

from __future__ import annotations

import base64
import binascii
import secrets
from datetime import datetime, timedelta
from typing import Any

from meetings_app.sandbox.state import Meeting, ProviderRequest, Reply, SandboxState, iso_utc, parse_datetime, utc_now

ZOOM_TOKEN_TTL_S = 3600
ZOOM_ACCOUNT_OWNER_ID = "sandboxAccountOwner01"  # who `me` is for this account's server-to-server app
ZOOM_PAGE_SIZE_DEFAULT = 30
ZOOM_PAGE_SIZE_MAX = 300


def zoom_error(status: int, code: int, message: str, headers: dict[str, str] | None = None, **extra) -> Reply:
    return Reply(status, {"code": code, "message": message, **extra}, headers or {})


def zoom_injected_failure(operation: str, status: int) -> Reply:
    """What Zoom answers when it is overloaded or broken."""
    headers = {"Retry-After": "1"} if status == 429 else {}
    if status == 429:
        headers.update({"X-RateLimit-Limit": "30", "X-RateLimit-Remaining": "0", "X-RateLimit-Type": "QPS"})
        message = "You have reached the maximum per-second rate limit for this API. Try again later."
        return zoom_error(status, 429, message, headers)
    return zoom_error(status, status, "The server encountered an error. Try again later.", headers)


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


INSTANT_MEETING = 1
SCHEDULED_MEETING = 2
# A scheduled (non-recurring) meeting's id expires 30 days after its scheduled date; then Zoom lists it no more.
SCHEDULED_MEETING_LIFETIME = timedelta(days=30)


def _expired(resource: dict, now: datetime) -> bool:
    if resource["type"] != SCHEDULED_MEETING:
        return False
    try:
        return datetime.fromisoformat(resource["start_time"]) + SCHEDULED_MEETING_LIFETIME < now
    except OverflowError:  # a start near the end of time never expires
        return False


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
        resource = meeting.resource
        if meeting.provider != "zoom" or meeting.status != "active" or resource["host_id"] != host_id:
            return False
        if resource["type"] == INSTANT_MEETING:
            return False  # the list answers scheduled meetings only
        start = datetime.fromisoformat(resource["start_time"])
        if listing in ("upcoming", "upcoming_meetings"):
            return start > now  # a meeting whose start has passed is no longer upcoming
        if _expired(resource, now):
            return False
        if listing == "previous_meetings":
            return start <= now
        return listing in ("scheduled", "live")  # scheduled: every unexpired one, past start included

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


SEGMENT = r"([^/]+)"

# (method, path pattern, operation counted and failed as, handler)
ZOOM_ROUTES = [
    ("POST", "/oauth/token", "token", zoom_oauth_token),
    ("POST", f"/v2/users/{SEGMENT}/meetings", "create", zoom_meeting_create),
    ("GET", f"/v2/users/{SEGMENT}/meetings", "read", zoom_meeting_list),
    ("GET", f"/v2/meetings/{SEGMENT}", "read", zoom_meeting_get),
    ("PATCH", f"/v2/meetings/{SEGMENT}", "update", zoom_meeting_patch),
    ("DELETE", f"/v2/meetings/{SEGMENT}", "cancel", zoom_meeting_delete),
]
