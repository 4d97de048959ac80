"""Every read of sessions used by the API and the admin."""

from collections.abc import Collection
from datetime import datetime, timedelta
from typing import Any
from uuid import UUID

from django.db import connection
from django.db.models import Count, Exists, OuterRef, Q, QuerySet
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from accounts_app.models import Role, User
from booking_project.errors import NotFound
from meetings_app.models import Meeting, MeetingProvider
from sessions_app.models import (
    MEETING_OPERATION_FINAL_STATES,
    MeetingOperation,
    MeetingOperationKind,
    MeetingOperationState,
    MeetingSaga,
    OutboxEvent,
    Session,
    SessionStatus,
    SessionStudent,
)


def sessions_visible_to(*, viewer: User) -> QuerySet[Session]:
    """Staff see every session; a counselor sees the sessions they booked, and reads those of a student
    assigned to them since (API.md "Authentication")."""
    sessions = Session.objects.select_related("meeting", "saga").prefetch_related("session_students")
    if _sees_everything(viewer):
        return sessions
    if viewer.role != Role.COUNSELOR:
        return sessions.none()
    own_student = SessionStudent.objects.filter(session=OuterRef("pk"), student__profile__counselor=viewer)
    return sessions.filter(Q(counselor=viewer) | Exists(own_student))


def session_get_for_viewer(*, viewer: User, session_id: UUID) -> Session:
    """The session, or NotFound when it does not exist or is not the viewer's (the two look the same)."""
    session = sessions_visible_to(viewer=viewer).filter(id=session_id).first()
    if session is None:
        raise NotFound("No such session.")
    return session


# The lean read (session_poll_for_viewer): one statement, written out because building it with the ORM cost
# several times what PostgreSQL spends running it. Its WHERE is sessions_visible_to's rule: staff (and
# superusers) see everything; a counselor the sessions they booked, and those of a student assigned to them.
SESSION_POLL_SQL = """
SELECT s.id, s.session_type, s.status, s.mentor_id, s.counselor_id, s.scheduled_at, s.duration_minutes,
       s.meeting_provider, s.topic, s.meeting_id, m.meeting_no, m.join_url,
       saga.requires_manual_intervention, s.failure_reason, s.started_at, s.ended_at,
       ARRAY(SELECT st.student_id FROM sessions_app_sessionstudent st
             WHERE st.session_id = s.id ORDER BY st.position) AS student_ids
FROM sessions_app_session s
LEFT JOIN meetings_app_meeting m ON m.id = s.meeting_id
LEFT JOIN sessions_app_meetingsaga saga ON saga.session_id = s.id
WHERE s.id = %(session_id)s
  AND (%(sees_everything)s
       OR s.counselor_id = %(viewer_id)s
       OR EXISTS (SELECT 1 FROM sessions_app_sessionstudent own
                  JOIN accounts_app_profile profile ON profile.user_id = own.student_id
                  WHERE own.session_id = s.id AND profile.counselor_id = %(viewer_id)s))
"""
SESSION_POLL_COLUMNS = (
    "id",
    "session_type",
    "status",
    "mentor_id",
    "counselor_id",
    "scheduled_at",
    "duration_minutes",
    "meeting_provider",
    "topic",
    "meeting_id",
    "meeting_no",
    "join_url",
    "requires_manual_intervention",
    "failure_reason",
    "started_at",
    "ended_at",
    "student_ids",
)


def session_poll_for_viewer(*, viewer: User, session_id: UUID) -> dict[str, Any]:
    """The session as the counselor page polls it, in one query: its columns, its meeting's number and link,
    its saga's flag and `student_ids` in booking order (SESSION_POLL_COLUMNS), to exactly the viewers
    sessions_visible_to lets see it. NotFound as session_get_for_viewer."""
    sees_everything = _sees_everything(viewer)
    if not sees_everything and viewer.role != Role.COUNSELOR:
        raise NotFound("No such session.")
    with connection.cursor() as cursor:
        cursor.execute(
            SESSION_POLL_SQL, {"session_id": session_id, "sees_everything": sees_everything, "viewer_id": viewer.id}
        )
        row = cursor.fetchone()
    if row is None:
        raise NotFound("No such session.")
    return dict(zip(SESSION_POLL_COLUMNS, row, strict=True))


