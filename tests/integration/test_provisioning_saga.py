"""The provisioning saga end to end: a real Celery worker and beat, a Redis of their own, PostgreSQL and
the provider sandbox over HTTP. Each test books through the API and watches what a counselor, an operator
and the provider would see."""

import time
import uuid

import pytest
import redis
from django.db import connection

from calendar_app.models import CalendarSlot, SlotStatus
from holds_app.models import Hold, HoldStatus
from meetings_app.models import Meeting, MeetingStatus
from sessions_app.models import ManualIntervention, MeetingSaga, OutboxEvent, SagaState, Session, SessionStatus
from sessions_app.outbox import OUTBOX_HANDED_KEY, outbox_event_publish
from tests.conftest import BOOK_URL, api_client_for, booking_body, detail_url
from tests.factories import StaffFactory, future
from tests.integration.conftest import wait_for

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]

FINAL = {SessionStatus.SCHEDULED, SessionStatus.MEETING_FAILED, SessionStatus.CANCELLED}


def book(people, *, provider: str = "feishu", hours: float = 48, topic: str | None = None) -> dict:
    body = booking_body(student=people["student"], mentor=people["mentor"], start=future(hours=hours))
    body["meetingProvider"] = provider
    body["topic"] = topic or f"Resume review {uuid.uuid4().hex[:8]}"
    response = api_client_for(people["counselor"]).post(BOOK_URL, body, format="json")
    assert response.status_code == 201, response.content
    assert response.json()["status"] == "PENDING_MEETING"
    return response.json()


def session_settled(session_id: str, *, statuses=FINAL, timeout: float = 30) -> Session:
    """The session once it reached one of `statuses` and its saga stopped moving."""

    def settled():
        session = Session.objects.select_related("meeting", "saga").get(id=session_id)
        saga_idle = session.saga.state in (SagaState.SUCCEEDED, SagaState.FAILED)
        return session if session.status in statuses and saga_idle else None

    return wait_for(settled, timeout=timeout, what=f"session {session_id} to reach {sorted(statuses)}")


def read(people, session_id: str) -> dict:
    response = api_client_for(people["counselor"]).get(detail_url(session_id))
    assert response.status_code == 200
    return response.json()


def result_events(session_id: str) -> list[dict]:
    return [
        event.payload
        for event in OutboxEvent.objects.filter(
            type__endswith=".session.meeting.operation.result", payload__sessionId=session_id
        ).order_by("created_at")
    ]


def assert_everything_given_back(session_id: str) -> None:
    session = Session.objects.get(id=session_id)
    assert not Hold.objects.filter(session_id=session_id, status=HoldStatus.ACTIVE).exists()
    assert Hold.objects.filter(session_id=session_id, status=HoldStatus.RELEASED).exists()
    assert set(CalendarSlot.objects.filter(id__in=session.slot_ids).values_list("status", flat=True)) == {
        SlotStatus.CANCELLED
    }


@pytest.mark.parametrize("provider", ["feishu", "zoom"])
def test_a_booking_reaches_scheduled_with_the_meeting_link_everywhere(people, sandbox, provider):
    booked = book(people, provider=provider)

    session = session_settled(booked["sessionId"])

    assert session.status == SessionStatus.SCHEDULED
    body = read(people, booked["sessionId"])
    assert body["status"] == "SCHEDULED"
    assert body["meetingUrl"] and body["meetingUrl"] == session.meeting.join_url
    assert body["meetingNo"] == session.meeting.meeting_no
    assert body["meetingId"] == str(session.meeting_id)
    slots = list(CalendarSlot.objects.filter(id__in=session.slot_ids))
    assert len(slots) == 2
    for slot in slots:
        assert slot.session_id == session.id and slot.meeting_id == session.meeting_id
        assert slot.metadata["meetingUrl"] == body["meetingUrl"]
    active = sandbox.meetings(status="active")
    assert len(active) == 1 and active[0]["provider"] == provider
    assert active[0]["topic"] == booked["topic"]
    assert sandbox.meeting_id_of(active[0]) == session.meeting.provider_meeting_id
    [result] = result_events(booked["sessionId"])
    assert result["status"] == "success" and result["operation"] == "create"
    assert result["meetingUrl"] == body["meetingUrl"]


def test_a_provider_failing_every_attempt_fails_the_session_and_gives_everything_back(people, sandbox):
    sandbox.configure(failNext={"create": 100})
    booked = book(people)

    session = session_settled(booked["sessionId"])

    assert session.status == SessionStatus.MEETING_FAILED
    body = read(people, booked["sessionId"])
    assert body["status"] == "MEETING_FAILED" and body["failureReason"]
    assert body["meetingUrl"] is None
    assert_everything_given_back(booked["sessionId"])
    [result] = result_events(booked["sessionId"])
    assert result["status"] == "failed" and result["failureReason"] == body["failureReason"]
    assert sandbox.meetings(status="active") == []
    assert sandbox.requests_received()["create"] == 3  # SAGA_MAX_ATTEMPTS, then it gives up
    assert session.saga.attempts == 3


