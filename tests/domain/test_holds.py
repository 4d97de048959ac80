"""Holds: taking, releasing and consuming units; the balance is never negative."""

import uuid

import pytest
from django.db import transaction

from booking_project.errors import InsufficientBalance
from holds_app.models import Hold, HoldStatus
from holds_app.selectors import balances_for_student
from holds_app.services import (
    entitlement_grant,
    holds_consume,
    holds_release,
    holds_take,
)
from tests.factories import CounselorFactory, EntitlementFactory, student_for


@pytest.fixture
def student(db):
    return student_for(CounselorFactory())


def test_a_hold_takes_one_unit_and_release_gives_it_back(student):
    EntitlementFactory(student=student, session_type="gap_analysis", units_bought=2)
    session_id = uuid.uuid4()

    holds_take(session_id=session_id, student_ids=[student.id], session_type="gap_analysis")
    assert balances_for_student(student_id=student.id) == {"gap_analysis": 1}

    assert holds_release(session_id=session_id) == 1
    assert balances_for_student(student_id=student.id) == {"gap_analysis": 2}


def test_releasing_twice_is_a_no_op(student):
    EntitlementFactory(student=student, session_type="gap_analysis", units_bought=1)
    session_id = uuid.uuid4()
    holds_take(session_id=session_id, student_ids=[student.id], session_type="gap_analysis")

    assert holds_release(session_id=session_id) == 1
    assert holds_release(session_id=session_id) == 0
    assert Hold.objects.get().status == HoldStatus.RELEASED


def test_consuming_twice_is_a_no_op_and_the_unit_stays_spent(student):
    EntitlementFactory(student=student, session_type="ai_career", units_bought=1)
    session_id = uuid.uuid4()
    holds_take(session_id=session_id, student_ids=[student.id], session_type="ai_career")

    assert holds_consume(session_id=session_id) == 1
    assert holds_consume(session_id=session_id) == 0
    assert holds_release(session_id=session_id) == 0  # a consumed unit is not given back
    assert balances_for_student(student_id=student.id) == {"ai_career": 0}


def test_no_unit_left_raises_and_holds_nothing(student):
    EntitlementFactory(student=student, session_type="ai_career", units_bought=1)
    holds_take(session_id=uuid.uuid4(), student_ids=[student.id], session_type="ai_career")

    with pytest.raises(InsufficientBalance) as refused, transaction.atomic():
        holds_take(session_id=uuid.uuid4(), student_ids=[student.id], session_type="ai_career")

    assert refused.value.details["available"] == 0
    assert Hold.objects.count() == 1


def test_a_session_cannot_hold_two_live_units_of_one_entitlement(student):
    from django.db import IntegrityError

    EntitlementFactory(student=student, session_type="ai_career", units_bought=5)
    session_id = uuid.uuid4()
    holds_take(session_id=session_id, student_ids=[student.id], session_type="ai_career")

    with pytest.raises(IntegrityError), transaction.atomic():
        holds_take(session_id=session_id, student_ids=[student.id], session_type="ai_career")


def test_granting_is_an_idempotent_top_up(student):
    entitlement_grant(student_id=student.id, session_type="regular_mentoring", units=10)
    entitlement_grant(student_id=student.id, session_type="regular_mentoring", units=10)

    assert balances_for_student(student_id=student.id) == {"regular_mentoring": 10}
