"""Reading one session and listing a counselor's sessions (API.md "Read")."""

from datetime import UTC, timedelta

from django.db import connection
from django.test.utils import CaptureQueriesContext

from sessions_app.models import Session, SessionStatus
from tests.conftest import BOOK_URL, LIST_URL, booking_body, detail_url, funded_student
from tests.factories import MentorFactory, future


def _book(api, counselor, *, session_type="regular_mentoring", start=None) -> dict:
    body = booking_body(
        student=funded_student(counselor), mentor=MentorFactory(), session_type=session_type, start=start
    )
    response = api.post(BOOK_URL, body, format="json")
    assert response.status_code == 201, response.json()
    return response.json()


def test_reading_a_session_answers_the_booking_shape_plus_failure_fields(counselor_api, counselor):
    booked = _book(counselor_api, counselor)

    response = counselor_api.get(detail_url(booked["sessionId"]))

    assert response.status_code == 200
    assert response.json() == booked
    assert response.json()["requiresManualIntervention"] is False and response.json()["failureReason"] is None


def test_the_list_is_newest_booking_first_and_paginated(counselor_api, counselor):
    ids = [_book(counselor_api, counselor, start=future(hours=24 + i))["sessionId"] for i in range(3)]

    first_page = counselor_api.get(LIST_URL, {"pageSize": 2}).json()
    second_page = counselor_api.get(LIST_URL, {"pageSize": 2, "page": 2}).json()

    assert first_page["count"] == 3
    assert [s["sessionId"] for s in first_page["results"]] == [ids[2], ids[1]]
    assert first_page["previous"] is None and "page=2" in first_page["next"]
    assert [s["sessionId"] for s in second_page["results"]] == [ids[0]]
    assert second_page["next"] is None


def test_the_list_filters_by_status_and_type(counselor_api, counselor):
    mentoring = _book(counselor_api, counselor, session_type="regular_mentoring", start=future(hours=30))
    comm = _book(counselor_api, counselor, session_type="comm_session", start=future(hours=40))
    Session.objects.filter(id=comm["sessionId"]).update(status=SessionStatus.CANCELLED)

    by_type = counselor_api.get(LIST_URL, {"sessionType": "regular_mentoring"}).json()
    by_status = counselor_api.get(LIST_URL, {"status": "CANCELLED"}).json()
    both = counselor_api.get(LIST_URL, {"status": "CANCELLED", "sessionType": "regular_mentoring"}).json()

    assert [s["sessionId"] for s in by_type["results"]] == [mentoring["sessionId"]]
    assert [s["sessionId"] for s in by_status["results"]] == [comm["sessionId"]]
    assert both["count"] == 0


def test_the_list_filters_by_start_time_from_inclusive_to_exclusive(counselor_api, counselor):
    start = future(hours=50)
    early = _book(counselor_api, counselor, start=start)
    late = _book(counselor_api, counselor, start=start + timedelta(hours=5))

    window = counselor_api.get(LIST_URL, {"from": start.isoformat(), "to": (start + timedelta(hours=5)).isoformat()})
    # The same instant written with another offset selects the same sessions.
    shifted = start.astimezone(UTC).replace(tzinfo=None) + timedelta(hours=5)
    after = counselor_api.get(LIST_URL, {"from": shifted.strftime("%Y-%m-%dT%H:%M:%S") + "+05:00"})

    assert [s["sessionId"] for s in window.json()["results"]] == [early["sessionId"]]
    assert {s["sessionId"] for s in after.json()["results"]} == {early["sessionId"], late["sessionId"]}


def test_listing_costs_the_same_queries_for_three_sessions_or_thirty(counselor_api, counselor):
    def queries_to_list() -> int:
        with CaptureQueriesContext(connection) as queries:
            assert counselor_api.get(LIST_URL, {"pageSize": 100}).status_code == 200
        return len(queries)

    for i in range(3):
        _book(counselor_api, counselor, session_type="comm_session", start=future(hours=24 + i))
    with_three = queries_to_list()
    for i in range(27):
        _book(counselor_api, counselor, session_type="class_session", start=future(hours=30 + i))

    assert queries_to_list() == with_three