def test_transient_failures_are_retried_into_one_meeting(people, sandbox):
    sandbox.configure(failNext={"create": 2})
    booked = book(people, provider="zoom")

    session = session_settled(booked["sessionId"])

    assert session.status == SessionStatus.SCHEDULED
    assert len(sandbox.meetings()) == 1
    assert session.saga.attempts == 3


def test_a_backfill_failure_cancels_the_meeting_at_the_provider(people, sandbox, backfill_breaks):
    booked = book(people)

    session = session_settled(booked["sessionId"])

    assert session.status == SessionStatus.MEETING_FAILED
    assert "could not be scheduled" in session.failure_reason
    [meeting] = sandbox.meetings()
    assert meeting["status"] == "cancelled"
    assert Meeting.objects.get(provider_meeting_id=sandbox.meeting_id_of(meeting)).status == MeetingStatus.CANCELLED
    assert_everything_given_back(booked["sessionId"])
    assert read(people, booked["sessionId"])["requiresManualIntervention"] is False


def test_a_meeting_the_provider_will_not_cancel_goes_to_the_manual_intervention_queue(
    people, sandbox, backfill_breaks, client
):
    sandbox.configure(failNext={"cancel": 100})
    booked = book(people)

    session = session_settled(booked["sessionId"])

    assert session.status == SessionStatus.MEETING_FAILED
    assert_everything_given_back(booked["sessionId"])
    [meeting] = sandbox.meetings()
    assert meeting["status"] == "active"  # still there: a person must deal with it
    body = read(people, booked["sessionId"])
    assert body["requiresManualIntervention"] is True
    saga = ManualIntervention.objects.get(session_id=booked["sessionId"])
    assert saga.requires_manual_intervention and meeting["meetingNo"] in saga.manual_intervention_reason

    # the operator sees it in the queue, and once the provider recovers, the retry action cancels it
    operator = StaffFactory(is_superuser=True)
    client.force_login(operator)
    queue = client.get("/admin/sessions_app/manualintervention/")
    assert booked["sessionId"] in queue.content.decode()
    sandbox.configure(failNext={"cancel": 0})
    client.post(
        "/admin/sessions_app/manualintervention/",
        {"action": "retry_provider_cancel", "_selected_action": [booked["sessionId"]]},
    )
    assert sandbox.meetings()[0]["status"] == "cancelled"
    saga.refresh_from_db()
    assert not saga.requires_manual_intervention
    assert saga.resolved_by == operator and saga.resolved_at is not None


def test_the_same_created_event_delivered_twice_makes_one_meeting(people, sandbox, stack):
    sandbox.configure(latencyMs=800)
    booked = book(people, provider="zoom")
    event = OutboxEvent.objects.get(type__endswith=".session.created", payload__sessionId=booked["sessionId"])

    outbox_event_publish(event=event)  # a second delivery while the first is with the provider
    session = session_settled(booked["sessionId"])
    outbox_event_publish(event=event)  # and a late third one
    # Each delivery handled by the worker, the duplicates included (not a guess at how long they take).
    wait_for(lambda: len(provisions_handled(stack, event.id)) >= 3, what="the three deliveries to be handled")

    assert session.status == SessionStatus.SCHEDULED
    assert len(sandbox.meetings()) == 1
    assert sandbox.requests_received()["create"] == 1


def provisions_handled(stack, event_id) -> list[dict]:
    """The worker's log lines of `sessions.provision_meeting` runs for this event that have ended."""
    return [
        line
        for line in stack.log_events("worker")
        if line.get("event", "").startswith("Task sessions.provision_meeting[")
        and " succeeded in " in line.get("event", "")
        and str(event_id) in str(line.get("data", {}).get("kwargs", ""))
    ]


def test_retry_from_meeting_failed_reaches_scheduled(people, sandbox):
    sandbox.configure(failNext={"create": 100})
    booked = book(people)
    session_settled(booked["sessionId"])
    sandbox.configure(failNext={"create": 0})

    response = api_client_for(people["counselor"]).post(f"{detail_url(booked['sessionId'])}/retry")

    assert response.status_code == 200, response.content
    assert response.json()["status"] == "PENDING_MEETING" and response.json()["failureReason"] is None
    session = session_settled(booked["sessionId"])
    assert session.status == SessionStatus.SCHEDULED
    assert session.saga.round == 2
    assert len(sandbox.meetings(status="active")) == 1
    assert Hold.objects.filter(session_id=session.id, status=HoldStatus.ACTIVE).count() == 1
    assert [r["status"] for r in result_events(booked["sessionId"])] == ["failed", "success"]


