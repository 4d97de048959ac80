"""GET /api/counselor/availability (API.md "Availability"): what it offers books, what is booked is never
offered, bad input is 4xx in the contract's shape."""

from datetime import datetime, timedelta

import pytest
from django.utils import timezone

from calendar_app.models import WorkingHours
from sessions_app.rules import booking_latest_start
from tests.availability.conftest import AVAILABILITY_URL, SHANGHAI, at, availability, local_day, starts_of
from tests.conftest import BOOK_URL, api_client_for, assert_error, booking_body, funded_student, table_counts
from tests.factories import CounselorFactory, MentorFactory

pytestmark = pytest.mark.django_db


def book(client, *, mentor, students, start: datetime, duration: int = 60):
    body = booking_body(student=students[0], mentor=mentor, start=start, duration=duration)
    if len(students) > 1:
        body = booking_body(
            student=students[0], mentor=mentor, start=start, duration=duration, session_type="class_session"
        )
        body["studentIds"] = [str(s.id) for s in students]
    return client.post(BOOK_URL, body, format="json")


def test_the_answer_is_the_grid_of_free_starts_in_the_counselors_time_zone(counselor_api, mentor, student):
    day = local_day()

    response = availability(counselor_api, mentor=mentor, students=[student], day=day, duration=60)

    body = response.json()
    assert set(body) == {"timeZone", "slots", "calendarsChecked"}
    assert body["timeZone"] == "Asia/Shanghai" and body["calendarsChecked"] == []
    # A mentor without working hours works at any hour: every quarter of the day is offered.
    assert len(body["slots"]) == 24 * 4
    first = body["slots"][0]
    assert first == {"start": at(day, 0).isoformat(), "end": at(day, 1).isoformat()}
    assert first["start"].endswith("+08:00")


def test_an_offered_time_books(counselor_api, mentor, student):
    offered = starts_of(availability(counselor_api, mentor=mentor, students=[student], day=local_day(), duration=45))

    response = book(counselor_api, mentor=mentor, students=[student], start=offered[37], duration=45)

    assert response.status_code == 201, response.content


def test_a_booked_time_is_never_offered_for_a_class_with_one_busy_student(counselor, counselor_api, mentor):
    students = [funded_student(counselor) for _ in range(3)]
    day = local_day()
    # The second student alone is busy 10:00-11:00, with another mentor.
    assert book(counselor_api, mentor=MentorFactory(), students=[students[1]], start=at(day, 10)).status_code == 201

    offered = set(starts_of(availability(counselor_api, mentor=mentor, students=students, day=day, duration=60)))

    assert at(day, 9) in offered and at(day, 11) in offered
    for minute in range(15, 120, 15):  # 09:15 .. 10:45 would overlap 10:00-11:00
        assert at(day, 9) + timedelta(minutes=minute) not in offered
    # And what is offered books for the whole class.
    assert book(counselor_api, mentor=mentor, students=students, start=at(day, 11)).status_code == 201


def test_back_to_back_a_session_ending_at_ten_leaves_ten_offered(counselor_api, mentor, student):
    day = local_day()
    assert book(counselor_api, mentor=mentor, students=[student], start=at(day, 9)).status_code == 201

    offered = set(starts_of(availability(counselor_api, mentor=mentor, students=[student], day=day, duration=30)))

    assert at(day, 8, 30) in offered and at(day, 10) in offered
    assert not {at(day, 8, 45), at(day, 9), at(day, 9, 45)} & offered
    assert book(counselor_api, mentor=mentor, students=[student], start=at(day, 10), duration=30).status_code == 201


def test_a_cancelled_session_frees_its_time(counselor_api, mentor, student):
    day = local_day()
    session_id = book(counselor_api, mentor=mentor, students=[student], start=at(day, 9)).json()["sessionId"]
    counselor_api.post(f"/api/counselor/sessions/{session_id}/cancel")

    assert at(day, 9) in starts_of(availability(counselor_api, mentor=mentor, students=[student], day=day))


def test_working_hours_bound_what_is_offered(counselor_api, mentor, student):
    day = local_day()
    for weekday in range(7):
        WorkingHours.objects.create(mentor=mentor, weekday=weekday, starts_at="09:00", ends_at="12:00")
        WorkingHours.objects.create(mentor=mentor, weekday=weekday, starts_at="13:00", ends_at="18:00")

    offered = starts_of(availability(counselor_api, mentor=mentor, students=[student], day=day, duration=60, step=30))

    expected = [at(day, 9), at(day, 9, 30), at(day, 10), at(day, 10, 30), at(day, 11)]
    expected += [at(day, 13) + timedelta(minutes=30 * i) for i in range(9)]
    assert offered == expected