def session_get_for_actor(*, actor: User, session_id: UUID) -> Session:
    """The session the actor may act on: one they booked (staff: any). Anything else, including a session
    they can only read, is NotFound, so ids cannot be probed."""
    sessions = Session.objects.select_related("meeting", "saga").prefetch_related("session_students")
    if not _sees_everything(actor):
        sessions = sessions.filter(counselor=actor) if actor.role == Role.COUNSELOR else sessions.none()
    session = sessions.filter(id=session_id).first()
    if session is None:
        raise NotFound("No such session.")
    return session


def _sees_everything(viewer: User) -> bool:
    return viewer.role == Role.STAFF or viewer.is_superuser


def session_list_for_viewer(
    *,
    viewer: User,
    status: str | None = None,
    session_type: str | None = None,
    starts_from: datetime | None = None,
    starts_before: datetime | None = None,
) -> QuerySet[Session]:
    """The viewer's sessions, newest booking first, filtered by status, type and start time [from, to)."""
    sessions = sessions_visible_to(viewer=viewer)
    if status:
        sessions = sessions.filter(status=status)
    if session_type:
        sessions = sessions.filter(session_type=session_type)
    if starts_from:
        sessions = sessions.filter(scheduled_at__gte=starts_from)
    if starts_before:
        sessions = sessions.filter(scheduled_at__lt=starts_before)
    return sessions.order_by("-created_at", "-id")


# A cancelled or failed session's meeting is gone (or never was): its link is never shown or sent.
MEETING_SHOWN_STATUSES = frozenset({SessionStatus.SCHEDULED, SessionStatus.IN_PROGRESS, SessionStatus.COMPLETED})


def session_joinable_meeting(session: Session) -> Meeting | None:
    """The meeting to show or send for this session: None for a CANCELLED or MEETING_FAILED one, so no page,
    answer or email ever carries a dead link."""
    if session.status not in MEETING_SHOWN_STATUSES or not session.meeting_id:
        return None
    return session.meeting


def outbox_event_get(*, event_id: UUID) -> OutboxEvent | None:
    """The recorded integration event, or None when this database does not have it (tests, restores)."""
    return OutboxEvent.objects.filter(id=event_id).first()


def session_get_current(*, session_id: UUID) -> Session | None:
    """The session as it stands now, with its meeting and students: what notifications converge to."""
    return Session.objects.select_related("meeting").prefetch_related("session_students").filter(id=session_id).first()


def sessions_pending_meeting_count(
    *, older_than: timedelta, excluding_providers: Collection[str] = ()
) -> tuple[int, int]:
    """How many sessions wait for their meeting, and how many of them were booked more than `older_than` ago
    (those of `excluding_providers`, paused by an operator, are not late: they wait on purpose)."""
    late = Q(created_at__lt=timezone.now() - older_than) & ~Q(meeting_provider__in=list(excluding_providers))
    counts = Session.objects.filter(status=SessionStatus.PENDING_MEETING).aggregate(
        total=Count("id"), late=Count("id", filter=late)
    )
    return counts["total"], counts["late"]


def sessions_waiting_for_providers(*, session_ids: Collection[UUID], providers: Collection[str]) -> dict[UUID, str]:
    """Of these sessions, those whose meeting work waits for one of `providers` (paused by an operator), and
    what waits: "create" (the session is PENDING_MEETING) or "change" (a cancel or move of its meeting is
    unfinished). One query for the creates, one for the changes."""
    if not session_ids or not providers:
        return {}
    waiting: dict[UUID, str] = {}
    changes = MeetingOperation.objects.filter(
        session_id__in=list(session_ids), session__meeting_provider__in=list(providers)
    ).exclude(state__in=list(MEETING_OPERATION_FINAL_STATES))
    for session_id in changes.values_list("session_id", flat=True):
        waiting[session_id] = "change"
    creates = Session.objects.filter(
        id__in=list(session_ids), status=SessionStatus.PENDING_MEETING, meeting_provider__in=list(providers)
    )
    for session_id in creates.values_list("id", flat=True):
        waiting[session_id] = "create"
    return waiting


