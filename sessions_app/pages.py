"""The counselor web UI: server-rendered pages behind Django login.

The pages only read (through the selectors) what they show on first paint; every write — book, retry, cancel,
reschedule — is made by the page's JavaScript against the REST API of API.md, with the session cookie and the
CSRF token, so the UI and API clients share one contract and one set of rules.
"""

from __future__ import annotations

from functools import wraps
from typing import Any
from uuid import UUID
from zoneinfo import ZoneInfo

from django.conf import settings
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import redirect, render
from django.utils import timezone
from django.utils.translation import gettext_lazy as _
from django.views.decorators.http import require_GET

from accounts_app.models import Role, User
from accounts_app.selectors import mentors_list, people_get_by_ids, person_time_zone, students_of_counselor
from booking_project.errors import NotFound, error_body
from meetings_app.models import MeetingProvider
from meetings_app.selectors import providers_paused
from sessions_app.apis import session_representation
from sessions_app.models import SessionStatus
from sessions_app.selectors import (
    PROVIDER_NAMES,
    session_get_for_viewer,
    session_list_for_viewer,
    sessions_attention,
    sessions_visible_to,
    sessions_waiting_for_providers,
)
from sessions_app.types import SESSION_TYPES

# The UI's words for the registry's types and the state machine's statuses (translated; the API keeps codes).
SESSION_TYPE_LABELS = {
    "regular_mentoring": _("Regular mentoring"),
    "gap_analysis": _("Gap analysis"),
    "ai_career": _("AI career session"),
    "comm_session": _("Communication session"),
    "class_session": _("Class"),
}
STATUS_LABELS = {
    SessionStatus.PENDING_MEETING: _("Creating meeting link"),
    SessionStatus.SCHEDULED: _("Scheduled"),
    SessionStatus.IN_PROGRESS: _("In progress"),
    SessionStatus.COMPLETED: _("Completed"),
    SessionStatus.MEETING_FAILED: _("Meeting failed"),
    SessionStatus.CANCELLED: _("Cancelled"),
}
LIST_SIZE = 50
# The most sessions one attention request asks about: a page lists at most LIST_SIZE.
ATTENTION_MAX_IDS = 100


def counselor_required(view):
    """Logged-in counselors only: anyone else logged in sees a plain 403 page, not someone's data."""

    @login_required
    @wraps(view)
    def wrapper(request: HttpRequest, *args, **kwargs) -> HttpResponse:
        if request.user.role != Role.COUNSELOR:
            return render(request, "counselor/forbidden.html", status=403)
        return view(request, *args, **kwargs)

    return wrapper


@require_GET
def root_page(request: HttpRequest) -> HttpResponse:
    return redirect("counselor-sessions")


@require_GET
@counselor_required
def sessions_page(request: HttpRequest) -> HttpResponse:
    """Book a session and see one's sessions (filtered by status and type; the script keeps them fresh)."""
    counselor = request.user
    status = request.GET.get("status") if request.GET.get("status") in SessionStatus.values else ""
    session_type = request.GET.get("type") if request.GET.get("type") in SESSION_TYPES else ""
    listed = list(
        session_list_for_viewer(viewer=counselor, status=status or None, session_type=session_type or None)[:LIST_SIZE]
    )
    sessions = _with_attention(listed)
    students = students_of_counselor(counselor=counselor)
    mentors = mentors_list()
    context = {
        "ui": _ui_config(request, counselor=counselor, people=[*students, *mentors], sessions=sessions),
        "initial_sessions": sessions,
        "students": students,
        "mentors": mentors,
        "session_types": [(t.name, SESSION_TYPE_LABELS[t.name]) for t in SESSION_TYPES.values()],
        "statuses": list(STATUS_LABELS.items()),
        "providers": MeetingProvider.choices,
        "default_provider": settings.DEFAULT_MEETING_PROVIDER,
        "filter_status": status,
        "filter_type": session_type,
        "provider_paused": _provider_paused_notice(sessions),
    }
    return render(request, "counselor/sessions.html", context)


