"""Writes to entitlements and holds. Availability = bought - consumed - active holds, never negative."""

import logging
from collections.abc import Iterable
from uuid import UUID

from django.db import connection, transaction
from django.utils import timezone

from accounts_app.models import User
from booking_project.errors import ApplicationError, InsufficientBalance
from booking_project.one_statement import Part, quoted, rows_insert
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
    holds_balance_check(available={s: by_student.get(s, (None, 0))[1] for s in student_ids}, session_type=session_type)
    return Hold.objects.bulk_create([Hold(entitlement_id=by_student[s][0], session_id=session_id) for s in student_ids])


def holds_balance_check(*, available: dict[UUID, int], session_type: str) -> None:
    """The rule of holding: every student needs a free unit. `available` = free units by student (0 for a
    student with no entitlement), in the order the students are checked. Raises InsufficientBalance naming
    the first short one."""
    for student_id, units in available.items():
        if units < 1:
            raise InsufficientBalance(
                details={"studentId": str(student_id), "sessionType": session_type, "available": max(units, 0)}
            )


def entitlements_lock(*, student_ids: Iterable[UUID], session_type: str) -> None:
    """Lock the students' entitlements of the type until the caller's transaction ends (in id order, so two
    bookings sharing students never deadlock), before a later statement counts their free units: a booking
    that held a unit and committed meanwhile is then counted. One query."""
    # Written out: the ORM's compiling of this one read cost the booking more CPU than PostgreSQL's running it.
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT id FROM {quoted(Entitlement._meta.db_table)} WHERE student_id = ANY(%s) AND session_type = %s "
            "ORDER BY id FOR UPDATE",
            [sorted(set(student_ids)), session_type],
        )


def holds_take_parts(*, session_id: UUID, student_ids: Iterable[UUID], session_type: str) -> tuple[list[Part], str]:
    """holds_take as parts of one statement (booking_project.one_statement), to follow `entitlements_lock` in
    the same transaction: `balance` (student_id, entitlement_id, available: free units, 0 without an
    entitlement, students in id order) and `holds`, one unit held for each student, written only if every
    student has one. Returns the parts and that condition, for the statement's other writes to share: when it
    is false nothing is written, and the caller raises with `holds_balance_check` on `balance`'s rows."""
    student_ids = sorted(set(student_ids))
    hold, entitlement = quoted(Hold._meta.db_table), quoted(Entitlement._meta.db_table)
    balance = Part(
        "balance",
        f"balance AS (SELECT s.student_id, e.id AS entitlement_id, COALESCE(e.units_bought - ("
        f"SELECT count(*) FROM {hold} h WHERE h.entitlement_id = e.id AND h.status = ANY(%s)), 0) AS available "
        f"FROM unnest(%s::uuid[]) WITH ORDINALITY AS s(student_id, n) "
        f"LEFT JOIN {entitlement} e ON e.student_id = s.student_id AND e.session_type = %s ORDER BY s.n)",
        [[str(s) for s in SPENDING_HOLD_STATUSES], student_ids, session_type],
    )
    units_free = Part("units_free", "units_free AS (SELECT bool_and(available >= 1) AS ok FROM balance)")
    guard = "(SELECT ok FROM units_free)"
    holds = rows_insert(
        "holds",
        [Hold(entitlement_id=None, session_id=session_id) for _ in student_ids],
        where=guard,
        join=("balance b", "b.student_id = v.student_id", {"entitlement_id": "b.entitlement_id"}),
        extra={"student_id": student_ids},
    )
    return [balance, units_free, holds], guard


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
