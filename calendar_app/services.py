"""Writes to calendar slots. The exclusion constraint, not a read-then-write, is what prevents double booking."""

import json
from collections.abc import Callable, Iterable
from contextlib import nullcontext
from dataclasses import dataclass
from datetime import datetime, time
from typing import TypeVar
from uuid import UUID

from django.contrib.auth import get_user_model
from django.db import IntegrityError, OperationalError, transaction
from django.db.backends.postgresql.psycopg_any import DateTimeTZRange
from django.db.models.expressions import RawSQL
from django.db.models.functions import Now

from booking_project.db import connection_give_back
from booking_project.errors import SlotConflict
from booking_project.providers.outcomes import PermanentProviderError
from calendar_app.models import (
    SLOT_NO_OVERLAP,
    CalendarEvent,
    CalendarEventStatus,
    CalendarSlot,
    SlotStatus,
    WorkingHours,
)
from calendar_app.providers.base import CalendarEventRequest

EXCLUSION_VIOLATION = "23P01"
DEADLOCK_DETECTED = "40P01"
SLOT_INSERT_ATTEMPTS = 3

T = TypeVar("T")


def _sqlstate(error: Exception) -> str | None:
    return getattr(error.__cause__, "sqlstate", None)


def _is_overlap_violation(error: IntegrityError) -> bool:
    return (
        _sqlstate(error) == EXCLUSION_VIOLATION
        and getattr(getattr(error.__cause__, "diag", None), "constraint_name", None) == SLOT_NO_OVERLAP
    )


def slots_book(*, user_ids: Iterable[UUID], start: datetime, end: datetime, session_type: str) -> list[CalendarSlot]:
    """Take [start, end) in the calendar of every user, or raise SlotConflict naming who is busy when.

    Runs inside the caller's transaction; costs one INSERT (plus a savepoint) whatever the number of users.
    """
    # A fixed order makes bookings that share people wait on each other less often; the deadlocks that
    # the exclusion check still allows are retried below.
    user_ids = sorted(user_ids)
    return slots_exclusion_checked(
        lambda: CalendarSlot.objects.bulk_create(
            slots_new(user_ids=user_ids, start=start, end=end, session_type=session_type)
        ),
        conflicts=lambda: slots_conflicting(user_ids=user_ids, start=start, end=end),
    )


def slots_new(*, user_ids: Iterable[UUID], start: datetime, end: datetime, session_type: str) -> list[CalendarSlot]:
    """The unsaved slots `slots_book` writes, in its order, for a caller that writes them in a statement of
    its own (booking_project.one_statement). Run it with `slots_exclusion_checked(savepoint=False)`."""
    during = DateTimeTZRange(start, end, "[)")
    return [CalendarSlot(user_id=u, during=during, session_type=session_type) for u in sorted(user_ids)]


def _slots_refusal(error: Exception) -> str | None:
    """Why a write of slots failed: "overlap" (the no-overlap constraint refused it: a conflict), "deadlock"
    (two overlapping writes at the same instant; writing again answers for real), or None (anything else)."""
    if isinstance(error, IntegrityError) and _is_overlap_violation(error):
        return "overlap"
    if isinstance(error, OperationalError) and _sqlstate(error) == DEADLOCK_DETECTED:
        return "deadlock"
    return None


def slots_move(*, slot_ids: Iterable[UUID], start: datetime, end: datetime) -> int:
    """Move the booked slots to [start, end), or raise SlotConflict naming who is busy then (the slots'
    own old time does not count). Runs inside the caller's transaction; one UPDATE. Returns how many moved."""
    slot_ids = list(slot_ids)
    during = DateTimeTZRange(start, end, "[)")
    user_ids = CalendarSlot.objects.filter(id__in=slot_ids).values_list("user_id", flat=True)
    return slots_exclusion_checked(
        lambda: CalendarSlot.objects.filter(id__in=slot_ids, status=SlotStatus.BOOKED).update(
            during=during, updated_at=Now()
        ),
        conflicts=lambda: slots_conflicting(user_ids=list(user_ids), start=start, end=end, excluding=slot_ids),
    )


