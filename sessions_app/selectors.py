"""Every read of sessions used by the API and the admin."""

from datetime import datetime, timedelta
from uuid import UUID

from django.db.models import Count, Exists, OuterRef, Q, QuerySet
from django.utils import timezone

from accounts_app.models import Role, User
from booking_project.errors import NotFound
from meetings_app.models import Meeting
from sessions_app.models import OutboxEvent, Session, SessionStatus, SessionStudent


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


def session_actionable_by(*, viewer: User, session: Session) -> bool:
    """Whether the viewer may act on a session they can see (the booking counselor, or staff)."""
    return _sees_everything(viewer) or session.counselor_id == viewer.id


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


def sessions_pending_meeting_count(*, older_than: timedelta) -> tuple[int, int]:
    """How many sessions wait for their meeting, and how many of them were booked more than `older_than` ago."""
    counts = Session.objects.filter(status=SessionStatus.PENDING_MEETING).aggregate(
        total=Count("id"), late=Count("id", filter=Q(created_at__lt=timezone.now() - older_than))
    )
    return counts["total"], counts["late"]
