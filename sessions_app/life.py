"""The session's life after booking: the clock and the providers move it (API.md "Act", "Provider events").

SCHEDULED → IN_PROGRESS at its start, or when the provider reports the meeting started; IN_PROGRESS (or a
SCHEDULED one whose start was never seen) → COMPLETED, its held units spent, when the provider reports the
meeting ended or AUTO_COMPLETE_AFTER_MINUTES after the scheduled end, whichever comes first. Every move is a
compare-and-set on a row claimed with SKIP LOCKED, so two beats, a beat and a webhook, or a webhook delivered
twice change a session once. Each move records `{type}.session.started` / `.completed`, which the
notifications follow (the reminders not yet sent are superseded).
"""

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from uuid import UUID

from django.conf import settings
from django.db import transaction
from django.db.models import DurationField, ExpressionWrapper, F
from django.utils import timezone

from accounts_app.models import User
from booking_project.events import SESSION_COMPLETED, SESSION_STARTED
from holds_app.services import holds_consume
from meetings_app.models import Meeting
from meetings_app.provider_events import meeting_listener
from sessions_app.audit import audit_change, audit_state
from sessions_app.models import AuditAction, Session, SessionStatus
from sessions_app.outbox import outbox_event_add
from sessions_app.payloads import session_lived_payload
from sessions_app.transitions import session_transition
from sessions_app.types import session_type_get

logger = logging.getLogger(__name__)

# What the clock reads and moves; the provider events also move a SCHEDULED session straight to COMPLETED
# when its start event was lost.
_STARTABLE = (SessionStatus.SCHEDULED,)
COMPLETABLE_STATUSES = (SessionStatus.SCHEDULED, SessionStatus.IN_PROGRESS)
# How many sessions one tick moves at most, per kind of move; the next tick takes the rest.
CLOCK_BATCH_SIZE = 200


@dataclass(frozen=True)
class ClockTick:
    started: int
    completed: int


def sessions_clock_tick(*, now: datetime | None = None, batch_size: int = CLOCK_BATCH_SIZE) -> ClockTick:
    """Start every SCHEDULED session whose start has come, and complete every session whose scheduled end is
    AUTO_COMPLETE_AFTER_MINUTES past. Completion goes first, so a session whose whole time passed unseen (the
    beat was down) is completed once rather than started then completed."""
    now = now or timezone.now()
    ends_at = F("scheduled_at") + ExpressionWrapper(
        F("duration_minutes") * timedelta(minutes=1), output_field=DurationField()
    )
    due_to_complete = (
        Session.objects.filter(status__in=COMPLETABLE_STATUSES)
        .alias(ends_at=ends_at)
        .filter(ends_at__lte=now - timedelta(minutes=settings.AUTO_COMPLETE_AFTER_MINUTES))
    )
    completed = sum(
        _session_claim_and(session_id, statuses=COMPLETABLE_STATUSES, move=_complete_by_clock)
        for session_id in _due_ids(due_to_complete, batch_size)
    )
    due_to_start = Session.objects.filter(status__in=_STARTABLE, scheduled_at__lte=now)
    started = sum(
        _session_claim_and(session_id, statuses=_STARTABLE, move=_start_by_clock)
        for session_id in _due_ids(due_to_start, batch_size)
    )
    if started or completed:
        logger.info("sessions.clock_moved", extra={"started": started, "completed": completed})
    return ClockTick(started=started, completed=completed)


def _due_ids(sessions, batch_size: int) -> list[UUID]:
    return list(sessions.order_by("scheduled_at").values_list("id", flat=True)[:batch_size])


def _session_claim_and(session_id: UUID, *, statuses, move) -> bool:
    """Lock the session if no one else holds it and it is still in `statuses`, and move it, in one transaction.
    False when another beat or a webhook has it, or moved it first."""
    with transaction.atomic():
        session = (
            Session.objects.select_for_update(skip_locked=True)
            .filter(id=session_id, status__in=statuses)
            .prefetch_related("session_students")
            .first()
        )
        if session is None:
            return False
        move(session)
        return True


def _start_by_clock(session: Session) -> None:
    session_start(session=session, started_at=None, via="clock")


def _complete_by_clock(session: Session) -> None:
    session_finish(session=session, ended_at=None, actor=None, via="clock")