def slots_exclusion_checked(
    write: Callable[[], T], *, conflicts: Callable[[], list[dict[str, str]]], savepoint: bool = True
) -> T:
    """Run a write that the no-overlap constraint guards; SlotConflict (with `conflicts()`, read once the write
    has rolled back) when it refuses. With `savepoint`, the write runs in one inside the caller's transaction;
    without, `write` is a whole transaction of its own (the booking's one statement, sessions_app.services)."""
    for attempt in range(1, SLOT_INSERT_ATTEMPTS + 1):
        try:
            # The savepoint keeps the caller's transaction usable: to read the conflicts back, or to try again.
            with transaction.atomic() if savepoint else nullcontext():
                return write()
        except (IntegrityError, OperationalError) as error:
            refusal = _slots_refusal(error)
            if refusal is None:
                raise
            # Two transactions writing overlapping slots at the same instant each wait on the other's
            # exclusion check, and PostgreSQL aborts one. Writing again waits for the other to finish,
            # then answers for real: a conflict if it committed, success if it rolled back.
            if refusal == "deadlock" and attempt < SLOT_INSERT_ATTEMPTS:
                continue
            break
    raise SlotConflict(details={"conflicts": conflicts()})


def slots_conflicting(
    *, user_ids: Iterable[UUID], start: datetime, end: datetime, excluding: Iterable[UUID] = ()
) -> list[dict[str, str]]:
    busy = (
        CalendarSlot.objects.filter(
            user_id__in=list(user_ids), status=SlotStatus.BOOKED, during__overlap=DateTimeTZRange(start, end, "[)")
        )
        .exclude(id__in=list(excluding))
        .order_by("during", "user_id")
        .values_list("user_id", "during")
    )
    return [
        {"userId": str(user_id), "start": _iso(during.lower), "end": _iso(during.upper)} for user_id, during in busy
    ]


def slots_cancel(*, slot_ids: Iterable[UUID]) -> int:
    """Free the slots. Cancelling a cancelled slot is a no-op; returns how many were freed now."""
    return CalendarSlot.objects.filter(id__in=list(slot_ids), status=SlotStatus.BOOKED).update(
        status=SlotStatus.CANCELLED
    )