def test_a_worker_killed_mid_call_leaves_no_orphan_meeting(people, sandbox, stack):
    sandbox.configure(latencyMs=2000)
    booked = book(people, provider="zoom")
    wait_for(lambda: sandbox.requests_received()["create"] == 1, what="the create call to reach the provider")

    stack.kill("worker")  # SIGKILL while the provider is still working on the create
    stack.start_worker()

    session = session_settled(booked["sessionId"], timeout=40)
    assert session.status == SessionStatus.SCHEDULED
    # the meeting the dead worker asked for was found and adopted, not made twice
    active = sandbox.meetings(status="active")
    assert [sandbox.meeting_id_of(m) for m in active] == [session.meeting.provider_meeting_id]
    scheduled_meetings = set(
        Session.objects.filter(status=SessionStatus.SCHEDULED).values_list("meeting__provider_meeting_id", flat=True)
    )
    assert {sandbox.meeting_id_of(m) for m in active} <= scheduled_meetings


def test_a_worker_killed_mid_call_to_feishu_asks_again_with_its_key_and_nobody_is_flagged(people, sandbox, stack):
    # Feishu meetings are made through a calendar event with an idempotency key (docs/feishu-meetings.md): the
    # re-driven saga asks again with the same key and gets the meeting the dead worker's call made.
    sandbox.configure(latencyMs=2000)
    booked = book(people, provider="feishu")
    wait_for(lambda: sandbox.requests_received()["create"] == 1, what="the create call to reach the provider")

    stack.kill("worker")
    stack.start_worker()

    session = session_settled(booked["sessionId"], timeout=40)
    assert session.status == SessionStatus.SCHEDULED
    assert sandbox.requests_received()["create"] >= 2, "the re-driven saga asked again"
    assert read(people, booked["sessionId"])["requiresManualIntervention"] is False
    active = sandbox.meetings(status="active")
    assert [sandbox.meeting_id_of(m) for m in active] == [session.meeting.provider_meeting_id]


def test_a_lost_message_cannot_strand_a_session(people, sandbox, stack):
    stack.stop("worker")
    booked = book(people)
    event = OutboxEvent.objects.get(type__endswith=".session.created", payload__sessionId=booked["sessionId"])
    # published and recorded as such on the broker, so the relay marks it and will not send it again
    assert redis.Redis.from_url(stack.redis_url).sismember(OUTBOX_HANDED_KEY, str(event.id))
    redis.Redis.from_url(stack.redis_url).delete("celery")  # ... and the message is lost
    stack.start_worker()

    session = session_settled(booked["sessionId"], timeout=30)

    assert session.status == SessionStatus.SCHEDULED
    redriven = [
        e
        for e in stack.log_events("worker")
        if e.get("event") == "provider_work.sweep_redrive" and e.get("kind") == "meeting_saga"
    ]
    assert any(booked["sessionId"] in e["rowIds"] for e in redriven)


def test_a_booking_made_while_redis_is_down_is_provisioned_when_it_is_back(people, sandbox, stack):
    stack.stop_redis()
    try:
        started = time.monotonic()
        booked = book(people)
        answered_in = time.monotonic() - started
        event = OutboxEvent.objects.get(type__endswith=".session.created", payload__sessionId=booked["sessionId"])
        assert event.published_at is None
    finally:
        stack.start_redis()
    assert answered_in < 5  # the request did not hang on the broker

    session = session_settled(booked["sessionId"], timeout=60)

    assert session.status == SessionStatus.SCHEDULED
    event.refresh_from_db()
    assert event.published_at is not None
    assert len(sandbox.meetings(status="active")) == 1


@pytest.fixture
def backfill_breaks(stack):
    """A database that refuses to write a meeting onto a slot: the backfill transaction fails for real."""
    with connection.cursor() as cursor:
        cursor.execute(
            """
            CREATE OR REPLACE FUNCTION test_refuse_meeting_on_slot() RETURNS trigger AS $$
            BEGIN
                IF NEW.meeting_id IS NOT NULL THEN
                    RAISE EXCEPTION 'slot storage unavailable';
                END IF;
                RETURN NEW;
            END $$ LANGUAGE plpgsql;
            CREATE TRIGGER test_refuse_meeting_on_slot BEFORE UPDATE ON calendar_app_calendarslot
                FOR EACH ROW EXECUTE FUNCTION test_refuse_meeting_on_slot();
            """
        )
    yield
    with connection.cursor() as cursor:
        cursor.execute(
            "DROP TRIGGER IF EXISTS test_refuse_meeting_on_slot ON calendar_app_calendarslot;"
            "DROP FUNCTION IF EXISTS test_refuse_meeting_on_slot();"
        )


def test_every_saga_of_the_run_ended_and_nothing_is_pending(stack):
    # The flush between tests empties the tables; what matters is that no saga is still running now.
    assert not MeetingSaga.objects.exclude(state__in=[SagaState.SUCCEEDED, SagaState.FAILED]).exists()
