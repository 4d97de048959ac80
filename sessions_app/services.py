"""Every write to sessions goes through here."""

import logging
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from accounts_app.models import Role, User
from accounts_app.selectors import PersonStanding, people_get_by_ids, people_standing, person_standing_of
from booking_project.errors import ApplicationError, InvalidState, NotFound, SlotConflict
from booking_project.one_statement import Part, parts_run, rows_insert, rows_saved
from calendar_app.models import CalendarSlot
from calendar_app.services import (
    slots_book,
    slots_cancel,
    slots_conflicting,
    slots_exclusion_checked,
    slots_move,
    slots_new,
)
from holds_app.services import (
    entitlements_lock,
    holds_balance_check,
    holds_release,
    holds_take,
    holds_take_parts,
)
from meetings_app.providers.feishu import RESERVE_MAX_DAYS_AHEAD as FEISHU_RESERVE_MAX_DAYS_AHEAD
from sessions_app.audit import audit_change, audit_entry_new, audit_state
from sessions_app.availability import availability_suggestions
from sessions_app.idempotency import (
    IdempotentRequest,
    idempotency_claim,
    idempotency_record_new,
)
from sessions_app.life import COMPLETABLE_STATUSES, session_finish
from sessions_app.meeting_operations import meeting_operation_start
from sessions_app.models import (
    AuditAction,
    MeetingOperationKind,
    Session,
    SessionStatus,
    SessionStudent,
)
from sessions_app.outbox import outbox_event_add, outbox_event_new, outbox_event_recorded
from sessions_app.payloads import session_created_payload
from sessions_app.rules import booking_horizon_end, provider_latest_end
from sessions_app.saga import saga_new, saga_restart
from sessions_app.transitions import session_transition
from sessions_app.types import SessionType, session_type_get

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class BookingOutcome:
    session: Session
    # Set when an Idempotency-Key matched an earlier booking: the first answer, to be sent again.
    replayed_response: dict[str, Any] | None = None


def booking_rules_check(
    *,
    session_type: SessionType,
    student_ids: list[UUID],
    mentor_id: UUID,
    start: datetime,
    duration_minutes: int,
    meeting_provider: str | None = None,
    now: datetime | None = None,
) -> None:
    """The rules of API.md "Book" that do not need the database. Raises ApplicationError (400) naming the field."""
    now = now or timezone.now()
    errors: dict[str, list[str]] = {}
    if not session_type.min_students <= len(student_ids) <= session_type.max_students:
        errors["studentIds"] = [
            f"{session_type.name} takes {session_type.min_students} student"
            if session_type.min_students == session_type.max_students
            else f"{session_type.name} takes {session_type.min_students} to {session_type.max_students} students"
        ]
    elif len(set(student_ids)) != len(student_ids):
        errors["studentIds"] = ["A student is listed twice."]
    elif mentor_id in student_ids:
        errors["mentorId"] = ["The mentor cannot also be a student of the session."]
    if start.tzinfo is None:
        errors["scheduledStartTime"] = ["Give the time with an offset, e.g. 2026-12-01T10:00:00+08:00."]
    elif start <= now:
        errors["scheduledStartTime"] = ["The start time must be in the future."]
    elif start > booking_horizon_end(now=now):
        errors["scheduledStartTime"] = [f"A session can be booked at most {settings.BOOKING_HORIZON_DAYS} days ahead."]
    elif (latest_end := provider_latest_end(meeting_provider=meeting_provider, now=now)) is not None and start + (
        timedelta(minutes=duration_minutes)
    ) > latest_end:
        # Refused here rather than by Feishu minutes later, when the counselor has moved on.
        errors["scheduledStartTime"] = [
            f"A Feishu meeting must end within {FEISHU_RESERVE_MAX_DAYS_AHEAD} days; start earlier or use Zoom."
        ]
    if not 15 <= duration_minutes <= 240:
        errors["duration"] = ["The duration is 15 to 240 minutes."]
    if errors:
        raise ApplicationError(details=errors)


def booking_participants_get(*, counselor: User, mentor_id: UUID, student_ids: list[UUID]) -> User:
    """The mentor, with their profile, once the people check out as for a booking (see _participants_check).
    Raises NotFound. One query."""
    people = people_get_by_ids(ids=[mentor_id, *student_ids])
    standing = {person_id: person_standing_of(person) for person_id, person in people.items()}
    _participants_check(counselor=counselor, standing=standing, mentor_id=mentor_id, student_ids=student_ids)
    return people[mentor_id]


