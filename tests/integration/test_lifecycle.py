"""Cancel, reschedule and complete end to end: the request answers at once, the real worker then changes
the meeting in the provider sandbox, and the notifications follow the result events."""

from datetime import UTC, timedelta

import pytest
from django.utils import timezone

from calendar_app.models import CalendarSlot, SlotStatus
from holds_app.models import Hold, HoldStatus
from notifications_app.models import Channel, DeliveryState, NotificationDelivery, Reminder
from sessions_app.models import MeetingOperation, MeetingOperationState, Session, SessionStatus
from tests.conftest import api_client_for, assert_error, detail_url, table_counts
from tests.factories import future
from tests.integration.conftest import wait_for
from tests.integration.test_provisioning_saga import book, result_events, session_settled

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]


def act(people, session_id: str, action: str, body: dict | None = None):
    return api_client_for(people["counselor"]).post(f"{detail_url(session_id)}/{action}", body, format="json")


def notified(sandbox, session: Session) -> list[dict]:
    """Once the participants heard of the scheduled session: both calendar events, all four reminders and
    both invitations."""

    def done():
        events = [e for e in sandbox.calendar_events(status="confirmed") if e["summary"] == session.topic]
        reminders = Reminder.objects.filter(session_id=session.id, state=DeliveryState.PENDING).count()
        emails = NotificationDelivery.objects.filter(
            session_id=session.id, channel=Channel.EMAIL, state=DeliveryState.DELIVERED
        ).count()
        calendars = len(events) == 2 and all(e["attendees"] for e in events)
        return events if calendars and reminders == 4 and emails == 2 else None

    return wait_for(done, what=f"the participants of {session.id} to be notified")


def emails_titled(stack, subject: str) -> list:
    return [m for m in stack.emails() if m["Subject"] == subject]


def operation_finished(session_id: str) -> MeetingOperation:
    def finished():
        operation = MeetingOperation.objects.filter(session_id=session_id).order_by("-created_at").first()
        return operation if operation and operation.state in ("succeeded", "failed", "superseded") else None

    return wait_for(finished, what=f"the meeting operation of {session_id} to finish")


def test_cancel_of_a_scheduled_session_cancels_everything(people, sandbox, stack):
    booked = book(people, provider="zoom")
    session = session_settled(booked["sessionId"])
    notified(sandbox, session)

    response = act(people, booked["sessionId"], "cancel")

    assert response.status_code == 200 and response.json()["status"] == "CANCELLED"
    # What the request itself gave back, before any worker ran.
    assert Hold.objects.get(session_id=session.id).status == HoldStatus.RELEASED
    assert set(CalendarSlot.objects.filter(id__in=session.slot_ids).values_list("status", flat=True)) == {
        SlotStatus.CANCELLED
    }
    assert operation_finished(booked["sessionId"]).state == MeetingOperationState.SUCCEEDED
    assert [m["status"] for m in sandbox.meetings()] == ["cancelled"]
    assert [(r["operation"], r["status"]) for r in result_events(booked["sessionId"])] == [
        ("create", "success"),
        ("cancel", "success"),
    ]
    # The participants' side: calendar events deleted, pending reminders cancelled, a "cancelled" email each.
    wait_for(
        lambda: not [e for e in sandbox.calendar_events(status="confirmed") if e["summary"] == session.topic],
        what="both calendar events deleted",
    )
    assert {e["status"] for e in sandbox.calendar_events() if e["summary"] == session.topic} == {"cancelled"}
    wait_for(
        lambda: set(Reminder.objects.filter(session_id=session.id).values_list("state", flat=True))
        == {DeliveryState.SUPERSEDED},
        what="every reminder cancelled",
    )
    cancelled = wait_for(lambda: len(m := emails_titled(stack, f"Session cancelled: {session.topic}")) == 2 and m)
    assert {m["To"] for m in cancelled} == {people["mentor"].email, people["student"].email}


