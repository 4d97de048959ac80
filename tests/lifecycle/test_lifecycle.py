"""Cancel, reschedule and complete (API.md "Act"): what the request changes at once, and what the meeting
operation then does at the provider (answered by `responses`, driven in-process step by step)."""

import json
import re
from datetime import UTC, timedelta

import pytest
import responses
from django.utils import timezone

from calendar_app.models import CalendarSlot, SlotStatus
from holds_app.models import Hold, HoldStatus
from meetings_app.models import Meeting, MeetingStatus
from sessions_app.meeting_operations import (
    meeting_operation_advance,
    meeting_operations_redrive_due,
)
from sessions_app.models import (
    AuditEntry,
    MeetingOperation,
    MeetingOperationState,
    MeetingSaga,
    OutboxEvent,
    SagaState,
    Session,
    SessionStatus,
)
from sessions_app.repairs import meeting_move_retry, saga_meeting_cancel_retry
from sessions_app.saga import saga_advance
from tests.conftest import assert_error, detail_url, table_counts
from tests.factories import future
from tests.saga.conftest import FEISHU, RESERVE_APPLY, ZOOM_API, feishu_reserve
from tests.test_metrics import scrape, value

pytestmark = pytest.mark.usefixtures("providers")

RESERVE = f"{FEISHU}/open-apis/vc/v1/reserves/r123456789"


def action_url(session: Session, action: str) -> str:
    return f"{detail_url(session.id)}/{action}"


def operation_of(session: Session) -> MeetingOperation:
    return MeetingOperation.objects.filter(session_id=session.id).latest("created_at")


def results(session: Session, operation: str) -> list[dict]:
    return [
        e.payload
        for e in OutboxEvent.objects.filter(type__endswith="meeting.operation.result").order_by("created_at")
        if e.payload["sessionId"] == str(session.id) and e.payload["operation"] == operation
    ]


def events_of(session: Session, kind: str) -> list[dict]:
    return [
        e.payload
        for e in OutboxEvent.objects.filter(type__endswith=kind).order_by("created_at")
        if e.payload["sessionId"] == str(session.id)
    ]


# --- cancel ----------------------------------------------------------------------------------------------


def test_cancel_of_a_scheduled_session_gives_back_at_once_and_then_cancels_the_meeting(
    counselor_api, providers, scheduled
):
    session = scheduled()
    delete = providers.delete(RESERVE, json={"code": 0, "msg": "ok"})

    response = counselor_api.post(action_url(session, "cancel"))

    assert response.status_code == 200, response.content
    assert response.json()["status"] == "CANCELLED"
    assert Hold.objects.get(session_id=session.id).status == HoldStatus.RELEASED
    assert set(CalendarSlot.objects.filter(id__in=session.slot_ids).values_list("status", flat=True)) == {
        SlotStatus.CANCELLED
    }
    [cancelled] = events_of(session, "session.cancelled")
    assert delete.call_count == 0, "the provider is not called inside the request"
    counted = value(
        scrape(), "booking_meeting_operation_outcomes_total", session_type="regular_mentoring", operation="cancel",
        status="success",
    )  # fmt: skip

    assert meeting_operation_advance(operation_id=cancelled["operationId"]).retry_in is None
    meeting_operation_advance(operation_id=cancelled["operationId"])  # a second delivery changes nothing

    assert delete.call_count == 1
    assert Meeting.objects.get(id=session.meeting_id).status == MeetingStatus.CANCELLED
    assert operation_of(session).state == MeetingOperationState.SUCCEEDED
    outcome = {"session_type": "regular_mentoring", "operation": "cancel", "status": "success"}
    assert value(scrape(), "booking_meeting_operation_outcomes_total", **outcome) == counted + 1
    [result] = results(session, "cancel")
    assert result["status"] == "success" and result["meetingId"] == str(session.meeting_id)
    [entry] = AuditEntry.objects.filter(session_id=session.id, action="cancelled")
    assert entry.before["status"] == "SCHEDULED" and entry.after["status"] == "CANCELLED"


def test_cancel_before_provisioning_ends_the_saga_without_making_a_meeting(counselor_api, providers, book):
    apply = providers.post(RESERVE_APPLY, json=feishu_reserve())
    session = book()

    assert counselor_api.post(action_url(session, "cancel")).status_code == 200
    meeting_operation_advance(operation_id=operation_of(session).id)  # drives the saga to its end, then waits
    meeting_operation_advance(operation_id=operation_of(session).id)

    assert apply.call_count == 0
    assert MeetingSaga.objects.get(session_id=session.id).state == SagaState.FAILED
    assert operation_of(session).state == MeetingOperationState.SUCCEEDED
    assert [r["status"] for r in results(session, "cancel")] == ["success"]
    assert Hold.objects.get(session_id=session.id).status == HoldStatus.RELEASED


