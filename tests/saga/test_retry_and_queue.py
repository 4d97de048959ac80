"""The counselor's retry of a failed session and the operators' manual-intervention queue."""

from datetime import timedelta

import pytest
from django.utils import timezone

from calendar_app.models import CalendarSlot, SlotStatus
from holds_app.models import Hold, HoldStatus
from sessions_app.models import ManualIntervention, MeetingSaga, OutboxEvent, SagaState, Session, SessionStatus
from sessions_app.saga import saga_advance
from tests.conftest import (
    BOOK_URL,
    api_client_for,
    assert_error,
    booking_body,
    detail_url,
    funded_student,
    table_counts,
)
from tests.factories import MentorFactory, StaffFactory, future

QUEUE_URL = "/admin/sessions_app/manualintervention/"


def failed_session(counselor_api, student, mentor, *, hours: float = 48) -> Session:
    """A booked session whose provisioning failed for good and was compensated."""
    body = booking_body(student=student, mentor=mentor, start=future(hours=hours))
    session_id = counselor_api.post(BOOK_URL, body, format="json").json()["sessionId"]
    MeetingSaga.objects.filter(session_id=session_id).update(
        state=SagaState.COMPENSATING, compensation_reason="Feishu refused to create the meeting: test."
    )
    saga_advance(session_id=session_id)
    session = Session.objects.get(id=session_id)
    assert session.status == SessionStatus.MEETING_FAILED
    return session


def retry_url(session_id) -> str:
    return f"{detail_url(session_id)}/retry"


def test_retry_books_again_and_starts_a_new_round(counselor_api, student, mentor):
    session = failed_session(counselor_api, student, mentor)

    response = counselor_api.post(retry_url(session.id))

    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "PENDING_MEETING" and body["failureReason"] is None
    session.refresh_from_db()
    assert Hold.objects.filter(session_id=session.id, status=HoldStatus.ACTIVE).count() == 1
    assert CalendarSlot.objects.filter(id__in=session.slot_ids, status=SlotStatus.BOOKED).count() == 2
    saga = MeetingSaga.objects.get(session=session)
    assert saga.state == SagaState.PENDING and saga.round == 2 and saga.attempts == 0
    created = OutboxEvent.objects.filter(type="regular_mentoring.session.created").order_by("created_at")
    assert created.count() == 2 and saga.event_id == created.last().id
    assert created.last().payload["slotIds"] == [str(s) for s in session.slot_ids]


def test_retry_of_a_session_that_did_not_fail_is_invalid_state(counselor_api, student, mentor):
    session_id = counselor_api.post(BOOK_URL, booking_body(student=student, mentor=mentor), format="json").json()[
        "sessionId"
    ]
    before = table_counts()

    response = counselor_api.post(retry_url(session_id))

    assert_error(response, 409, "INVALID_STATE")
    assert table_counts() == before


def test_retry_when_the_time_was_taken_meanwhile_is_a_slot_conflict_and_changes_nothing(
    counselor_api, counselor, student, mentor
):
    session = failed_session(counselor_api, student, mentor)
    other_student = funded_student(counselor)
    taken = booking_body(student=other_student, mentor=mentor, start=session.scheduled_at)
    assert counselor_api.post(BOOK_URL, taken, format="json").status_code == 201
    before = table_counts()

    response = counselor_api.post(retry_url(session.id))

    error = assert_error(response, 409, "SLOT_CONFLICT")
    assert error["details"]["conflicts"][0]["userId"] == str(mentor.id)
    assert table_counts() == before
    assert Session.objects.get(id=session.id).status == SessionStatus.MEETING_FAILED


def test_retry_of_another_counselors_session_is_not_found(counselor_api, student, mentor, other_counselor):
    session = failed_session(counselor_api, student, mentor)

    response = api_client_for(other_counselor).post(retry_url(session.id))

    assert_error(response, 404, "NOT_FOUND")
    assert Session.objects.get(id=session.id).status == SessionStatus.MEETING_FAILED


@pytest.mark.parametrize("session_id", ["not-a-uuid", "00000000-0000-0000-0000-000000000000"])
def test_retry_of_an_unknown_session_is_not_found(counselor_api, session_id):
    assert_error(counselor_api.post(retry_url(session_id)), 404, "NOT_FOUND")


def test_retry_answers_405_to_get(counselor_api, student, mentor):
    session = failed_session(counselor_api, student, mentor)
    assert counselor_api.get(retry_url(session.id)).status_code == 405


# --- the manual-intervention queue ---


@pytest.fixture
def operator_client(db, client):
    operator = StaffFactory(is_superuser=True)
    client.force_login(operator)
    client.operator = operator
    return client


def flag(session: Session, reason: str, minutes_ago: int = 0) -> None:
    MeetingSaga.objects.filter(session=session).update(
        requires_manual_intervention=True,
        manual_intervention_reason=reason,
        manual_intervention_at=timezone.now() - timedelta(minutes=minutes_ago),
    )


def test_the_queue_lists_only_sagas_needing_a_person_newest_first(operator_client, counselor_api, student):
    older, newer, fine = (failed_session(counselor_api, student, MentorFactory(), hours=h) for h in (30, 40, 50))
    flag(older, "older problem", minutes_ago=30)
    flag(newer, "newer problem", minutes_ago=1)

    page = operator_client.get(QUEUE_URL).content.decode()

    assert "newer problem" in page and "older problem" in page
    assert page.index(str(newer.id)) < page.index(str(older.id))
    assert str(fine.id) not in page


