"""Threads that really race on PostgreSQL: the constraints and row locks, not luck, decide who wins."""

from collections import Counter
from datetime import timedelta

import pytest

from calendar_app.models import CalendarSlot, SlotStatus
from holds_app.models import Hold, HoldStatus
from holds_app.selectors import balances_for_student
from sessions_app.models import OutboxEvent, Session
from tests.conftest import BOOK_URL, booking_body, funded_student, race_posts
from tests.factories import (
    CounselorFactory,
    EntitlementFactory,
    MentorFactory,
    future,
    student_for,
)

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.race]


def race_as(bookings: list[tuple], headers: dict | None = None) -> list:
    """POST every (counselor, body) at once, each from its own thread and connection; return the responses."""
    return race_posts([(counselor, BOOK_URL, body) for counselor, body in bookings], headers)


def race(bodies: list[dict], counselor, headers: dict | None = None) -> list:
    return race_as([(counselor, body) for body in bodies], headers)


def test_twenty_counselors_racing_for_one_mentor_end_with_one_booking():
    mentor = MentorFactory()
    counselors = [CounselorFactory() for _ in range(20)]
    start = future()
    bookings = [
        (c, booking_body(student=funded_student(c), mentor=mentor, start=start + timedelta(minutes=i)))
        for i, c in enumerate(counselors)
    ]

    responses = race_as(bookings)

    assert Counter(r.status_code for r in responses) == {201: 1, 409: 19}
    assert {r.json()["error"]["code"] for r in responses if r.status_code == 409} == {"SLOT_CONFLICT"}
    assert Session.objects.count() == 1 and OutboxEvent.objects.count() == 1
    assert CalendarSlot.objects.filter(user=mentor, status=SlotStatus.BOOKED).count() == 1
    # The losers' holds were rolled back with their transactions: only the winner's unit is held.
    assert Hold.objects.filter(status=HoldStatus.ACTIVE).count() == 1


def test_three_units_and_ten_parallel_bookings_end_with_three_bookings_and_nothing_left():
    counselor = CounselorFactory()
    student = student_for(counselor)
    EntitlementFactory(student=student, session_type="regular_mentoring", units_bought=3)
    start = future()
    bodies = [
        booking_body(student=student, mentor=MentorFactory(), start=start + timedelta(hours=2 * i)) for i in range(10)
    ]

    responses = race(bodies, counselor)

    assert Counter(r.status_code for r in responses) == {201: 3, 409: 7}
    assert {r.json()["error"]["code"] for r in responses if r.status_code == 409} == {"INSUFFICIENT_BALANCE"}
    assert Session.objects.count() == 3
    assert Hold.objects.filter(status=HoldStatus.ACTIVE).count() == 3
    assert balances_for_student(student_id=student.id) == {"regular_mentoring": 0}


def test_the_same_idempotency_key_sent_in_parallel_books_once():
    counselor = CounselorFactory()
    body = booking_body(student=funded_student(counselor), mentor=MentorFactory())

    responses = race([body] * 8, counselor, headers={"Idempotency-Key": "double-click-1"})

    codes = Counter(r.status_code for r in responses)
    assert set(codes) <= {201, 409} and codes[201] >= 1
    assert {r.json()["error"]["code"] for r in responses if r.status_code == 409} <= {"IDEMPOTENCY_KEY_IN_USE"}
    assert Session.objects.count() == 1
    assert {r.json()["sessionId"] for r in responses if r.status_code == 201} == {str(Session.objects.get().id)}


def test_classes_sharing_students_booked_at_once_end_with_one_booking_and_no_error():
    counselor = CounselorFactory()
    students = [student_for(counselor) for _ in range(30)]
    for round_ in range(3):
        start = future(hours=24 + 3 * round_)
        bodies = []
        for i in range(12):
            order = students if i % 2 else list(reversed(students))
            body = booking_body(student=students[0], mentor=MentorFactory(), session_type="class_session", start=start)
            body["studentIds"] = [str(s.id) for s in order]
            bodies.append(body)

        responses = race(bodies, counselor)

        assert Counter(r.status_code for r in responses) == {201: 1, 409: 11}
    assert CalendarSlot.objects.filter(status=SlotStatus.BOOKED).count() == 3 * 31
