"""What one booking leaves in the database, type by type, and that a refused booking leaves nothing."""

from datetime import UTC, datetime, timedelta

import pytest

from calendar_app.models import CalendarSlot, SlotStatus
from holds_app.models import Hold, HoldStatus
from sessions_app.models import OutboxEvent, Session, SessionStatus
from sessions_app.types import SESSION_TYPES
from tests.conftest import BOOK_URL, booking_body, funded_student, table_counts
from tests.factories import EntitlementFactory, MentorFactory, future, student_for


@pytest.mark.parametrize("session_type", list(SESSION_TYPES))
def test_each_type_books_exactly_its_rows(counselor_api, counselor, mentor, student, session_type):
    before = table_counts()

    response = counselor_api.post(
        BOOK_URL, booking_body(student=student, mentor=mentor, session_type=session_type), format="json"
    )

    assert response.status_code == 201, response.json()
    body = response.json()
    session = Session.objects.get(id=body["sessionId"])
    billable = SESSION_TYPES[session_type].billable
    after = table_counts()
    assert after["sessions_app.Session"] - before["sessions_app.Session"] == 1
    assert after["sessions_app.SessionStudent"] - before["sessions_app.SessionStudent"] == 1
    assert after["calendar_app.CalendarSlot"] - before["calendar_app.CalendarSlot"] == 2
    assert after["holds_app.Hold"] - before["holds_app.Hold"] == (1 if billable else 0)
    assert after["sessions_app.OutboxEvent"] - before["sessions_app.OutboxEvent"] == 1
    assert after["meetings_app.Meeting"] == before["meetings_app.Meeting"]

    assert session.status == SessionStatus.PENDING_MEETING and session.meeting_id is None
    slots = CalendarSlot.objects.filter(id__in=session.slot_ids)
    assert {s.user_id for s in slots} == {mentor.id, student.id}
    assert all(s.status == SlotStatus.BOOKED and s.session_id is None and s.meeting_id is None for s in slots)
    assert all(s.during.lower == session.scheduled_at and s.session_type == session_type for s in slots)
    if billable:
        hold = Hold.objects.get(session_id=session.id)
        assert hold.status == HoldStatus.ACTIVE and hold.entitlement.student_id == student.id

    event = OutboxEvent.objects.get()
    assert event.type == f"{session_type}.session.created" and event.version == 1 and event.published_at is None
    assert event.payload == {
        "sessionId": body["sessionId"],
        "sessionType": session_type,
        "studentId": str(student.id),
        "studentIds": [str(student.id)],
        "mentorId": str(mentor.id),
        "counselorId": body["counselorId"],
        "scheduledStartTime": session.scheduled_at.isoformat(),
        "duration": 60,
        "meetingProvider": "feishu",
        "topic": "Resume review",
        "slotIds": [str(s) for s in session.slot_ids],
    }


def test_response_is_the_contract_shape_with_utc_time_and_location(counselor_api, counselor, mentor, student):
    start = future(hours=30).replace(tzinfo=None)
    body = booking_body(student=student, mentor=mentor, start=None)
    body["scheduledStartTime"] = start.strftime("%Y-%m-%dT%H:%M:%S") + "+08:00"

    response = counselor_api.post(BOOK_URL, body, format="json")

    assert response.status_code == 201
    data = response.json()
    assert response["Location"] == f"/api/counselor/sessions/{data['sessionId']}"
    assert data["scheduledAt"] == (start - timedelta(hours=8)).strftime("%Y-%m-%dT%H:%M:%SZ")
    assert data == {
        "sessionId": data["sessionId"],
        "sessionType": "regular_mentoring",
        "status": "PENDING_MEETING",
        "studentId": str(student.id),
        "studentIds": [str(student.id)],
        "mentorId": str(mentor.id),
        "counselorId": str(counselor.id),
        "scheduledAt": data["scheduledAt"],
        "duration": 60,
        "meetingProvider": "feishu",
        "topic": "Resume review",
        "meetingId": None,
        "meetingNo": None,
        "meetingUrl": None,
        "requiresManualIntervention": False,
        "failureReason": None,
        "startedAt": None,
        "endedAt": None,
    }
    assert datetime.fromisoformat(data["scheduledAt"]) == Session.objects.get().scheduled_at


def test_class_session_books_one_slot_per_student_and_no_hold(counselor_api, counselor, mentor):
    students = [student_for(counselor) for _ in range(12)]
    body = booking_body(student=students[0], mentor=mentor, session_type="class_session")
    body["studentIds"] = [str(s.id) for s in students]

    response = counselor_api.post(BOOK_URL, body, format="json")

    assert response.status_code == 201, response.json()
    assert response.json()["studentIds"] == [str(s.id) for s in students]
    assert response.json()["studentId"] is None
    session = Session.objects.get()
    assert CalendarSlot.objects.filter(id__in=session.slot_ids, status=SlotStatus.BOOKED).count() == 13
    assert Hold.objects.count() == 0


