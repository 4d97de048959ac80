"""Feishu (Lark) as its open platform answers: the tenant access token, VC reservations (`vc/v1/reserves`)
and Calendar v4 events (PROVIDERS.md "Feishu"). Every answer is `{"code", "msg", "data"}`; a `code` other
than 0 is an error.

An event whose `vchat.vc_type` is "vc" gets a Feishu video meeting of its own, as Feishu makes one: the
answer's `vchat` carries its `meeting_url`, the meeting follows the event's summary and times when the event
is patched, and is cancelled with the event (or when the event's vchat changes to another type). An event
created with no vc_type gets one when its first attendees are added. The app calendar's rules hold: hosts
cannot be assigned, attendees must be allowed to start the meeting, and the owner is set only when the event
first becomes a video meeting. A repeated create with the same `idempotency_key` on the same calendar
answers the first event, and makes no second meeting.
"""

from __future__ import annotations

import secrets
import uuid
from datetime import UTC, date, datetime, timedelta
from typing import Any

from meetings_app.sandbox.state import (
    CalendarEvent,
    Meeting,
    ProviderRequest,
    Reply,
    SandboxState,
    busy_overlapping,
    parse_rfc3339,
    unix_seconds,
    utc_now,
)

FEISHU_TOKEN_TTL_S = 7200
FEISHU_RESERVE_REACH = timedelta(days=30)
FEISHU_PRIMARY_CALENDAR_ID = "feishu.cn_sandbox-primary@group.calendar.feishu.cn"
LAST_UNIX_SECOND = 253_402_300_799  # 9999-12-31T23:59:59Z, the last moment datetime can hold
# vchat.vc_type values a client may write; "lark_live" and "unknown" are read-only.
FEISHU_VC_TYPES = ("vc", "third_party", "no_meeting")
FEISHU_VC_MEETING_SETTINGS = {
    "join_meeting_permission": "anyone_can_join",
    "auto_record": False,
    "open_lobby": True,
    "allow_attendees_start": True,
}
FEISHU_JOIN_PERMISSIONS = ("anyone_can_join", "only_organization_employees", "only_event_attendees")
# reminders[].minutes: before the start when positive, after it when negative.
FEISHU_REMINDER_MINUTES = range(-20160, 20160 + 1)


def feishu_error(status: int, code: int, msg: str, headers: dict[str, str] | None = None) -> Reply:
    return Reply(status, {"code": code, "msg": msg}, headers or {})


def feishu_injected_failure(operation: str, status: int) -> Reply:
    """What Feishu answers when it is overloaded or broken."""
    headers = {"Retry-After": "1"} if status == 429 else {}
    if status == 429:
        headers["X-Ogw-Ratelimit-Limit"] = "50"
        headers["X-Ogw-Ratelimit-Reset"] = "1"
        return feishu_error(status, 99991400, "request trigger frequency limit", headers)
    if operation == "calendar":
        return feishu_error(status, 190003, "internal service error", headers)
    return feishu_error(status, 121001, "internal error", headers)


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
    # A meeting that a calendar event made is no reservation: the reserves API does not know it.
    return meeting if meeting is not None and meeting.status == "active" and meeting.source is None else None


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
    if "date" in value:
        return None if _is_date(value["date"]) else "date must be a date (RFC 3339, e.g. 2018-09-01)"
    return "needs timestamp or date"


def _is_date(value: Any) -> bool:
    try:
        return isinstance(value, str) and len(value) == 10 and date.fromisoformat(value) is not None
    except ValueError:
        return False


def _feishu_event_problem(event: dict) -> str | None:
    for name in ("start_time", "end_time"):
        if problem := _feishu_time_problem(event.get(name)):
            return f"{name} {problem}"
    return _feishu_reminders_problem(event.get("reminders"))


def _feishu_reminders_problem(reminders: Any) -> str | None:
    if reminders is None:
        return None
    if not isinstance(reminders, list) or not all(isinstance(reminder, dict) for reminder in reminders):
        return "reminders must be a list of objects"
    for reminder in reminders:
        minutes = reminder.get("minutes")
        if isinstance(minutes, bool) or not isinstance(minutes, int) or minutes not in FEISHU_REMINDER_MINUTES:
            return "reminders.minutes must be an integer from -20160 to 20160"
    return None


def _feishu_vchat_problem(vchat: Any) -> str | None:
    """What is wrong with the vchat a client sent (None when it sent none)."""
    if vchat is None:
        return None
    if not isinstance(vchat, dict):
        return "vchat must be an object"
    if (vchat.get("vc_type") or "") not in ("", *FEISHU_VC_TYPES):
        return f"vchat.vc_type must be one of {', '.join(FEISHU_VC_TYPES)}"
    settings = vchat.get("meeting_settings")
    if settings is None:
        return None
    if not isinstance(settings, dict):
        return "vchat.meeting_settings must be an object"
    if settings.get("assign_hosts"):
        return "vchat.meeting_settings.assign_hosts cannot be set for an event on an app calendar"
    if settings.get("allow_attendees_start", True) is not True:
        return "vchat.meeting_settings.allow_attendees_start must be true for an event on an app calendar"
    if settings.get("join_meeting_permission", "anyone_can_join") not in FEISHU_JOIN_PERMISSIONS:
        return f"vchat.meeting_settings.join_meeting_permission must be one of {', '.join(FEISHU_JOIN_PERMISSIONS)}"
    return None


