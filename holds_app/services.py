"""Writes to entitlements and holds. Availability = bought - consumed - active holds, never negative."""

from collections.abc import Iterable
from uuid import UUID

from django.db import transaction
from django.utils import timezone

from booking_project.errors import InsufficientBalance
from holds_app.models import Entitlement, Hold, HoldStatus


def holds_take(*, session_id: UUID, student_ids: Iterable[UUID], session_type: str) -> list[Hold]:
    """Hold one unit of `session_type` for each student, or raise InsufficientBalance and hold nothing.

    Must run inside the caller's transaction: the entitlement rows stay locked until it commits, so
    concurrent bookings for the same student queue up instead of both spending the last unit.
    Costs three queries whatever the number of students.
    """
    student_ids = sorted(set(student_ids))
    # Locks are taken in id order so two bookings sharing students can never deadlock.
    locked = list(
        Entitlement.objects.select_for_update()
        .filter(student_id__in=student_ids, session_type=session_type)
        .order_by("id")
        .values_list("id", "student_id", "units_bought")
    )
    spent = dict(
        Entitlement.objects.filter(id__in=[e_id for e_id, _, _ in locked])
        .with_units_spent()
        .values_list("id", "units_spent")
    )
    by_student = {student_id: (e_id, bought - spent[e_id]) for e_id, student_id, bought in locked}
    for student_id in student_ids:
        _, available = by_student.get(student_id, (None, 0))
        if available < 1:
            raise InsufficientBalance(
                details={"studentId": str(student_id), "sessionType": session_type, "available": max(available, 0)}
            )
    return Hold.objects.bulk_create([Hold(entitlement_id=by_student[s][0], session_id=session_id) for s in student_ids])


def holds_release(*, session_id: UUID) -> int:
    """Give back every active unit held for the session. Releasing twice is a no-op; returns how many."""
    return Hold.objects.filter(session_id=session_id, status=HoldStatus.ACTIVE).update(
        status=HoldStatus.RELEASED, released_at=timezone.now()
    )


def holds_consume(*, session_id: UUID) -> int:
    """Spend every active unit held for the session. Consuming twice is a no-op; returns how many."""
    return Hold.objects.filter(session_id=session_id, status=HoldStatus.ACTIVE).update(
        status=HoldStatus.CONSUMED, consumed_at=timezone.now()
    )


@transaction.atomic
def entitlement_grant(*, student_id: UUID, session_type: str, units: int) -> Entitlement:
    """Make sure the student has bought at least `units` units of the type (idempotent top-up)."""
    entitlement, created = Entitlement.objects.select_for_update().get_or_create(
        student_id=student_id, session_type=session_type, defaults={"units_bought": units}
    )
    if not created and entitlement.units_bought < units:
        entitlement.units_bought = units
        entitlement.save(update_fields=["units_bought", "updated_at"])
    return entitlement