def test_defaults_fill_in_topic_and_provider(counselor_api, mentor, student, settings):
    settings.DEFAULT_MEETING_PROVIDER = "zoom"
    body = booking_body(student=student, mentor=mentor, session_type="gap_analysis")
    del body["topic"], body["meetingProvider"]

    response = counselor_api.post(BOOK_URL, body, format="json")

    assert response.status_code == 201
    assert response.json()["topic"] == SESSION_TYPES["gap_analysis"].default_topic
    assert response.json()["meetingProvider"] == "zoom"


def test_overlapping_booking_is_409_naming_who_is_busy_and_writes_nothing(counselor_api, counselor, mentor, student):
    start = future()
    first = counselor_api.post(BOOK_URL, booking_body(student=student, mentor=mentor, start=start), format="json")
    assert first.status_code == 201
    other_student = funded_student(counselor)
    before = table_counts()

    response = counselor_api.post(
        BOOK_URL,
        booking_body(student=other_student, mentor=mentor, start=start + timedelta(minutes=30), duration=60),
        format="json",
    )

    assert response.status_code == 409
    error = response.json()["error"]
    assert error["code"] == "SLOT_CONFLICT"
    assert error["details"]["conflicts"] == [
        {
            "userId": str(mentor.id),
            "start": start.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "end": (start + timedelta(minutes=60)).astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        }
    ]
    assert table_counts() == before


def test_back_to_back_sessions_do_not_conflict(counselor_api, mentor, student):
    start = future()
    first = counselor_api.post(
        BOOK_URL, booking_body(student=student, mentor=mentor, start=start, duration=60), format="json"
    )
    second = counselor_api.post(
        BOOK_URL,
        booking_body(student=student, mentor=mentor, start=start + timedelta(minutes=60)),
        format="json",
    )

    assert (first.status_code, second.status_code) == (201, 201)


def test_a_cancelled_slot_frees_the_time(counselor_api, mentor, student):
    start = future()
    first = counselor_api.post(BOOK_URL, booking_body(student=student, mentor=mentor, start=start), format="json")
    CalendarSlot.objects.filter(id__in=Session.objects.get(id=first.json()["sessionId"]).slot_ids).update(
        status=SlotStatus.CANCELLED
    )

    again = counselor_api.post(BOOK_URL, booking_body(student=student, mentor=mentor, start=start), format="json")

    assert again.status_code == 201


def test_student_busy_with_another_mentor_is_a_conflict_naming_the_student(counselor_api, mentor, student):
    start = future()
    assert (
        counselor_api.post(
            BOOK_URL, booking_body(student=student, mentor=mentor, start=start), format="json"
        ).status_code
        == 201
    )
    other_mentor = MentorFactory()
    before = table_counts()

    response = counselor_api.post(
        BOOK_URL, booking_body(student=student, mentor=other_mentor, start=start), format="json"
    )

    assert response.status_code == 409
    assert [c["userId"] for c in response.json()["error"]["details"]["conflicts"]] == [str(student.id)]
    assert table_counts() == before


def test_no_free_unit_is_409_insufficient_balance_and_writes_nothing(counselor_api, counselor, mentor):
    student = student_for(counselor)
    EntitlementFactory(student=student, session_type="ai_career", units_bought=1)
    assert (
        counselor_api.post(
            BOOK_URL, booking_body(student=student, mentor=mentor, session_type="ai_career"), format="json"
        ).status_code
        == 201
    )
    before = table_counts()

    response = counselor_api.post(
        BOOK_URL,
        booking_body(student=student, mentor=mentor, session_type="ai_career", start=future(hours=72)),
        format="json",
    )

    assert response.status_code == 409
    assert response.json()["error"]["code"] == "INSUFFICIENT_BALANCE"
    assert response.json()["error"]["details"] == {
        "studentId": str(student.id),
        "sessionType": "ai_career",
        "available": 0,
    }
    assert table_counts() == before


def test_student_without_entitlement_cannot_book_a_billable_type_but_can_book_a_free_one(
    counselor_api, counselor, mentor
):
    student = student_for(counselor)

    billable = counselor_api.post(BOOK_URL, booking_body(student=student, mentor=mentor), format="json")
    free = counselor_api.post(
        BOOK_URL, booking_body(student=student, mentor=mentor, session_type="comm_session"), format="json"
    )

    assert billable.status_code == 409 and billable.json()["error"]["code"] == "INSUFFICIENT_BALANCE"
    assert free.status_code == 201