def test_cancel_waits_while_the_meeting_is_being_made(counselor_api, providers, book):
    session = book()
    MeetingSaga.objects.filter(session_id=session.id).update(
        state=SagaState.CREATING, attempts=1, attempt_started_at=timezone.now()
    )

    assert counselor_api.post(action_url(session, "cancel")).status_code == 200
    step = meeting_operation_advance(operation_id=operation_of(session).id)

    assert step.retry_in is not None and step.retry_in > 0
    assert operation_of(session).state == MeetingOperationState.PENDING
    assert not results(session, "cancel")
    assert not [c for c in providers.calls if "reserves" in c.request.url]


def test_cancel_of_a_failed_session_has_nothing_to_cancel_at_the_provider(counselor_api, providers, book):
    providers.post(RESERVE_APPLY, status=400, json={"code": 121001, "msg": "bad owner"})
    session = book()
    saga_advance(session_id=session.id)
    assert Session.objects.get(id=session.id).status == SessionStatus.MEETING_FAILED

    assert counselor_api.post(action_url(session, "cancel")).json()["status"] == "CANCELLED"
    meeting_operation_advance(operation_id=operation_of(session).id)

    assert operation_of(session).state == MeetingOperationState.SUCCEEDED
    assert [r["status"] for r in results(session, "cancel")] == ["success"]


def test_a_provider_that_will_not_cancel_is_retried_then_flagged_for_a_person(
    counselor_api, providers, scheduled, settings
):
    settings.MEETING_OPERATION_MAX_ATTEMPTS = 3
    session = scheduled()
    delete = providers.delete(RESERVE, status=503)
    counselor_api.post(action_url(session, "cancel"))
    operation_id = operation_of(session).id

    steps = [meeting_operation_advance(operation_id=operation_id) for _ in range(3)]

    assert [s.retry_in is not None for s in steps] == [True, True, False]
    assert delete.call_count == 3
    assert operation_of(session).state == MeetingOperationState.FAILED
    saga = MeetingSaga.objects.get(session_id=session.id)
    assert saga.requires_manual_intervention and "could not be cancelled" in saga.manual_intervention_reason
    [result] = results(session, "cancel")
    assert result["status"] == "failed" and "Cancel it at the provider" in result["failureReason"]
    assert Session.objects.get(id=session.id).status == SessionStatus.CANCELLED
    assert counselor_api.get(detail_url(session.id)).json()["requiresManualIntervention"] is True

    # The provider is back: the operator's "retry the provider cancel" clears it.
    providers.replace(responses.DELETE, RESERVE, json={"code": 0, "msg": "ok"})
    assert saga_meeting_cancel_retry(session_id=session.id, actor_id=None)
    assert Meeting.objects.get(id=session.meeting_id).status == MeetingStatus.CANCELLED
    assert not MeetingSaga.objects.get(session_id=session.id).requires_manual_intervention


@pytest.mark.parametrize("action", ["cancel", "complete", "reschedule"])
def test_an_action_on_a_cancelled_session_is_invalid_state_and_changes_nothing(counselor_api, book, action):
    session = book()
    counselor_api.post(action_url(session, "cancel"))
    before = table_counts()

    body = {"scheduledStartTime": future(hours=72).isoformat(), "duration": 60}
    response = counselor_api.post(action_url(session, action), body if action == "reschedule" else None, format="json")

    error = assert_error(response, 409, "INVALID_STATE")
    assert error["details"]["status"] == "CANCELLED"
    assert table_counts() == before


# --- reschedule ------------------------------------------------------------------------------------------


def test_reschedule_moves_the_slots_at_once_and_then_the_meeting(counselor_api, providers, scheduled):
    session = scheduled()
    update = providers.put(RESERVE, json={"code": 0, "msg": "ok", "data": {"reserve": {"id": "r123456789"}}})
    new_start = future(hours=96)

    response = counselor_api.post(
        action_url(session, "reschedule"), {"scheduledStartTime": new_start.isoformat(), "duration": 45}, format="json"
    )

    assert response.status_code == 200, response.content
    body = response.json()
    assert body["status"] == "SCHEDULED" and body["duration"] == 45
    assert body["scheduledAt"] == new_start.astimezone(UTC).isoformat().replace("+00:00", "Z")
    slots = CalendarSlot.objects.filter(id__in=session.slot_ids)
    assert {(s.start, s.end, s.status) for s in slots} == {
        (new_start, new_start + timedelta(minutes=45), SlotStatus.BOOKED)
    }
    assert all(s.metadata["meetingUrl"] for s in slots), "the moved slots keep the meeting's link"
    [moved] = events_of(session, "session.rescheduled")
    assert moved["previous"]["duration"] == 60
    assert update.call_count == 0

    meeting_operation_advance(operation_id=moved["operationId"])

    assert update.call_count == 1
    meeting = Meeting.objects.get(id=session.meeting_id)
    assert (meeting.start_time, meeting.duration_minutes) == (new_start, 45)
    [result] = results(session, "update")
    assert result["status"] == "success" and result["duration"] == 45
    assert result["scheduledStartTime"] == new_start.astimezone(UTC).isoformat()
    assert AuditEntry.objects.filter(session_id=session.id, action="rescheduled").count() == 1