# ---------------------------------------------------------------------------------------------------------
# The moves, in the caller's transaction, on a session it has locked


def session_start(*, session: Session, started_at: datetime | None, via: str) -> Session:
    """SCHEDULED → IN_PROGRESS, with the real start when the provider reported it."""
    before = audit_state(session)
    moved = session_transition(
        session_id=session.id, to=SessionStatus.IN_PROGRESS, expected=session.status, started_at=started_at
    )
    moved.student_ids = session.student_ids
    _lived_event_add(moved, SESSION_STARTED)
    audit_change(session=moved, before=before, action=AuditAction.STARTED, actor=None, via=via)
    logger.info("session.started", extra={"sessionId": str(session.id), "via": via})
    return moved


def session_finish(
    *, session: Session, ended_at: datetime | None, actor: User | None, via: str, started_at: datetime | None = None
) -> Session:
    """SCHEDULED/IN_PROGRESS → COMPLETED: the session took place, its held units are spent."""
    before = audit_state(session)
    fields = {"ended_at": ended_at}
    if started_at is not None and session.started_at is None:
        fields["started_at"] = started_at
    moved = session_transition(session_id=session.id, to=SessionStatus.COMPLETED, expected=session.status, **fields)
    moved.student_ids = session.student_ids
    holds_consume(session_id=session.id)
    _lived_event_add(moved, SESSION_COMPLETED)
    audit_change(session=moved, before=before, action=AuditAction.COMPLETED, actor=actor, via=via)
    logger.info("session.completed", extra={"sessionId": str(session.id), "via": via})
    return moved


def _lived_event_add(session: Session, kind: str) -> None:
    outbox_event_add(type=session_type_get(session.session_type).event(kind), payload=session_lived_payload(session))


# ---------------------------------------------------------------------------------------------------------
# What the providers report (meetings_app.provider_events calls these through its listener)


def session_meeting_started(*, meeting_id: UUID, at: datetime, via: str) -> bool:
    """The provider says the session's meeting began at `at`: a SCHEDULED session goes IN_PROGRESS; one the
    clock already started learns its real start. A cancelled, failed or unknown session, or a start already
    known, changes nothing. Returns whether anything changed. Runs in the caller's transaction."""
    session = _session_of_meeting_lock(meeting_id)
    if session is None:
        return False
    if session.status == SessionStatus.SCHEDULED:
        session_start(session=session, started_at=at, via=via)
        return True
    if session.status in (SessionStatus.IN_PROGRESS, SessionStatus.COMPLETED) and session.started_at is None:
        Session.objects.filter(id=session.id).update(started_at=at, updated_at=timezone.now())
        return True
    return False


def session_meeting_ended(*, meeting_id: UUID, at: datetime, via: str, started_at: datetime | None = None) -> bool:
    """The provider says the session's meeting ended at `at`: a SCHEDULED or IN_PROGRESS session is COMPLETED
    (its units spent); one the clock already completed learns its real end. Returns whether anything changed."""
    session = _session_of_meeting_lock(meeting_id)
    if session is None:
        return False
    if session.status in COMPLETABLE_STATUSES:
        session_finish(session=session, ended_at=at, actor=None, via=via, started_at=started_at)
        return True
    if session.status == SessionStatus.COMPLETED and session.ended_at is None:
        Session.objects.filter(id=session.id).update(ended_at=at, updated_at=timezone.now())
        return True
    return False


@meeting_listener
def session_meeting_reported(*, meeting: Meeting, happened: str, at: datetime) -> None:
    """meetings_app's listener: a provider's webhook said the session's meeting started or ended. Runs in the
    transaction that records the event, so a failure here leaves it unrecorded for the provider to redeliver."""
    via = f"{meeting.provider}_webhook"
    if happened == "started":
        session_meeting_started(meeting_id=meeting.id, at=at, via=via)
    elif happened == "ended":
        session_meeting_ended(meeting_id=meeting.id, at=at, via=via)


def _session_of_meeting_lock(meeting_id: UUID) -> Session | None:
    # A meeting serves one session; waiting for its lock (not skipping) keeps a webhook from being lost to a
    # clock tick that holds the row for a moment.
    return (
        Session.objects.select_for_update(of=("self",))
        .filter(meeting_id=meeting_id)
        .prefetch_related("session_students")
        .first()
    )