# What a counselor is told about a session waiting for a person, in plain words (operators read the reasons).
PROVIDER_NAMES = {MeetingProvider.FEISHU: _("Feishu"), MeetingProvider.ZOOM: _("Zoom")}
OPERATION_FAILED_WORDS = {
    MeetingOperationKind.CANCEL: _(
        "The meeting could not be cancelled at %(provider)s; an operator has been asked to remove it."
    ),
    MeetingOperationKind.UPDATE: _(
        "The meeting could not be moved at %(provider)s; an operator has been asked to move it to the new time."
    ),
}
SAGA_FLAGGED_WORDS = _(
    "Something about this session's meeting at %(provider)s needs a check; an operator has been asked to look at it."
)
NOTIFICATION_WORDS = {
    "email": _("An email about this session could not be sent; an operator has been asked to look at it."),
    "calendar": _("A calendar event for this session could not be updated; an operator has been asked to fix it."),
    "reminders": _("A reminder for this session could not be sent; an operator has been asked to look at it."),
}


def sessions_attention(*, sessions: list[Session]) -> dict[UUID, list[str]]:
    """Why each of these sessions waits for a person, in the counselor's words and language: a meeting the
    provider would not cancel or move, another reason the saga asked an operator, a notification that gave
    up. Sessions nobody needs to look at are absent. A fixed number of queries for the whole list."""
    from notifications_app.selectors import notifications_needing_person

    by_id = {s.id: s for s in sessions}
    attention: dict[UUID, list[str]] = {}
    flagged = MeetingSaga.objects.filter(session_id__in=by_id, requires_manual_intervention=True).values_list(
        "session_id", "manual_intervention_reason"
    )
    open_reasons = {session_id: reason for session_id, reason in flagged}
    # A failed operation asked through the saga with its own reason; once an operator resolved the saga, the
    # operation's row stays FAILED but nobody is waiting any more.
    failed = MeetingOperation.objects.filter(
        session_id__in=open_reasons, state=MeetingOperationState.FAILED
    ).values_list("session_id", "kind", "last_error")
    kinds: dict[UUID, set[str]] = {}
    told: dict[UUID, set[str]] = {}
    for session_id, kind, last_error in failed:
        if last_error and last_error in open_reasons[session_id]:
            kinds.setdefault(session_id, set()).add(kind)
            told.setdefault(session_id, set()).add(last_error)
    for session_id, reasons in open_reasons.items():
        provider = _provider_name(by_id[session_id])
        failed_kinds = kinds.get(session_id, set())
        words = [
            OPERATION_FAILED_WORDS[k] % {"provider": provider} for k in MeetingOperationKind.values if k in failed_kinds
        ]
        untold = [line for line in reasons.split("\n") if line and line not in told.get(session_id, set())]
        if untold or not words:
            words.append(SAGA_FLAGGED_WORDS % {"provider": provider})
        attention[session_id] = [str(w) for w in words]
    for session_id, channels in notifications_needing_person(session_ids=by_id).items():
        attention.setdefault(session_id, []).extend(
            str(NOTIFICATION_WORDS[c]) for c in ("email", "calendar", "reminders") if c in channels
        )
    return attention


def session_attention(session: Session) -> list[str]:
    """Why this session waits for a person (see sessions_attention); empty when nobody needs to look."""
    return sessions_attention(sessions=[session]).get(session.id, [])


def _provider_name(session: Session) -> str:
    return str(PROVIDER_NAMES.get(session.meeting_provider, session.meeting_provider))