def test_resolving_with_a_note_records_who_and_when(operator_client, counselor_api, student, mentor):
    session = failed_session(counselor_api, student, mentor)
    flag(session, "meeting left at provider")

    form = operator_client.post(QUEUE_URL, {"action": "resolve_with_note", "_selected_action": [str(session.id)]})
    assert form.status_code == 200 and "Note" in form.content.decode()
    operator_client.post(
        QUEUE_URL,
        {"action": "resolve_with_note", "_selected_action": [str(session.id)], "note": "Deleted it in Feishu."},
    )

    saga = MeetingSaga.objects.get(session=session)
    assert not saga.requires_manual_intervention
    assert saga.resolution_note == "Deleted it in Feishu."
    assert saga.resolved_by == operator_client.operator and saga.resolved_at is not None
    assert not ManualIntervention.objects.filter(requires_manual_intervention=True).exists()


def test_resolving_without_a_note_resolves_nothing(operator_client, counselor_api, student, mentor):
    session = failed_session(counselor_api, student, mentor)
    flag(session, "x")

    operator_client.post(QUEUE_URL, {"action": "resolve_with_note", "_selected_action": [str(session.id)], "note": " "})

    assert MeetingSaga.objects.get(session=session).requires_manual_intervention


def test_reprovision_books_a_failed_session_again(operator_client, counselor_api, student, mentor):
    session = failed_session(counselor_api, student, mentor)
    flag(session, "x")

    operator_client.post(QUEUE_URL, {"action": "reprovision", "_selected_action": [str(session.id)]})

    assert Session.objects.get(id=session.id).status == SessionStatus.PENDING_MEETING
    assert MeetingSaga.objects.get(session=session).round == 2


def test_the_queue_is_read_only(operator_client, counselor_api, student, mentor):
    session = failed_session(counselor_api, student, mentor)
    flag(session, "x")

    change = operator_client.post(f"{QUEUE_URL}{session.id}/change/", {"resolution_note": "sneaky"})

    assert MeetingSaga.objects.get(session=session).resolution_note == ""
    assert change.status_code in (200, 302, 403)


# --- retry at a new time, under the booking rules --------------------------------------------------------


def test_retry_at_a_new_time_books_and_provisions_at_that_time(counselor_api, student, mentor):
    session = failed_session(counselor_api, student, mentor)
    new_start = future(hours=72)

    response = counselor_api.post(
        retry_url(session.id), {"scheduledStartTime": new_start.isoformat(), "duration": 45}, format="json"
    )

    assert response.status_code == 200, response.content
    body = response.json()
    assert body["status"] == "PENDING_MEETING" and body["duration"] == 45
    session.refresh_from_db()
    assert session.scheduled_at == new_start and session.duration_minutes == 45
    slots = CalendarSlot.objects.filter(id__in=session.slot_ids, status=SlotStatus.BOOKED)
    assert {(s.start, s.end) for s in slots} == {(new_start, new_start + timedelta(minutes=45))}
    created = OutboxEvent.objects.filter(type="regular_mentoring.session.created").order_by("created_at").last()
    assert created.payload["scheduledStartTime"] == new_start.isoformat()
    assert created.payload["duration"] == 45


def test_retry_of_a_session_whose_start_has_passed_is_400_and_changes_nothing(counselor_api, student, mentor):
    session = failed_session(counselor_api, student, mentor)
    Session.objects.filter(id=session.id).update(scheduled_at=timezone.now() - timedelta(minutes=1))
    before = table_counts()

    error = assert_error(counselor_api.post(retry_url(session.id)), 400, "VALIDATION_ERROR")

    assert "scheduledStartTime" in error["details"]
    assert table_counts() == before
    assert Session.objects.get(id=session.id).status == SessionStatus.MEETING_FAILED


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"scheduledStartTime": "PAST"}, "scheduledStartTime"),
        ({"scheduledStartTime": "FAR"}, "scheduledStartTime"),
        ({"duration": 10}, "duration"),
        ({"when": "tomorrow"}, "when"),
    ],
)
def test_retry_at_a_refused_time_is_400_and_changes_nothing(counselor_api, student, mentor, body, field):
    session = failed_session(counselor_api, student, mentor)
    times = {"PAST": timezone.now() - timedelta(hours=1), "FAR": timezone.now() + timedelta(days=400)}
    body = {k: (times[v].isoformat() if v in times else v) for k, v in body.items()}
    before = table_counts()

    error = assert_error(counselor_api.post(retry_url(session.id), body, format="json"), 400, "VALIDATION_ERROR")

    assert field in error["details"]
    assert table_counts() == before


def test_retry_at_a_new_time_that_is_taken_is_409_and_changes_nothing(counselor_api, counselor, student, mentor):
    session = failed_session(counselor_api, student, mentor)
    taken_at = future(hours=96)
    other = booking_body(student=funded_student(counselor), mentor=mentor, start=taken_at)
    assert counselor_api.post(BOOK_URL, other, format="json").status_code == 201
    before = table_counts()

    response = counselor_api.post(retry_url(session.id), {"scheduledStartTime": taken_at.isoformat()}, format="json")

    assert_error(response, 409, "SLOT_CONFLICT")
    assert table_counts() == before
    session.refresh_from_db()
    assert session.status == SessionStatus.MEETING_FAILED and session.scheduled_at != taken_at