def test_the_past_and_beyond_the_horizon_are_never_offered(counselor_api, mentor, student):
    now = timezone.now()
    today = now.astimezone(SHANGHAI).date()
    offered = starts_of(availability(counselor_api, mentor=mentor, students=[student], day=today, days=2))
    assert offered and min(offered) > now

    latest = booking_latest_start(duration_minutes=60, meeting_provider="feishu", now=now)
    last_day = latest.astimezone(SHANGHAI).date() - timedelta(days=1)
    offered = starts_of(
        availability(counselor_api, mentor=mentor, students=[student], day=last_day, days=5, meetingProvider="feishu")
    )
    assert offered and max(offered) <= latest
    # Zoom has no 30-day end rule of its own: only the horizon bounds it, an hour later.
    zoom = starts_of(
        availability(counselor_api, mentor=mentor, students=[student], day=last_day, days=5, meetingProvider="zoom")
    )
    assert max(zoom) > max(offered)
    assert book(counselor_api, mentor=mentor, students=[student], start=max(offered)).status_code == 201


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"to": "from"}, "to"),  # to == from
        ({"days": 15}, "to"),
        ({"from": "2026-12-01T10:00:00"}, "from"),
        ({"from": "tomorrow"}, "from"),
        ({"duration": 10}, "duration"),
        ({"duration": 241}, "duration"),
        ({"step": 3}, "step"),
        ({"step": 61}, "step"),
        ({"mentorId": "nobody"}, "mentorId"),
        ({"studentIds": "a,b"}, "studentIds"),
        ({"studentIds": ""}, "studentIds"),
        ({"bogus": "1"}, "bogus"),
        ({"to": "9999-12-31T23:59:00+00:00"}, "to"),
    ],
)
def test_bad_input_is_400_naming_the_field_and_changes_nothing(counselor_api, mentor, student, change, field):
    day = local_day()
    params = {
        "mentorId": str(mentor.id),
        "studentIds": str(student.id),
        "duration": 60,
        "from": at(day, 0).isoformat(),
        "to": at(day + timedelta(days=1), 0).isoformat(),
    }
    change = dict(change)
    if "days" in change:
        params["to"] = at(day + timedelta(days=change.pop("days")), 0).isoformat()
    if change.get("to") == "from":
        change["to"] = params["from"]
    params.update(change)
    before = table_counts()

    error = assert_error(counselor_api.get(AVAILABILITY_URL, params), 400, "VALIDATION_ERROR")

    assert field in error["details"], error
    assert table_counts() == before


def test_unknown_mentor_and_another_counselors_student_are_404(counselor_api, mentor, student):
    foreign = funded_student(CounselorFactory())
    day = local_day()

    error = assert_error(availability(counselor_api, mentor=foreign, students=[student], day=day), 404, "NOT_FOUND")
    assert error["details"] == {"mentorId": str(foreign.id)}
    error = assert_error(
        availability(counselor_api, mentor=mentor, students=[student, foreign], day=day), 404, "NOT_FOUND"
    )
    assert error["details"] == {"studentIds": [str(foreign.id)]}


def test_only_counselors_ask(mentor, student):
    day = local_day()
    assert_error(availability(api_client_for(None), mentor=mentor, students=[student], day=day), 401, "UNAUTHENTICATED")
    assert_error(availability(api_client_for(mentor), mentor=mentor, students=[student], day=day), 403, "FORBIDDEN")


def test_the_throttle_answers_429_in_the_contracts_shape(settings, counselor_api, mentor, student):
    settings.THROTTLE_AVAILABILITY_RATE = "2/min"
    day = local_day()
    for _ in range(2):
        assert availability(counselor_api, mentor=mentor, students=[student], day=day).status_code == 200

    response = availability(counselor_api, mentor=mentor, students=[student], day=day)

    assert_error(response, 429, "THROTTLED")
    assert int(response["Retry-After"]) >= 1


# Token, people, counselor's time zone, working hours, exceptions, slots (AvailabilityApi's docstring).
AVAILABILITY_QUERIES = 6


@pytest.mark.parametrize("days", [1, 14])
def test_a_request_costs_the_same_few_queries_for_one_day_or_fourteen(
    counselor, counselor_api, mentor, django_assert_max_num_queries, days
):
    students = [funded_student(counselor) for _ in range(3)]
    day = local_day(1)
    for i in range(days):
        book(counselor_api, mentor=mentor, students=students, start=at(day + timedelta(days=i), 10))
    WorkingHours.objects.create(mentor=mentor, weekday=day.weekday(), starts_at="09:00", ends_at="18:00")

    with django_assert_max_num_queries(AVAILABILITY_QUERIES):
        response = availability(counselor_api, mentor=mentor, students=students, day=day, days=days)

    assert starts_of(response)