def _feishu_event_seconds(value: dict) -> int:
    """Unix seconds of a valid time_info: its timestamp, or midnight UTC of an all-day event's date."""
    if "timestamp" in value:
        return unix_seconds(value["timestamp"])
    return int(datetime.combine(date.fromisoformat(value["date"]), datetime.min.time(), UTC).timestamp())


def _feishu_event_meeting(state: SandboxState, event: CalendarEvent) -> Meeting | None:
    meeting = state.meetings.get(("feishu", event.meeting_id)) if event.meeting_id else None
    return meeting if meeting is not None and meeting.status == "active" else None


def _feishu_follow_event(meeting: Meeting, event: CalendarEvent) -> None:
    """A meeting that an event made carries the event's summary as its topic, and the event's times."""
    meeting.resource["topic"] = event.resource.get("summary") or ""
    meeting.resource["start_time"] = str(_feishu_event_seconds(event.resource["start_time"]))
    meeting.resource["end_time"] = str(_feishu_event_seconds(event.resource["end_time"]))


def _feishu_event_video_meeting(state: SandboxState, event: CalendarEvent, requested: dict) -> None:
    """Give the event a Feishu video meeting (or keep the one it has), and its vchat the meeting's link."""
    meeting = _feishu_event_meeting(state, event)
    settings = dict(requested.get("meeting_settings") or {})
    if meeting is None:
        meeting_id, meeting_no = state.new_feishu_meeting_id(), state.new_meeting_no()
        resource = {
            "id": meeting_id,
            "meeting_no": meeting_no,
            "url": f"https://vc.feishu.cn/j/{meeting_no}",
            # Set only when the event first becomes a video meeting; else the app's calendar owns it.
            "owner_id": settings.get("owner_id"),
            "meeting_settings": {**FEISHU_VC_MEETING_SETTINGS},
            "calendar_id": event.calendar_id,
            "event_id": event.id,
        }
        meeting = Meeting("feishu", meeting_id, resource, source="calendar")
        state.meetings[("feishu", meeting_id)] = meeting
        event.meeting_id = meeting_id
    settings.pop("owner_id", None)
    settings.pop("assign_hosts", None)
    meeting.resource["meeting_settings"].update(settings)
    _feishu_follow_event(meeting, event)
    meeting_settings = dict(meeting.resource["meeting_settings"])
    if meeting.resource["owner_id"]:
        meeting_settings["owner_id"] = meeting.resource["owner_id"]
    # With vc_type "vc" every other vchat field is Feishu's to fill.
    event.resource["vchat"] = {
        "vc_type": "vc",
        "meeting_url": meeting.resource["url"],
        "meeting_settings": meeting_settings,
    }


def _feishu_event_vchat(state: SandboxState, event: CalendarEvent, requested: dict) -> None:
    """Apply the vchat a client sent: a video meeting for "vc"; another type lets go of the event's meeting;
    no type keeps what the event has."""
    vc_type = requested.get("vc_type") or ("vc" if _feishu_event_meeting(state, event) else "")
    if vc_type == "vc":
        _feishu_event_video_meeting(state, event, requested)
        return
    if (meeting := _feishu_event_meeting(state, event)) is not None:
        meeting.status = "cancelled"
    event.meeting_id = None
    event.resource["vchat"] = requested


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
    if problem := _feishu_event_problem(body) or _feishu_vchat_problem(body.get("vchat")):
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
    event = CalendarEvent("feishu", calendar_id, event_id, resource)
    state.events[("feishu", calendar_id, event_id)] = event
    if isinstance(body.get("vchat"), dict):
        _feishu_event_vchat(state, event, body["vchat"])
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
    fixed = ("event_id", "organizer_calendar_id", "status", "attendees", "create_time", "app_link", "vchat")
    changes = {name: value for name, value in body.items() if name not in fixed}
    problem = _feishu_event_problem({**event.resource, **changes}) or _feishu_vchat_problem(body.get("vchat"))
    if problem:
        return feishu_error(400, 190002, f"invalid parameters in request: {problem}")
    event.resource.update(changes)
    if isinstance(body.get("vchat"), dict):
        _feishu_event_vchat(state, event, body["vchat"])
    if (meeting := _feishu_event_meeting(state, event)) is not None:
        _feishu_follow_event(meeting, event)
    return feishu_ok({"event": _feishu_event_body(event.resource)})


