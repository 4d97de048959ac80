"""Writes to calendar slots. The exclusion constraint, not a read-then-write, is what prevents double booking."""
from collections.abc import Iterable
from datetime import datetime
from uuid import UUID

from django.db import IntegrityError, transaction
from django.db.backends.postgresql.psycopg_any import DateTimeTZRange

from booking_project.errors import SlotConflict
from calendar_app.models import SLOT_NO_OVERLAP, CalendarSlot, SlotStatus

EXCLUSION_VIOLATION = "23P01"


def _is_overlap_violation(error: IntegrityError) -> bool:
    cause = error.__cause__
    return (
        getattr(cause, "sqlstate", None) == EXCLUSION_VIOLATION
        and getattr(getattr(cause, "diag", None), "constraint_name", None) == SLOT_NO_OVERLAP
    )


def slots_book(*, user_ids: Iterable[UUID], start: datetime, end: datetime, session_type: str) -> list[CalendarSlot]:
    """Take [start, end) in the calendar of every user, or raise SlotConflict naming who is busy when.

    Runs inside the caller's transaction; costs one INSERT (plus a savepoint) whatever the number of users.
    """
    user_ids = list(user_ids)
    during = DateTimeTZRange(start, end, "[)")
    slots = [CalendarSlot(user_id=u, during=during, session_type=session_type) for u in user_ids]
    try:
        # The savepoint keeps the caller's transaction usable, so the conflicts can be read back.
        with transaction.atomic():
            return CalendarSlot.objects.bulk_create(slots)
    except IntegrityError as error:
        if not _is_overlap_violation(error):
            raise
        raise SlotConflict(details={"conflicts": slots_conflicting(user_ids=user_ids, start=start, end=end)}) from None


def slots_conflicting(*, user_ids: Iterable[UUID], start: datetime, end: datetime) -> list[dict[str, str]]:
    busy = (
        CalendarSlot.objects.filter(
            user_id__in=list(user_ids), status=SlotStatus.BOOKED, during__overlap=DateTimeTZRange(start, end, "[)")
        )
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
