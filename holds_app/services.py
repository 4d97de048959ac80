"""Writes to entitlements and holds. Availability = bought - consumed - active holds, never negative."""

import logging
from collections.abc import Iterable
from uuid import UUID

from django.db import transaction
from django.utils import timezone

from accounts_app.models import User
from booking_project.errors import ApplicationError, InsufficientBalance
from holds_app.models import SPENDING_HOLD_STATUSES, BalanceChange, Entitlement, Hold, HoldStatus

logger = logging.getLogger(__name__)


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


class BalanceBelowSpent(ApplicationError):
    code = "VALIDATION_ERROR"
    message = "The units bought cannot go below the units already held or consumed."


def entitlement_units_check(*, entitlement_id: UUID, units_bought: int) -> int:
    """Inside the caller's transaction: lock the entitlement (the lock a booking takes to hold one of its units)
    and raise BalanceBelowSpent if `units_bought` is below what is held or consumed now. Returns that number.
    Until the caller's transaction ends, no booking can hold a unit of it."""
    if not transaction.get_connection().in_atomic_block:
        raise RuntimeError("entitlement_units_check locks the entitlement: call it inside a transaction.")
    Entitlement.objects.select_for_update().filter(id=entitlement_id).values_list("id", flat=True).get()
    spent = Hold.objects.filter(entitlement_id=entitlement_id, status__in=SPENDING_HOLD_STATUSES).count()
    if units_bought < spent:
        raise BalanceBelowSpent(
            f"{spent} units are already held or consumed; the balance cannot go below 0.",
            details={"unitsBought": [f"At least {spent}."]},
        )
    return spent


def entitlement_units_set(*, entitlement: Entitlement, units_bought: int, actor: User | None, via: str) -> Entitlement:
    """A person sets how many units a student bought (the admin's add or change). Checked and written under the
    entitlement's row lock, so a booking holding a unit at the same moment cannot take the balance below zero,
    and recorded as a BalanceChange (who, from what to what). A new entitlement is created. Raises
    BalanceBelowSpent; then nothing changed."""
    with transaction.atomic():
        if entitlement._state.adding:
            entitlement.units_bought = units_bought
            entitlement.save()
            before, spent = None, 0
        else:
            spent = entitlement_units_check(entitlement_id=entitlement.id, units_bought=units_bought)
            before = Entitlement.objects.values_list("units_bought", flat=True).get(id=entitlement.id)
            if before == units_bought:
                return entitlement
            Entitlement.objects.filter(id=entitlement.id).update(units_bought=units_bought, updated_at=timezone.now())
            entitlement.units_bought = units_bought
        BalanceChange.objects.create(
            entitlement=entitlement, actor=actor, via=via, units_before=before, units_after=units_bought,
            units_spent=spent,
        )  # fmt: skip
    logger.info(
        "entitlement.units_set",
        extra={"entitlementId": str(entitlement.id), "unitsBefore": before, "unitsAfter": units_bought, "via": via},
    )
    return entitlement
