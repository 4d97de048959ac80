"""Writes to calendar slots. The exclusion constraint, not a read-then-write, is what prevents double booking."""

import json
from collections.abc import Callable, Iterable
from datetime import datetime
from typing import TypeVar
from uuid import UUID

from django.db import IntegrityError, OperationalError, transaction
from django.db.backends.postgresql.psycopg_any import DateTimeTZRange
from django.db.models.expressions import RawSQL
from django.db.models.functions import Now

from booking_project.errors import SlotConflict
from calendar_app.models import SLOT_NO_OVERLAP, CalendarSlot, SlotStatus

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
    during = DateTimeTZRange(start, end, "[)")
    return _exclusion_checked(
        lambda: CalendarSlot.objects.bulk_create(
            [CalendarSlot(user_id=u, during=during, session_type=session_type) for u in user_ids]
        ),
        conflicts=lambda: slots_conflicting(user_ids=user_ids, start=start, end=end),
    )


def slots_move(*, slot_ids: Iterable[UUID], start: datetime, end: datetime) -> int:
    """Move the booked slots to [start, end), or raise SlotConflict naming who is busy then (the slots'
    own old time does not count). Runs inside the caller's transaction; one UPDATE. Returns how many moved."""
    slot_ids = list(slot_ids)
    during = DateTimeTZRange(start, end, "[)")
    user_ids = CalendarSlot.objects.filter(id__in=slot_ids).values_list("user_id", flat=True)
    return _exclusion_checked(
        lambda: CalendarSlot.objects.filter(id__in=slot_ids, status=SlotStatus.BOOKED).update(
            during=during, updated_at=Now()
        ),
        conflicts=lambda: slots_conflicting(user_ids=list(user_ids), start=start, end=end, excluding=slot_ids),
    )


def _exclusion_checked(write: Callable[[], T], *, conflicts: Callable[[], list[dict[str, str]]]) -> T:
    """Run a write that the no-overlap constraint guards, in a savepoint; SlotConflict when it refuses."""
    for attempt in range(1, SLOT_INSERT_ATTEMPTS + 1):
        try:
            # The savepoint keeps the caller's transaction usable: to read the conflicts back, or to try again.
            with transaction.atomic():
                return write()
        except IntegrityError as error:
            if not _is_overlap_violation(error):
                raise
            break
        except OperationalError as error:
            # Two transactions writing overlapping slots at the same instant each wait on the other's
            # exclusion check, and PostgreSQL aborts one. Writing again waits for the other to finish,
            # then answers for real: a conflict if it committed, success if it rolled back.
            if _sqlstate(error) != DEADLOCK_DETECTED:
                raise
            if attempt == SLOT_INSERT_ATTEMPTS:
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