def test_reschedule_by_half_an_hour_overlaps_its_own_old_time(counselor_api, scheduled):
    session = scheduled()
    new_start = session.scheduled_at + timedelta(minutes=30)

    response = counselor_api.post(
        action_url(session, "reschedule"), {"scheduledStartTime": new_start.isoformat(), "duration": 60}, format="json"
    )

    assert response.status_code == 200, response.content
    assert {s.start for s in CalendarSlot.objects.filter(id__in=session.slot_ids)} == {new_start}


def test_reschedule_into_a_conflict_is_409_and_changes_nothing(counselor_api, scheduled, book):
    session = scheduled()
    other = book(hours=100)
    before = table_counts()
    slots_before = list(CalendarSlot.objects.filter(id__in=session.slot_ids).values("during", "status"))

    response = counselor_api.post(
        action_url(session, "reschedule"),
        {"scheduledStartTime": (other.scheduled_at + timedelta(minutes=15)).isoformat(), "duration": 60},
        format="json",
    )

    error = assert_error(response, 409, "SLOT_CONFLICT")
    assert {c["userId"] for c in error["details"]["conflicts"]} == {str(other.mentor_id), str(other.student_ids[0])}
    assert table_counts() == before
    assert list(CalendarSlot.objects.filter(id__in=session.slot_ids).values("during", "status")) == slots_before
    assert Session.objects.get(id=session.id).scheduled_at == session.scheduled_at


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"scheduledStartTime": None, "duration": 60, "drop": "scheduledStartTime"}, "scheduledStartTime"),
        ({"scheduledStartTime": "2020-01-01T10:00:00+00:00", "duration": 60}, "scheduledStartTime"),
        ({"scheduledStartTime": "2026-12-01T10:00:00", "duration": 60}, "scheduledStartTime"),
        ({"scheduledStartTime": "tomorrow", "duration": 60}, "scheduledStartTime"),
        ({"scheduledStartTime": None, "duration": 60}, "scheduledStartTime"),
        ({"duration": 5}, "duration"),
        ({"duration": "60"}, "duration"),
        ({"duration": 60, "mentorId": "x"}, "mentorId"),
    ],
)
def test_reschedule_with_a_bad_body_is_400_and_changes_nothing(counselor_api, scheduled, body, field):
    session = scheduled()
    body = {"scheduledStartTime": future(hours=80).isoformat(), **body}
    body.pop(body.pop("drop", None), None)
    before = table_counts()

    response = counselor_api.post(action_url(session, "reschedule"), body, format="json")

    error = assert_error(response, 400, "VALIDATION_ERROR")
    assert field in error["details"]
    assert table_counts() == before


def test_reschedule_of_a_pending_session_is_invalid_state(counselor_api, book):
    session = book()
    body = {"scheduledStartTime": future(hours=80).isoformat(), "duration": 60}

    assert_error(counselor_api.post(action_url(session, "reschedule"), body, format="json"), 409, "INVALID_STATE")


def test_reschedule_to_the_same_time_changes_nothing(counselor_api, scheduled):
    session = scheduled()
    before = table_counts()
    body = {"scheduledStartTime": session.scheduled_at.isoformat(), "duration": session.duration_minutes}

    assert counselor_api.post(action_url(session, "reschedule"), body, format="json").status_code == 200
    assert table_counts() == before


def test_a_move_overtaken_by_a_later_move_is_superseded(counselor_api, providers, scheduled):
    session = scheduled()
    update = providers.put(RESERVE, json={"code": 0, "msg": "ok", "data": {}})
    for hours in (80, 90):
        body = {"scheduledStartTime": future(hours=hours).isoformat(), "duration": 60}
        assert counselor_api.post(action_url(session, "reschedule"), body, format="json").status_code == 200
    first, second = MeetingOperation.objects.filter(session_id=session.id).order_by("created_at")

    meeting_operation_advance(operation_id=first.id)
    meeting_operation_advance(operation_id=second.id)

    first.refresh_from_db()
    assert first.state == MeetingOperationState.SUPERSEDED
    assert update.call_count == 1
    assert Meeting.objects.get(id=session.meeting_id).start_time == future(hours=90)


