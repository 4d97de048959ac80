"""The session's life through the real stack (issue 15): the beat's clock starts a session by itself, a failed
session is retried at a new time and provisioned there, a begun session cannot be cancelled, and only the
booking counselor acts on a class."""

from datetime import timedelta

import pytest
from django.utils import timezone

from holds_app.models import Hold, HoldStatus
from sessions_app.models import Session, SessionStatus
from tests.conftest import BOOK_URL, api_client_for, assert_error, booking_body, table_counts
from tests.factories import CounselorFactory, future
from tests.integration.conftest import wait_for
from tests.integration.test_lifecycle import act
from tests.integration.test_provisioning_saga import book, read, session_settled

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]


def test_a_session_starting_a_few_seconds_ahead_goes_in_progress_by_itself_and_cannot_be_cancelled(people, sandbox):
    body = booking_body(student=people["student"], mentor=people["mentor"], meetingProvider="zoom")
    body["scheduledStartTime"] = (timezone.now() + timedelta(seconds=4)).isoformat()
    booked = api_client_for(people["counselor"]).post(BOOK_URL, body, format="json").json()
    session_id = booked["sessionId"]

    wait_for(
        lambda: read(people, session_id)["status"] == "IN_PROGRESS",
        timeout=30,
        what="the beat's clock to start the session",
    )

    started = read(people, session_id)
    assert started["meetingUrl"] and started["startedAt"] is None
    before = table_counts()
    error = assert_error(act(people, session_id, "cancel"), 409, "INVALID_STATE")
    assert error["details"]["status"] == "IN_PROGRESS"
    assert table_counts() == before
    assert Hold.objects.get(session_id=session_id).status == HoldStatus.ACTIVE


def test_a_failed_session_is_refused_in_the_past_and_provisioned_at_a_new_time(people, sandbox):
    sandbox.configure(failNext={"create": 100})
    booked = book(people, provider="zoom")
    assert session_settled(booked["sessionId"]).status == SessionStatus.MEETING_FAILED
    sandbox.configure(failNext={"create": 0})
    before = table_counts()

    past = act(
        people, booked["sessionId"], "retry", {"scheduledStartTime": (timezone.now() - timedelta(hours=1)).isoformat()}
    )

    assert_error(past, 400, "VALIDATION_ERROR")
    assert table_counts() == before
    new_start = future(hours=120)
    retried = act(people, booked["sessionId"], "retry", {"scheduledStartTime": new_start.isoformat(), "duration": 45})
    assert retried.status_code == 200, retried.content
    session = session_settled(booked["sessionId"], statuses={SessionStatus.SCHEDULED})
    assert session.scheduled_at == new_start and session.duration_minutes == 45
    [meeting] = sandbox.meetings(status="active")
    assert meeting["startTime"] == new_start.strftime("%Y-%m-%dT%H:%M:%SZ") and meeting["duration"] == 45
    assert read(people, booked["sessionId"])["meetingUrl"]


def test_another_counselors_action_on_a_class_with_one_of_their_students_is_404(people, sandbox):
    other_counselor = CounselorFactory()
    body = booking_body(student=people["student"], mentor=people["mentor"], session_type="class_session")
    body["meetingProvider"] = "zoom"
    booked = api_client_for(people["counselor"]).post(BOOK_URL, body, format="json").json()
    session_settled(booked["sessionId"], statuses={SessionStatus.SCHEDULED})
    # The student moves to the other counselor after the booking.
    people["student"].profile.counselor = other_counselor
    people["student"].profile.save()
    other = api_client_for(other_counselor)

    assert other.get(f"/api/counselor/sessions/{booked['sessionId']}").status_code == 200
    assert_error(other.post(f"/api/counselor/sessions/{booked['sessionId']}/cancel"), 404, "NOT_FOUND")
    assert Session.objects.get(id=booked["sessionId"]).status == SessionStatus.SCHEDULED
    assert act(people, booked["sessionId"], "cancel").json()["status"] == "CANCELLED"