def _participants_check(
    *, counselor: User, standing: dict[UUID, PersonStanding], mentor_id: UUID, student_ids: list[UUID]
) -> None:
    mentor = standing.get(mentor_id)
    if mentor is None or mentor.role != Role.MENTOR or not mentor.is_active:
        raise NotFound("No such mentor.", details={"mentorId": str(mentor_id)})
    unknown = [
        str(s)
        for s in student_ids
        if (student := standing.get(s)) is None
        or student.role != Role.STUDENT
        or not student.is_active
        or student.counselor_id != counselor.id
    ]
    if unknown:
        # A student of another counselor is reported exactly like one that does not exist.
        raise NotFound("No such student among yours.", details={"studentIds": unknown})


def session_book(
    *,
    counselor: User,
    session_type: SessionType,
    student_ids: list[UUID],
    mentor_id: UUID,
    start: datetime,
    duration_minutes: int,
    meeting_provider: str,
    topic: str | None = None,
    idempotency: IdempotentRequest | None = None,
    via: str = "api",
) -> BookingOutcome:
    """Book a session: hold (billable types), slots for everyone, the session PENDING_MEETING and its
    `{type}.session.created` outbox event, all in one transaction or not at all. Makes no network call.

    Raises NotFound, SlotConflict, InsufficientBalance, IdempotencyKeyInUse, IdempotencyKeyReused or
    ApplicationError; in every case nothing was written.
    """
    started = time.perf_counter()
    booking_rules_check(
        session_type=session_type,
        student_ids=student_ids,
        mentor_id=mentor_id,
        start=start,
        duration_minutes=duration_minutes,
        meeting_provider=meeting_provider,
    )
    if counselor.role != Role.COUNSELOR:
        raise ApplicationError("Only a counselor books sessions.")
    start = start.astimezone(UTC)
    end = start + timedelta(minutes=duration_minutes)
    topic = topic or session_type.default_topic

    search = {"mentor_id": mentor_id, "student_ids": student_ids, "start": start, "duration_minutes": duration_minutes}
    booking = _Booking(
        counselor=counselor,
        session_type=session_type,
        student_ids=list(student_ids),
        mentor_id=mentor_id,
        start=start,
        end=end,
        duration_minutes=duration_minutes,
        meeting_provider=meeting_provider,
        topic=topic,
        idempotency=idempotency,
        via=via,
    )
    with _conflict_suggestions(reader=counselor, meeting_provider=meeting_provider, **search):
        outcome = _booking_made(booking)
    if outcome.replayed_response is not None:
        return outcome
    session = outcome.session
    logger.info(
        "session.booked",
        extra={
            "sessionId": str(session.id),
            "eventId": str(session.saga.event_id),
            "sessionType": session.session_type,
            "provider": meeting_provider,
            "durationMs": round((time.perf_counter() - started) * 1000, 2),
        },
    )
    return BookingOutcome(session=session)


@dataclass(frozen=True)
class _Booking:
    counselor: User
    session_type: SessionType
    student_ids: list[UUID]
    mentor_id: UUID
    start: datetime
    end: datetime
    duration_minutes: int
    meeting_provider: str
    topic: str
    idempotency: IdempotentRequest | None
    via: str


def _booking_made(booking: _Booking) -> BookingOutcome:
    """The booking's transaction, tried again when PostgreSQL broke a deadlock between two overlapping bookings
    by aborting this one (writing again then answers for real: a conflict if the other committed). A slot
    conflict is read once the transaction has rolled back (what stands in the way, committed)."""
    return slots_exclusion_checked(
        lambda: _booking_write(booking),
        conflicts=lambda: slots_conflicting(
            user_ids=[booking.mentor_id, *booking.student_ids], start=booking.start, end=booking.end
        ),
        savepoint=False,
    )