def test_a_move_the_provider_refuses_keeps_the_new_time_and_asks_a_person(counselor_api, providers, scheduled):
    session = scheduled()
    providers.put(RESERVE, status=400, json={"code": 121002, "msg": "reserve is expired"})
    body = {"scheduledStartTime": future(hours=80).isoformat(), "duration": 60}
    counselor_api.post(action_url(session, "reschedule"), body, format="json")

    meeting_operation_advance(operation_id=operation_of(session).id)

    assert operation_of(session).state == MeetingOperationState.FAILED
    read = counselor_api.get(detail_url(session.id)).json()
    assert read["status"] == "SCHEDULED" and read["requiresManualIntervention"] is True
    assert Session.objects.get(id=session.id).scheduled_at == future(hours=80)
    [result] = results(session, "update")
    assert result["status"] == "failed" and "could not be moved" in result["failureReason"]

    # The provider is back: the operator's "retry moving the meeting" moves it and clears the flag.
    providers.replace(responses.PUT, RESERVE, json={"code": 0, "msg": "ok", "data": {}})
    assert meeting_move_retry(session_id=session.id, actor_id=None)
    assert Meeting.objects.get(id=session.meeting_id).start_time == future(hours=80)
    assert not MeetingSaga.objects.get(session_id=session.id).requires_manual_intervention


def test_a_zoom_meeting_is_moved_with_its_new_start_and_duration(counselor_api, providers, scheduled, book):
    providers.post(
        re.compile(rf"{re.escape(ZOOM_API)}/users/.+/meetings"),
        status=201,
        json={"id": 77, "join_url": "https://zoom.test/j/77"},
    )
    session = book(provider="zoom")
    saga_advance(session_id=session.id)
    patch = providers.patch(f"{ZOOM_API}/meetings/77", status=204)
    new_start = future(hours=80)
    body = {"scheduledStartTime": new_start.isoformat(), "duration": 30}
    counselor_api.post(action_url(session, "reschedule"), body, format="json")

    meeting_operation_advance(operation_id=operation_of(session).id)

    sent = patch.calls[0].request
    assert json.loads(sent.body)["duration"] == 30
    assert json.loads(sent.body)["start_time"].startswith(new_start.astimezone(UTC).strftime("%Y-%m-%dT%H:%M"))


# --- complete --------------------------------------------------------------------------------------------


def test_complete_after_the_start_consumes_the_hold(counselor_api, scheduled):
    session = scheduled()
    Session.objects.filter(id=session.id).update(scheduled_at=timezone.now() - timedelta(minutes=5))

    response = counselor_api.post(action_url(session, "complete"))

    assert response.status_code == 200 and response.json()["status"] == "COMPLETED"
    assert Hold.objects.get(session_id=session.id).status == HoldStatus.CONSUMED
    assert AuditEntry.objects.filter(session_id=session.id, action="completed").count() == 1


def test_complete_before_the_start_is_invalid_state(counselor_api, scheduled):
    session = scheduled()

    error = assert_error(counselor_api.post(action_url(session, "complete")), 409, "INVALID_STATE")

    assert "before it starts" in error["message"]
    assert Hold.objects.get(session_id=session.id).status == HoldStatus.ACTIVE


@pytest.mark.parametrize("status", ["PENDING_MEETING", "MEETING_FAILED", "COMPLETED"])
def test_complete_in_a_wrong_status_is_invalid_state(counselor_api, book, status):
    session = book()
    Session.objects.filter(id=session.id).update(status=status, scheduled_at=timezone.now() - timedelta(hours=1))
    before = table_counts()

    assert_error(counselor_api.post(action_url(session, "complete")), 409, "INVALID_STATE")
    assert table_counts() == before


# --- the sweep -------------------------------------------------------------------------------------------


def test_the_sweep_redrives_an_operation_whose_message_was_lost(counselor_api, scheduled, settings):
    settings.SAGA_STUCK_AFTER_SECONDS = 60
    session = scheduled()
    counselor_api.post(action_url(session, "cancel"))
    operation = operation_of(session)

    assert meeting_operations_redrive_due() == []
    later = timezone.now() + timedelta(seconds=61)
    assert meeting_operations_redrive_due(now=later) == [operation.id]
    assert meeting_operations_redrive_due(now=later + timedelta(seconds=1)) == [], "once per period"
