"""A 409 SLOT_CONFLICT carries details.suggestions: the next free starts, each of which books."""

from collections import Counter
from datetime import datetime, time, timedelta

import pytest

from calendar_app.models import WorkingHours
from calendar_app.services import slots_cancel
from holds_app.services import holds_release
from sessions_app.models import Session, SessionStatus
from tests.availability.conftest import at, availability, local_day, starts_of
from tests.conftest import BOOK_URL, api_client_for, assert_error, booking_body, funded_student, race_posts
from tests.factories import CounselorFactory, MentorFactory
from tests.lifecycle.conftest import book, scheduled  # noqa: F401 - the fixtures, by name
from tests.saga.conftest import providers  # noqa: F401 - the fixture, by name


def post_booking(client, *, mentor, student, start: datetime, duration: int = 60):
    return client.post(
        BOOK_URL, booking_body(student=student, mentor=mentor, start=start, duration=duration), format="json"
    )


def each_books(client, suggestions, *, mentor, student, duration: int = 60) -> None:
    """Every suggestion books 201 (each one cancelled again, so the next is tried on its own)."""
    assert suggestions
    for suggestion in suggestions:
        start = datetime.fromisoformat(suggestion["start"])
        assert datetime.fromisoformat(suggestion["end"]) - start == timedelta(minutes=duration)
        response = post_booking(client, mentor=mentor, student=student, start=start, duration=duration)
        assert response.status_code == 201, response.content
        client.post(f"/api/counselor/sessions/{response.json()['sessionId']}/cancel")


@pytest.mark.django_db
def test_a_booking_conflict_suggests_the_next_free_starts_and_each_books(settings, counselor, counselor_api, mentor):
    settings.AVAILABILITY_SUGGESTIONS = 3
    first, second = funded_student(counselor), funded_student(counselor)
    day = local_day()
    assert post_booking(counselor_api, mentor=mentor, student=first, start=at(day, 10)).status_code == 201
    assert post_booking(counselor_api, mentor=mentor, student=first, start=at(day, 11, 30)).status_code == 201

    response = post_booking(counselor_api, mentor=mentor, student=second, start=at(day, 10, 15))

    error = assert_error(response, 409, "SLOT_CONFLICT")
    assert error["details"]["conflicts"]  # still there, as before
    suggestions = error["details"]["suggestions"]
    # After 10:15: 10:30 .. 11:15 overlap a booking, 11:30 .. 12:15 the next; 12:30 is the first free start.
    assert [s["start"] for s in suggestions] == [at(day, h, m).isoformat() for h, m in ((12, 30), (12, 45), (13, 0))]
    assert Session.objects.count() == 2
    each_books(counselor_api, suggestions, mentor=mentor, student=second)


@pytest.mark.django_db
def test_suggestions_follow_working_hours_and_are_empty_when_nothing_is_free(settings, counselor_api, mentor, student):
    settings.AVAILABILITY_SUGGESTION_DAYS = 1
    for weekday in range(7):
        WorkingHours.objects.create(mentor=mentor, weekday=weekday, starts_at=time(9), ends_at=time(10))
    day = local_day()
    other = funded_student(CounselorFactory())
    other_counselor_api = api_client_for(other.profile.counselor)
    assert post_booking(other_counselor_api, mentor=mentor, student=other, start=at(day, 9)).status_code == 201

    error = assert_error(
        post_booking(counselor_api, mentor=mentor, student=student, start=at(day, 9)), 409, "SLOT_CONFLICT"
    )

    # The next day's 09:00 is a whole day later: beyond the one day searched.
    assert error["details"]["suggestions"] == []


@pytest.mark.django_db
def test_a_reschedule_conflict_suggests_times_the_session_itself_does_not_block(counselor_api, student, scheduled):  # noqa: F811
    session = scheduled(hours=48)
    two_hours_later = session.scheduled_at + timedelta(hours=2)
    # The student is busy for the hour two hours later, with another mentor.
    assert (
        post_booking(counselor_api, mentor=MentorFactory(), student=student, start=two_hours_later).status_code == 201
    )

    response = counselor_api.post(
        f"/api/counselor/sessions/{session.id}/reschedule",
        {"scheduledStartTime": (two_hours_later - timedelta(minutes=30)).isoformat(), "duration": 60},
        format="json",
    )

    suggestions = assert_error(response, 409, "SLOT_CONFLICT")["details"]["suggestions"]
    assert len(suggestions) == 3
    assert all(datetime.fromisoformat(s["start"]) >= two_hours_later + timedelta(hours=1) for s in suggestions)
    moved = counselor_api.post(
        f"/api/counselor/sessions/{session.id}/reschedule",
        {"scheduledStartTime": suggestions[0]["start"], "duration": 60},
        format="json",
    )
    assert moved.status_code == 200, moved.content


@pytest.mark.django_db
def test_a_retry_at_a_new_time_that_conflicts_suggests_times_that_book(counselor_api, mentor, student):
    day = local_day()
    session_id = post_booking(counselor_api, mentor=mentor, student=student, start=at(day, 9)).json()["sessionId"]
    session = Session.objects.get(id=session_id)
    # As the saga leaves a session whose meeting failed: slots freed, hold released.
    slots_cancel(slot_ids=session.slot_ids)
    holds_release(session_id=session.id)
    Session.objects.filter(id=session_id).update(status=SessionStatus.MEETING_FAILED)
    assert (
        post_booking(
            counselor_api, mentor=mentor, student=funded_student(session.counselor), start=at(day, 14)
        ).status_code
        == 201
    )

    response = counselor_api.post(
        f"/api/counselor/sessions/{session_id}/retry",
        {"scheduledStartTime": at(day, 14, 30).isoformat(), "duration": 60},
        format="json",
    )

    suggestions = assert_error(response, 409, "SLOT_CONFLICT")["details"]["suggestions"]
    assert suggestions[0]["start"] == at(day, 15).isoformat()
    retried = counselor_api.post(
        f"/api/counselor/sessions/{session_id}/retry",
        {"scheduledStartTime": suggestions[0]["start"], "duration": 60},
        format="json",
    )
    assert retried.status_code == 200, retried.content


@pytest.mark.django_db(transaction=True)
@pytest.mark.race
def test_two_counselors_taking_the_same_offered_time_end_with_one_booking():
    mentor = MentorFactory()
    counselors = [CounselorFactory(), CounselorFactory()]
    students = [funded_student(c) for c in counselors]
    offered = starts_of(
        availability(api_client_for(counselors[0]), mentor=mentor, students=students[:1], day=local_day())
    )
    assert offered[40] in starts_of(
        availability(api_client_for(counselors[1]), mentor=mentor, students=students[1:], day=local_day())
    )

    responses = race_posts(
        [
            (c, BOOK_URL, booking_body(student=s, mentor=mentor, start=offered[40]))
            for c, s in zip(counselors, students, strict=True)
        ]
    )

    assert Counter(r.status_code for r in responses) == {201: 1, 409: 1}
    assert Session.objects.count() == 1
    loser = next(r for r in responses if r.status_code == 409).json()["error"]
    assert offered[40].isoformat() not in [s["start"] for s in loser["details"]["suggestions"]]