def feishu_event_delete(state: SandboxState, request: ProviderRequest, calendar_id: str, event_id: str) -> Reply:
    event = _feishu_event(state, calendar_id, event_id)
    if event is None:
        return _feishu_event_not_found()
    event.resource["status"] = "cancelled"
    if (meeting := _feishu_event_meeting(state, event)) is not None:
        meeting.status = "cancelled"
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
    first_attendees = not event.resource["attendees"]
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
    vchat = event.resource.get("vchat")
    if first_attendees and not (vchat.get("vc_type") if isinstance(vchat, dict) else None):
        # An event that names no vc_type gets a Feishu video meeting when its first attendees are added.
        _feishu_event_video_meeting(state, event, vchat if isinstance(vchat, dict) else {})
    return feishu_ok({"attendees": event.resource["attendees"]})


def _feishu_busy_events(state: SandboxState, open_id: str) -> list[tuple[datetime, datetime]]:
    """The confirmed, busy events of the person's calendar: those they are invited to, and those of a calendar
    that is theirs."""
    intervals = []
    for event in state.events.values():
        resource = event.resource
        if event.provider != "feishu" or resource.get("status") == "cancelled":
            continue
        if resource.get("free_busy_status") == "free":
            continue
        invited = any(
            attendee.get("type") == "user" and attendee.get("user_id") == open_id
            for attendee in resource.get("attendees", [])
        )
        if not (invited or event.calendar_id == open_id):
            continue
        intervals.append(
            (
                datetime.fromtimestamp(_feishu_event_seconds(resource["start_time"]), UTC),
                datetime.fromtimestamp(_feishu_event_seconds(resource["end_time"]), UTC),
            )
        )
    return intervals


def feishu_freebusy_list(state: SandboxState, request: ProviderRequest) -> Reply:
    """A person's busy times, one entry per event (Feishu does not merge them), each overlapping the window."""
    body = request.json_object()
    if body is None:
        return feishu_error(400, 99992402, "field validation failed")
    if request.query.get("user_id_type", "open_id") != "open_id":
        return feishu_error(400, 99992402, "field validation failed: the sandbox knows open_id users only")
    time_min, time_max = parse_rfc3339(body.get("time_min")), parse_rfc3339(body.get("time_max"))
    if time_min is None or time_max is None:
        return feishu_error(400, 190002, "invalid parameters in request: time_min and time_max must be RFC 3339")
    if time_max <= time_min:
        return feishu_error(400, 190002, "invalid parameters in request: time_max must be after time_min")
    user_id = body.get("user_id")
    if not isinstance(user_id, str) or not user_id:
        return feishu_error(400, 190002, "invalid parameters in request: user_id or room_id is required")
    intervals = _feishu_busy_events(state, user_id) + state.busy_set("feishu", user_id)
    return feishu_ok(
        {
            "freebusy_list": [
                {"start_time": start.isoformat(), "end_time": end.isoformat()}
                for start, end in busy_overlapping(intervals, time_min, time_max)
            ]
        }
    )


SEGMENT = r"([^/]+)"
EVENTS = rf"/open-apis/calendar/v4/calendars/{SEGMENT}/events"

# (method, path pattern, operation counted and failed as, handler)
FEISHU_ROUTES = [
    ("POST", "/open-apis/auth/v3/tenant_access_token/internal", "token", feishu_tenant_token),
    ("POST", "/open-apis/vc/v1/reserves/apply", "create", feishu_reserve_apply),
    ("GET", f"/open-apis/vc/v1/reserves/{SEGMENT}", "read", feishu_reserve_get),
    ("PUT", f"/open-apis/vc/v1/reserves/{SEGMENT}", "update", feishu_reserve_update),
    ("DELETE", f"/open-apis/vc/v1/reserves/{SEGMENT}", "cancel", feishu_reserve_delete),
    ("POST", "/open-apis/calendar/v4/calendars/primary", "calendar", feishu_primary_calendar),
    ("POST", EVENTS, "calendar", feishu_event_create),
    ("GET", f"{EVENTS}/{SEGMENT}", "calendar", feishu_event_get),
    ("PATCH", f"{EVENTS}/{SEGMENT}", "calendar", feishu_event_patch),
    ("DELETE", f"{EVENTS}/{SEGMENT}", "calendar", feishu_event_delete),
    ("POST", f"{EVENTS}/{SEGMENT}/attendees", "calendar", feishu_event_attendees_add),
    ("POST", "/open-apis/calendar/v4/freebusy/list", "calendar", feishu_freebusy_list),
]


def feishu_meeting_operation(state: SandboxState, request: ProviderRequest, operation: str, params: list[str]) -> str:
    """A calendar call that makes, moves or ends a Feishu video meeting (vchat vc_type "vc") is a meeting
    create, update or cancel, as the reserves API's are: counted, delayed and failed as one."""
    if operation != "calendar" or not request.path.startswith("/open-apis/calendar/v4/calendars/"):
        return operation
    if request.method == "POST" and request.path.endswith("/events"):
        body = request.json_object() or {}
        vchat = body.get("vchat") if isinstance(body.get("vchat"), dict) else {}
        return "create" if vchat.get("vc_type") == "vc" else operation
    if request.method in ("PATCH", "DELETE") and len(params) == 2:
        with state.lock:
            event = _feishu_event(state, params[0], params[1])
            has_meeting = event is not None and event.meeting_id is not None
        if has_meeting:
            return "update" if request.method == "PATCH" else "cancel"
    return operation
