"""The booking request's SQL does not grow with anything but the number of students (and not even that)."""

from django.db import connection
from django.test.utils import CaptureQueriesContext

from booking_project.authentication import token_memory
from holds_app.models import Hold, HoldStatus
from sessions_app.models import Session
from tests.conftest import BOOK_URL, booking_body, funded_student
from tests.factories import MentorFactory, future, student_for

# token lookup, people, entitlement lock, then one statement for every row (holds, slots, session, its students,
# outbox event, saga row, audit entry): 4 statements (13 when each row was its own). Inside a test the booking's own
# transaction is a savepoint of the test's (2 more); the Idempotency-Key adds the key lock and lookup (its record
# is one more row of that statement).
MAX_QUERIES_PER_BOOKING = 4 + 2
MAX_QUERIES_WITH_IDEMPOTENCY_KEY = MAX_QUERIES_PER_BOOKING + 2


def test_one_billable_booking_stays_within_its_query_budget(
    counselor_api, mentor, student, django_assert_max_num_queries
):
    with django_assert_max_num_queries(MAX_QUERIES_PER_BOOKING):
        response = counselor_api.post(BOOK_URL, booking_body(student=student, mentor=mentor), format="json")
    assert response.status_code == 201
    assert response.json()["status"] == "PENDING_MEETING"
    assert Session.objects.filter(id=response.json()["sessionId"]).exists()


def test_a_keyed_booking_stays_within_its_query_budget(counselor_api, mentor, student, django_assert_max_num_queries):
    with django_assert_max_num_queries(MAX_QUERIES_WITH_IDEMPOTENCY_KEY):
        response = counselor_api.post(
            BOOK_URL, booking_body(student=student, mentor=mentor), format="json", headers={"Idempotency-Key": "budget"}
        )
    assert response.status_code == 201
    # the key was remembered within the budget: the same request again answers the same session
    again = counselor_api.post(
        BOOK_URL, booking_body(student=student, mentor=mentor), format="json", headers={"Idempotency-Key": "budget"}
    )
    assert again.json()["sessionId"] == response.json()["sessionId"]


def test_a_class_of_fifty_costs_the_same_queries_as_a_class_of_one(counselor_api, counselor):
    def queries_for_class(size: int, hours: int) -> int:
        students = [student_for(counselor) for _ in range(size)]
        body = booking_body(
            student=students[0], mentor=MentorFactory(), session_type="class_session", start=future(hours=hours)
        )
        body["studentIds"] = [str(s.id) for s in students]
        token_memory.clear()  # each booking looks its token up, as the first of a process does
        with CaptureQueriesContext(connection) as queries:
            response = counselor_api.post(BOOK_URL, body, format="json")
        assert response.status_code == 201, response.json()
        # the class really holds every student: a cheap answer that booked fewer would prove nothing
        assert len(Session.objects.get(id=response.json()["sessionId"]).student_ids) == size
        return len(queries)

    # a class is not billable: no entitlement lock
    assert (
        queries_for_class(1, 30) == queries_for_class(3, 35) == queries_for_class(50, 40) <= MAX_QUERIES_PER_BOOKING - 1
    )


def test_a_billable_booking_of_another_student_costs_the_same(counselor_api, counselor):
    def queries_for_student(hours: int) -> int:
        student = funded_student(counselor)
        token_memory.clear()  # each booking looks its token up, as the first of a process does
        with CaptureQueriesContext(connection) as queries:
            response = counselor_api.post(
                BOOK_URL, booking_body(student=student, mentor=MentorFactory(), start=future(hours)), format="json"
            )
        # both bookings must really be made (a refused booking costs fewer queries, and would prove nothing)
        assert response.status_code == 201, response.json()
        assert Hold.objects.filter(session_id=response.json()["sessionId"], status=HoldStatus.ACTIVE).count() == 1
        return len(queries)

    assert queries_for_student(30) == queries_for_student(40)