@require_GET
@counselor_required
def session_page(request: HttpRequest, session_id: UUID) -> HttpResponse:
    """One session: its status, link and actions. Another counselor's session is 404, like in the API."""
    counselor = request.user
    try:
        session = session_get_for_viewer(viewer=counselor, session_id=session_id)
    except NotFound:
        return render(request, "counselor/not_found.html", status=404)
    (data,) = _with_attention([session])
    people = people_get_by_ids(ids=[session.mentor_id, *session.student_ids])
    tz = ZoneInfo(person_time_zone(user=counselor))
    context = {
        "ui": _ui_config(request, counselor=counselor, people=list(people.values()), sessions=[data]),
        "session": data,
        "initial_sessions": [data],
        "type_label": SESSION_TYPE_LABELS.get(session.session_type, session.session_type),
        "status_label": STATUS_LABELS.get(session.status, session.status),
        "mentor_name": _name(people.get(session.mentor_id)),
        "student_names": [_name(people.get(s)) for s in session.student_ids],
        "starts_at": timezone.localtime(session.scheduled_at, tz),
        "started_at": timezone.localtime(session.started_at, tz) if session.started_at else None,
        "ended_at": timezone.localtime(session.ended_at, tz) if session.ended_at else None,
        "time_zone": str(tz),
        "provider_paused": _provider_paused_notice([data]),
    }
    return render(request, "counselor/session.html", context)


def _provider_paused_notice(sessions: list[dict]) -> dict[str, Any]:
    """For templates/counselor/_provider_paused.html: the providers an operator paused that shown sessions wait
    for, and each such session with its provider's name and what waits ("create": its meeting; "change": a
    cancel or move of it). Nothing (one query) when no provider is paused."""
    paused = providers_paused()
    if not paused:
        return {}
    ids = {str(s["sessionId"]): s for s in sessions}
    waiting = sessions_waiting_for_providers(session_ids=[UUID(i) for i in ids], providers=paused)
    notices = [
        {
            "sessionId": str(session_id),
            "provider": str(PROVIDER_NAMES.get(ids[str(session_id)]["meetingProvider"], "")),
            "waits": waits,
        }
        for session_id, waits in waiting.items()
    ]
    return {"providers": sorted({n["provider"] for n in notices}), "sessions": notices}


@require_GET
@counselor_required
def attention_page(request: HttpRequest) -> JsonResponse:
    """Why the listed sessions wait for a person, for the page's script to keep the words fresh while it polls:
    `?ids=<uuid>,<uuid>` -> {"attention": {"<id>": ["..."]}}. Sessions not the counselor's are left out."""
    raw = [part for part in request.GET.get("ids", "").split(",") if part]
    try:
        ids = {UUID(part) for part in raw}
    except ValueError:
        return JsonResponse(
            error_body("VALIDATION_ERROR", "ids must be session ids.", {"ids": ["Not a UUID."]}), status=400
        )
    if len(ids) > ATTENTION_MAX_IDS:
        details = {"ids": [f"At most {ATTENTION_MAX_IDS} ids."]}
        return JsonResponse(error_body("VALIDATION_ERROR", "Too many ids.", details), status=400)
    sessions = list(sessions_visible_to(viewer=request.user).filter(id__in=ids)) if ids else []
    attention = sessions_attention(sessions=sessions)
    return JsonResponse({"attention": {str(s.id): attention.get(s.id, []) for s in sessions}})


def _with_attention(sessions: list) -> list[dict[str, Any]]:
    """The API's shape of each session, plus the words of the operators' queue the page shows on it."""
    attention = sessions_attention(sessions=sessions)
    return [{**session_representation(s), "attention": attention.get(s.id, [])} for s in sessions]


def _name(person: User | None) -> str:
    if person is None:
        return "—"
    return person.get_full_name() or person.username


def _ui_config(request: HttpRequest, *, counselor: User, people: list[User], sessions: list[dict]) -> dict[str, Any]:
    """What the page's script needs to speak to the API and to a person: names instead of ids, times in the
    counselor's time zone, the words for codes. Rendered with json_script, never as markup."""
    known = {p.id for p in people}
    unknown = {UUID(str(i)) for s in sessions for i in [s["mentorId"], *s["studentIds"]] if UUID(str(i)) not in known}
    people = [*people, *people_get_by_ids(ids=unknown).values()] if unknown else people
    return {
        "apiBase": "/api/counselor/sessions",
        # The free starts for the chosen people, duration and day (API.md "Availability").
        "availabilityUrl": "/api/counselor/availability",
        # A session is acted on by the counselor who booked it; one of a student assigned later is only read.
        "counselorId": str(counselor.id),
        "sessionPage": "/app/sessions/{id}/",
        "attentionUrl": "/app/sessions/attention/",
        "timeZone": person_time_zone(user=counselor),
        "language": request.LANGUAGE_CODE,
        "pollMs": settings.UI_POLL_INTERVAL_MS,
        "patienceSeconds": settings.UI_MEETING_PATIENCE_SECONDS,
        "people": {str(p.id): _name(p) for p in people},
        "sessionTypes": {
            name: {
                "label": str(SESSION_TYPE_LABELS[name]),
                "several": t.max_students > 1,
                "duration": t.default_duration,
            }
            for name, t in SESSION_TYPES.items()
        },
        "statuses": {code: str(label) for code, label in STATUS_LABELS.items()},
    }