def _iso(moment: datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")


def slots_attach_meeting(*, slot_ids: Iterable[UUID], session_id: UUID, meeting_id: UUID, meeting_url: str) -> int:
    """Write the session, its meeting and the meeting's link onto the session's booked slots, in one UPDATE
    that keeps any other metadata. Returns how many slots were updated."""
    return CalendarSlot.objects.filter(id__in=list(slot_ids), status=SlotStatus.BOOKED).update(
        session_id=session_id,
        meeting_id=meeting_id,
        metadata=RawSQL("metadata || %s::jsonb", (json.dumps({"meetingUrl": meeting_url}),)),
        updated_at=Now(),
    )


# ---------------------------------------------------------------------------------------------------------
# Calendar events: one per (session, participant), converged to what the session says now.


@dataclass(frozen=True)
class CalendarEventTarget:
    """What a participant's calendar should show for a session. `present` False: nothing (the session was
    cancelled or has no meeting); the request is still given when known, to find an event a crashed create may
    have made (None only when the session itself is gone)."""

    provider: str
    request: CalendarEventRequest | None
    present: bool


CALENDAR_SYNC_MAX_STEPS = 5


def calendar_event_sync(*, session_id: UUID, user_id: UUID, target: Callable[[], CalendarEventTarget]) -> CalendarEvent:
    """Make, move or delete the participant's event until it matches `target()`, which is read under the row's
    lock each time: of two tasks racing (a create and a cancel), whoever decides last sees the newest state, and
    the create re-reads after its provider call, so a cancelled session keeps no event. Provider calls run
    outside any transaction and are idempotent (a create repeats with the row's key). Safe to run twice, at
    once, or out of order. Raises the provider's TransientProviderError / PermanentProviderError."""
    for _ in range(CALENDAR_SYNC_MAX_STEPS):
        with transaction.atomic():
            row = _calendar_event_locked(session_id=session_id, user_id=user_id)
            wanted = target()
            step = _calendar_event_next_step(row, wanted)
            if step is None:
                return row
            if step == "create":
                if row.status == CalendarEventStatus.DELETED and row.event_id:
                    # Made and deleted before; a new event needs a new key (the old one names the deleted event).
                    row.generation += 1
                    row.event_id = ""
                row.provider = row.provider if row.status == CalendarEventStatus.CREATING else wanted.provider
                row.status = CalendarEventStatus.CREATING
                row.save(update_fields=["provider", "status", "generation", "event_id", "updated_at"])
            snapshot = (row.provider, row.calendar_id, row.event_id, row.idempotency_key)
        connection_give_back()
        try:
            _calendar_event_apply(row=row, step=step, snapshot=snapshot, request=wanted.request)
        except Exception:
            # A step that failed because another task got there first (the event deleted under a create that
            # was adding its attendee) is no failure: if nothing is left to do, the participant's calendar is right.
            with transaction.atomic():
                row = _calendar_event_locked(session_id=session_id, user_id=user_id)
                if _calendar_event_next_step(row, target()) is None:
                    return row
            raise
    return row


def _calendar_event_locked(*, session_id: UUID, user_id: UUID) -> CalendarEvent:
    CalendarEvent.objects.get_or_create(session_id=session_id, user_id=user_id)  # ON CONFLICT-safe: unique pair
    return CalendarEvent.objects.select_for_update().get(session_id=session_id, user_id=user_id)


def _calendar_event_next_step(row: CalendarEvent, wanted: CalendarEventTarget) -> str | None:
    status = row.status
    if wanted.present:
        if status in (CalendarEventStatus.PENDING, CalendarEventStatus.CREATING, CalendarEventStatus.DELETED):
            return "create"
        request = wanted.request
        current = (row.starts_at, row.ends_at, row.meeting_url, row.summary)
        return (
            None
            if current == (request.start_time, request.end_time, request.meeting_url, request.summary)
            else "update"
        )
    if status == CalendarEventStatus.ACTIVE:
        return "delete"
    if status == CalendarEventStatus.CREATING and wanted.request is not None:
        # A create was sent and its answer not recorded (in flight elsewhere, or its worker died): repeat it with
        # the same key to learn the event's id, then the next step deletes it. Nothing is left behind.
        return "create"
    if status in (CalendarEventStatus.PENDING, CalendarEventStatus.CREATING):
        row.status = CalendarEventStatus.DELETED
        row.save(update_fields=["status", "updated_at"])
    return None


def _calendar_event_apply(*, row: CalendarEvent, step: str, snapshot: tuple, request: CalendarEventRequest) -> None:
    from calendar_app.providers import calendar_provider_client

    provider, calendar_id, event_id, key = snapshot
    try:
        client = calendar_provider_client(provider)
        if step == "create":
            made = client.create(request, idempotency_key=key)
        elif step == "update":
            client.update(calendar_id, event_id, request)
        else:
            client.delete(calendar_id, event_id)
    except Exception as error:
        with transaction.atomic():
            row = CalendarEvent.objects.select_for_update().get(id=row.id)
            row.last_error = str(error)[:2000]
            fields = ["last_error", "updated_at"]
            if step == "create" and isinstance(error, PermanentProviderError | ValueError):
                # Refused outright: nothing was made.
                if row.status == CalendarEventStatus.CREATING and not row.event_id:
                    row.status = CalendarEventStatus.PENDING
                    fields.append("status")
            row.save(update_fields=fields)
        raise
    with transaction.atomic():
        row = CalendarEvent.objects.select_for_update().get(id=row.id)
        if step == "create":
            # Only the create this row is waiting for is recorded; a late answer of a create that another task
            # already recorded (and maybe deleted since) changes nothing.
            if row.status != CalendarEventStatus.CREATING or row.idempotency_key != key:
                return
            row.calendar_id, row.event_id, row.status = made.calendar_id, made.event_id, CalendarEventStatus.ACTIVE
        elif step == "update":
            if row.status != CalendarEventStatus.ACTIVE or row.event_id != event_id:
                return
        else:
            if row.event_id != event_id:
                return
            row.status = CalendarEventStatus.DELETED
        if step != "delete":
            row.starts_at, row.ends_at = request.start_time, request.end_time
            row.meeting_url, row.summary = request.meeting_url, request.summary
        row.last_error = ""
        row.save()


def working_hours_give(*, mentor_id: UUID, weekly: Iterable[tuple[int, time, time]]) -> bool:
    """Give a mentor weekly working hours — (weekday, start, end) in their own time zone — unless they have
    some already (which an operator may have edited: never overwritten). Returns whether any were given."""
    with transaction.atomic():
        # Locking the mentor's row makes two concurrent runs give the hours once.
        get_user_model().objects.select_for_update().filter(id=mentor_id).first()
        if WorkingHours.objects.filter(mentor_id=mentor_id).exists():
            return False
        WorkingHours.objects.bulk_create(
            [WorkingHours(mentor_id=mentor_id, weekday=d, starts_at=s, ends_at=e) for d, s, e in weekly]
        )
    return True