def _booking_write(booking: _Booking) -> BookingOutcome:
    """One try at the booking's transaction: the idempotency key, the people (the rules), then every row of
    the booking in one statement (booking_project.one_statement). Billable types first lock the students'
    entitlements, so that the statement counts their free units after any booking that held one committed.

    Rows and order as `slots_book`, `holds_take`, `outbox_event_add`, `saga_start`, `audit_record` and
    `idempotency_remember` write them one by one (session_retry still does): the same columns and values."""
    counselor, session_type, student_ids = booking.counselor, booking.session_type, booking.student_ids
    with transaction.atomic(durable=True):
        if booking.idempotency is not None:
            record = idempotency_claim(counselor_id=counselor.id, request=booking.idempotency)
            if record is not None:
                return BookingOutcome(session=record.session, replayed_response=record.response_body)

        standing = people_standing(ids=[booking.mentor_id, *student_ids])
        _participants_check(
            counselor=counselor, standing=standing, mentor_id=booking.mentor_id, student_ids=student_ids
        )

        session_id = uuid.uuid4()
        parts: list[Part] = []
        guard = None
        if session_type.billable:
            entitlements_lock(student_ids=student_ids, session_type=session_type.name)
            parts, guard = holds_take_parts(
                session_id=session_id, student_ids=student_ids, session_type=session_type.name
            )
        slots = slots_new(
            user_ids=[booking.mentor_id, *student_ids],
            start=booking.start,
            end=booking.end,
            session_type=session_type.name,
        )
        session = Session(
            id=session_id,
            session_type=session_type.name,
            status=SessionStatus.PENDING_MEETING,
            counselor=counselor,
            mentor_id=booking.mentor_id,
            scheduled_at=booking.start,
            duration_minutes=booking.duration_minutes,
            meeting_provider=booking.meeting_provider,
            topic=booking.topic,
            slot_ids=[slot.id for slot in slots],
        )
        session.student_ids = list(student_ids)
        students = [SessionStudent(session=session, student_id=s, position=i) for i, s in enumerate(student_ids)]
        event = outbox_event_new(type=session_type.created_event, payload=session_created_payload(session))
        saga = saga_new(session=session, event=event)
        audit = audit_entry_new(
            session_id=session.id,
            action=AuditAction.BOOKED,
            actor=counselor,
            via=booking.via,
            after={
                **audit_state(session),
                "mentorId": str(booking.mentor_id),
                "studentIds": [str(s) for s in student_ids],
            },
        )
        rows: list[list[Any]] = [slots, [session], students, [event], [saga], [audit]]
        if booking.idempotency is not None:
            rows.append(
                [idempotency_record_new(counselor_id=counselor.id, request=booking.idempotency, session=session)]
            )
        parts += [rows_insert(f"w{i}", each, where=guard) for i, each in enumerate(rows)]
        balance = parts_run(parts, select="SELECT student_id, available FROM balance" if guard else "SELECT 1")
        if guard is not None:
            # Nothing was written when a student had no free unit: the rule says which one.
            holds_balance_check(available=dict(sorted(balance)), session_type=session_type.name)
        for each in rows:
            rows_saved(each)
        outbox_event_recorded(event)
    return BookingOutcome(session=session)


def _hold_and_slots_take(
    *,
    session_id: UUID,
    session_type: SessionType,
    mentor_id: UUID,
    student_ids: list[UUID],
    start: datetime,
    end: datetime,
) -> list[CalendarSlot]:
    """What a booking (or a retry) takes, in the caller's transaction: a unit per student for billable
    types, and [start, end) in the calendar of the mentor and every student."""
    if session_type.billable:
        holds_take(session_id=session_id, student_ids=student_ids, session_type=session_type.name)
    return slots_book(user_ids=[mentor_id, *student_ids], start=start, end=end, session_type=session_type.name)