def test_cancel_while_the_meeting_is_being_made_leaves_no_meeting(people, sandbox, stack):
    sandbox.configure(latencyMs=2000)
    booked = book(people, provider="feishu")
    wait_for(lambda: sandbox.requests_received()["create"], what="the create to be in flight")

    response = act(people, booked["sessionId"], "cancel")

    assert response.status_code == 200 and response.json()["status"] == "CANCELLED"
    operation = operation_finished(booked["sessionId"])
    assert operation.state == MeetingOperationState.SUCCEEDED
    # The reservation the in-flight call made was cancelled by the saga, not left behind.
    meetings = wait_for(lambda: sandbox.meetings() or None, what="the sandbox to have made the reservation")
    wait_for(lambda: not sandbox.meetings(status="active"), what="no active meeting at the provider")
    assert len(meetings) == 1
    session = Session.objects.select_related("saga").get(id=booked["sessionId"])
    assert session.status == SessionStatus.CANCELLED
    assert "while its meeting was being made" in session.saga.compensation_reason
    assert [(r["operation"], r["status"]) for r in result_events(booked["sessionId"])] == [("cancel", "success")]


def test_reschedule_into_a_conflict_changes_nothing_and_into_a_free_time_moves_everything(people, sandbox):
    first = book(people, provider="zoom", hours=50)
    other = book(people, provider="zoom", hours=60)
    session = session_settled(first["sessionId"])
    notified(sandbox, session)
    notified(sandbox, session_settled(other["sessionId"]))
    reminders_before = sorted(Reminder.objects.filter(session_id=session.id).values_list("due_at", flat=True))
    before = table_counts()

    taken = {"scheduledStartTime": (future(hours=60) + timedelta(minutes=30)).isoformat(), "duration": 60}
    assert_error(act(people, first["sessionId"], "reschedule", taken), 409, "SLOT_CONFLICT")
    assert table_counts() == before
    assert Session.objects.get(id=session.id).scheduled_at == session.scheduled_at

    new_start = future(hours=70)
    response = act(
        people, first["sessionId"], "reschedule", {"scheduledStartTime": new_start.isoformat(), "duration": 45}
    )

    assert response.status_code == 200, response.content
    assert {(s.start, s.end) for s in CalendarSlot.objects.filter(id__in=session.slot_ids)} == {
        (new_start, new_start + timedelta(minutes=45))
    }
    assert operation_finished(first["sessionId"]).state == MeetingOperationState.SUCCEEDED
    [meeting] = [m for m in sandbox.meetings() if sandbox.meeting_id_of(m) == session.meeting.provider_meeting_id]
    assert meeting["duration"] == 45
    assert meeting["startTime"].startswith(new_start.astimezone(UTC).strftime("%Y-%m-%dT%H:%M"))
    assert ("update", "success") in [(r["operation"], r["status"]) for r in result_events(first["sessionId"])]
    # The participants' side: both calendar events moved with their own reminders, the reminders re-timed.
    moved_to = new_start.astimezone(UTC).isoformat().replace("+00:00", "Z")

    def calendars_moved():
        events = [e for e in sandbox.calendar_events(status="confirmed") if e["summary"] == session.topic]
        return len(events) == 2 and all(e["start"] == moved_to and e["reminders"] == [60, 24 * 60] for e in events)

    wait_for(calendars_moved, what="both calendar events moved")
    offset = new_start - session.scheduled_at
    wait_for(
        lambda: sorted(
            Reminder.objects.filter(session_id=session.id, state=DeliveryState.PENDING).values_list("due_at", flat=True)
        )
        == [due + offset for due in reminders_before],
        what="the reminders re-timed",
    )


def test_complete_consumes_the_hold_and_every_action_after_it_is_invalid_state(people, sandbox):
    booked = book(people)
    session = session_settled(booked["sessionId"])
    Session.objects.filter(id=session.id).update(scheduled_at=timezone.now() - timedelta(minutes=10))

    response = act(people, booked["sessionId"], "complete")

    assert response.status_code == 200 and response.json()["status"] == "COMPLETED"
    assert Hold.objects.get(session_id=session.id).status == HoldStatus.CONSUMED
    for action, body in [
        ("complete", None),
        ("cancel", None),
        ("retry", None),
        ("reschedule", {"scheduledStartTime": future(hours=80).isoformat(), "duration": 60}),
    ]:
        assert_error(act(people, booked["sessionId"], action, body), 409, "INVALID_STATE")
    assert [m["status"] for m in sandbox.meetings()] == ["active"], "a completed session keeps its meeting"