def session_retry(
    *,
    session_id: UUID,
    actor: User,
    via: str = "api",
    start: datetime | None = None,
    duration_minutes: int | None = None,
) -> Session:
    """Book a MEETING_FAILED session again (API.md "retry"), at its own time or at `start` / `duration_minutes`
    when given, under the booking rules: a new hold (billable types) and new slots, the session back to
    PENDING_MEETING, and a new round of its saga, in one transaction.

    Raises InvalidState (not MEETING_FAILED), ApplicationError (a start that has passed or is beyond the
    horizon), SlotConflict or InsufficientBalance; then nothing changed.
    """
    with _conflict_suggestions(reader=actor) as search, transaction.atomic(durable=True):
        session = _session_lock(session_id)
        if session.status != SessionStatus.MEETING_FAILED:
            raise InvalidState(
                "Only a session whose meeting failed can be retried.",
                details={"status": session.status, "requested": SessionStatus.PENDING_MEETING},
            )
        before = audit_state(session)
        session_type = session_type_get(session.session_type)
        student_ids = session.student_ids
        start = (start or session.scheduled_at).astimezone(UTC)
        duration_minutes = duration_minutes or session.duration_minutes
        # A failed session that is retried is booked again: what a new booking may not do, neither may it
        # (its own start may have passed while it failed).
        booking_rules_check(
            session_type=session_type,
            student_ids=student_ids,
            mentor_id=session.mentor_id,
            start=start,
            duration_minutes=duration_minutes,
            meeting_provider=session.meeting_provider,
        )
        search.update(
            mentor_id=session.mentor_id,
            student_ids=student_ids,
            start=start,
            duration_minutes=duration_minutes,
            meeting_provider=session.meeting_provider,
        )
        slots = _hold_and_slots_take(
            session_id=session.id,
            session_type=session_type,
            mentor_id=session.mentor_id,
            student_ids=student_ids,
            start=start,
            end=start + timedelta(minutes=duration_minutes),
        )
        session = session_transition(
            session_id=session.id,
            to=SessionStatus.PENDING_MEETING,
            expected=SessionStatus.MEETING_FAILED,
            slot_ids=[slot.id for slot in slots],
            failure_reason=None,
            scheduled_at=start,
            duration_minutes=duration_minutes,
        )
        session.student_ids = student_ids
        event = outbox_event_add(type=session_type.created_event, payload=session_created_payload(session))
        saga_restart(session_id=session.id, event_id=event.id)
        audit_change(session=session, before=before, action=AuditAction.RETRIED, actor=actor, via=via)
    logger.info("session.retried", extra={"sessionId": str(session.id), "eventId": str(event.id)})
    return session


def session_reprovision(*, session_id: UUID, actor: User) -> str:
    """An operator's "provision again": a failed session is booked again (as the counselor's retry), a
    session still waiting for its meeting has its saga re-driven now. Returns what was done."""
    from sessions_app.tasks import provision_meeting

    status = Session.objects.filter(id=session_id).values_list("status", flat=True).first()
    if status == SessionStatus.MEETING_FAILED:
        session_retry(session_id=session_id, actor=actor, via="admin")
        return "booked again; the meeting is being provisioned."
    if status == SessionStatus.PENDING_MEETING:
        try:
            provision_meeting.apply_async(kwargs={"session_id": str(session_id)})
        except Exception as error:  # noqa: BLE001 - the broker is down: the sweep re-drives it once it is back
            logger.warning("session.reprovision_deferred", extra={"sessionId": str(session_id), "error": repr(error)})
            return "the broker is unreachable: the sweep re-drives the provisioning once it is back."
        return "provisioning re-driven."
    raise InvalidState(
        f"A {status} session has nothing to provision.", details={"status": status, "requested": "reprovision"}
    )


def session_cancel(*, session_id: UUID, actor: User, via: str = "api", now: datetime | None = None) -> Session:
    """Cancel a PENDING_MEETING, SCHEDULED or MEETING_FAILED session: the session CANCELLED, its hold
    released and its slots freed in one transaction; the meeting is cancelled at the provider afterwards
    (sessions_app/meeting_operations.py), also when it is still being made. A scheduled session whose start
    has come cannot be cancelled: it has begun, its unit is spent (one that never got its meeting can).

    Raises NotFound or InvalidState (any other status, or begun); then nothing changed.
    """
    now = now or timezone.now()
    with transaction.atomic(durable=True):
        session = _session_lock(session_id)
        if session.status == SessionStatus.SCHEDULED and session.scheduled_at <= now:
            raise InvalidState(
                "The session has begun: it can no longer be cancelled.",
                details={"status": session.status, "requested": SessionStatus.CANCELLED},
            )
        before = audit_state(session)
        session = session_transition(session_id=session.id, to=SessionStatus.CANCELLED, expected=session.status)
        holds_release(session_id=session.id)
        slots_cancel(slot_ids=session.slot_ids)
        operation = meeting_operation_start(session=session, kind=MeetingOperationKind.CANCEL)
        audit_change(session=session, before=before, action=AuditAction.CANCELLED, actor=actor, via=via)
    logger.info("session.cancelled", extra={"sessionId": str(session.id), "operationId": str(operation.id)})
    return session


def session_reschedule(
    *, session_id: UUID, actor: User, start: datetime, duration_minutes: int, via: str = "api"
) -> Session:
    """Move a SCHEDULED session: its slots moved (conflict-checked) and its time changed in one
    transaction; the meeting is moved at the provider afterwards. Moving it to the time it has is a no-op.

    Raises NotFound, InvalidState (not SCHEDULED), ApplicationError (the booking rules) or SlotConflict;
    then nothing changed.
    """
    with _conflict_suggestions(reader=actor) as search, transaction.atomic(durable=True):
        session = _session_lock(session_id)
        if session.status != SessionStatus.SCHEDULED:
            raise InvalidState(
                "Only a scheduled session can be moved; cancel it and book again instead.",
                details={"status": session.status, "requested": "reschedule"},
            )
        if session.scheduled_at <= timezone.now():
            # The clock may not have ticked yet, but people may already be in the meeting.
            raise InvalidState(
                "The session has begun: it can no longer be moved.",
                details={"status": session.status, "requested": "reschedule"},
            )
        booking_rules_check(
            session_type=session_type_get(session.session_type),
            student_ids=session.student_ids,
            mentor_id=session.mentor_id,
            start=start,
            duration_minutes=duration_minutes,
            meeting_provider=session.meeting_provider,
        )
        start = start.astimezone(UTC)
        if (start, duration_minutes) == (session.scheduled_at, session.duration_minutes):
            return session
        before = audit_state(session)
        search.update(
            mentor_id=session.mentor_id,
            student_ids=session.student_ids,
            start=start,
            duration_minutes=duration_minutes,
            meeting_provider=session.meeting_provider,
            # The session's own slots, still at its old time, do not stand in its way.
            excluding_slot_ids=session.slot_ids,
        )
        slots_move(slot_ids=session.slot_ids, start=start, end=start + timedelta(minutes=duration_minutes))
        Session.objects.filter(id=session.id).update(
            scheduled_at=start, duration_minutes=duration_minutes, updated_at=timezone.now()
        )
        session.scheduled_at, session.duration_minutes = start, duration_minutes
        operation = meeting_operation_start(
            session=session,
            kind=MeetingOperationKind.UPDATE,
            previous={"scheduledStartTime": before["scheduledAt"], "duration": before["duration"]},
        )
        audit_change(session=session, before=before, action=AuditAction.RESCHEDULED, actor=actor, via=via)
    logger.info(
        "session.rescheduled",
        extra={"sessionId": str(session.id), "operationId": str(operation.id), "scheduledAt": start.isoformat()},
    )
    return session


def session_complete(*, session_id: UUID, actor: User, via: str = "api", now: datetime | None = None) -> Session:
    """A SCHEDULED or IN_PROGRESS session took place: COMPLETED, and its held units are spent.

    Raises NotFound or InvalidState (another status, or the session has not started yet).
    """
    now = now or timezone.now()
    with transaction.atomic(durable=True):
        session = _session_lock(session_id)
        if session.status in COMPLETABLE_STATUSES and session.scheduled_at > now:
            # Completing ahead of time would spend the student's unit for a session that may not happen.
            raise InvalidState(
                "A session cannot be completed before it starts.",
                details={"status": session.status, "requested": SessionStatus.COMPLETED},
            )
        # Any other status is refused by the state machine (session_transition): InvalidState.
        return session_finish(session=session, ended_at=None, actor=actor, via=via)


@contextmanager
def _conflict_suggestions(*, reader: User, **search: Any) -> Iterator[dict[str, Any]]:
    """Adds `details.suggestions` (API.md "Errors") to a SlotConflict raised inside: the next free starts for
    the same people and duration after the requested start. Enter it before (outside) the transaction: the
    free times are read once that transaction has rolled back, as they stand without it. The body may fill
    in the search (mentor_id, student_ids, start, duration_minutes, meeting_provider, excluding_slot_ids) as
    it learns them."""
    search = dict(search)
    try:
        yield search
    except SlotConflict as conflict:
        if "start" in search:
            conflict.details["suggestions"] = _suggestions_or_none(reader=reader, **search)
        raise


def _suggestions_or_none(
    *, reader: User, start: datetime, mentor_id: UUID, student_ids: list[UUID], **search: Any
) -> list[dict[str, str]]:
    try:
        return availability_suggestions(
            reader=reader, mentor_id=mentor_id, student_ids=student_ids, after=start, **search
        )
    except Exception:  # noqa: BLE001 - suggestions are a courtesy: the conflict is answered without them
        logger.exception("session.suggestions_failed", extra={"mentorId": str(mentor_id)})
        return []


def _session_lock(session_id: UUID) -> Session:
    session = Session.objects.select_for_update().filter(id=session_id).first()
    if session is None:
        raise NotFound("No such session.")
    return session
