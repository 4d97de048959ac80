"""Redis stopped mid-run (DESIGN.md: a booking answers from PostgreSQL alone and is published when Redis is back):
the stack's own Redis server, broker of the worker and beat and of this process, and this process's cache, so
the default throttles count in it. While it is down, every request answers as usual and /readyz says the broker
is down; once it is back, what was asked meanwhile reaches the provider."""

import time
from datetime import UTC

import pytest
import redis
from django.test import Client

from notifications_app.models import DeliveryState, NotificationDelivery
from sessions_app.models import MeetingOperation, MeetingOperationState, OutboxEvent, SessionStatus
from tests.conftest import BOOK_URL, LIST_URL, api_client_for, booking_body, detail_url
from tests.factories import future
from tests.integration.conftest import wait_for
from tests.integration.test_provisioning_saga import book, session_settled

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def default_throttles_on_the_stacks_redis(settings, stack):
    """The throttles as deployed (30 bookings, 60 actions a minute), counted in the stack's Redis."""
    settings.THROTTLE_BOOK_RATE = "30/min"
    settings.THROTTLE_ACTION_RATE = "60/min"
    settings.CACHES = {"default": {**settings.CACHES["default"], "LOCATION": stack.redis_url}}


def timed(call):
    started = time.perf_counter()
    response = call()
    return response, time.perf_counter() - started


def test_with_redis_stopped_every_request_answers_and_everything_reaches_the_provider_once_it_is_back(
    people, sandbox, stack, default_throttles_on_the_stacks_redis
):
    counselor = api_client_for(people["counselor"])
    # given, made while Redis was up: a scheduled Feishu session (to cancel), a scheduled Zoom session (to move),
    # and a session whose meeting could not be made (to retry)
    to_cancel = session_settled(book(people, provider="feishu", hours=30)["sessionId"])
    to_move = session_settled(book(people, provider="zoom", hours=40)["sessionId"])
    sandbox.configure(failRate=1.0)
    to_retry = session_settled(book(people, provider="zoom", hours=50)["sessionId"])
    sandbox.configure(failRate=0.0)
    assert (to_cancel.status, to_move.status, to_retry.status) == ("SCHEDULED", "SCHEDULED", "MEETING_FAILED")
    # (the throttles counted those bookings in the stack's Redis)
    assert redis.Redis.from_url(stack.redis_url).keys("*throttle:book:*")
    # (and the relay marked what was published so far: it does so within a tick)
    wait_for(lambda: not OutboxEvent.objects.filter(published_at__isnull=True).exists(), what="the events marked")

    # when Redis stops, and the counselor books, reads, lists, cancels, moves and retries
    stack.stop_redis()
    try:
        answers = {}
        for n in range(3):
            body = booking_body(student=people["student"], mentor=people["mentor"], start=future(hours=60 + 2 * n))
            body.update(meetingProvider="zoom", topic=f"Booked while Redis was down {n}")
            answers[f"book {n}"] = timed(lambda body=body: counselor.post(BOOK_URL, body, format="json"))
        first_booked = answers["book 0"][0].json()["sessionId"]
        answers["read"] = timed(lambda: counselor.get(detail_url(first_booked)))
        answers["list"] = timed(lambda: counselor.get(LIST_URL))
        answers["cancel"] = timed(lambda: counselor.post(f"{detail_url(to_cancel.id)}/cancel"))
        moved_to = future(hours=45)
        answers["reschedule"] = timed(
            lambda: counselor.post(
                f"{detail_url(to_move.id)}/reschedule",
                {"scheduledStartTime": moved_to.isoformat(), "duration": 45},
                format="json",
            )
        )
        answers["retry"] = timed(lambda: counselor.post(f"{detail_url(to_retry.id)}/retry"))
        ready, _ = timed(lambda: Client().get("/readyz"))

        # then each answered as usual, and the node is ready, with the broker down
        statuses = {name: response.status_code for name, (response, _) in answers.items()}
        assert statuses == {
            "book 0": 201, "book 1": 201, "book 2": 201, "read": 200, "list": 200, "cancel": 200,
            "reschedule": 200, "retry": 200,
        }, {name: response.content[:300] for name, (response, _) in answers.items()}  # fmt: skip
        assert ready.status_code == 200 and ready.json() == {"database": "ok", "broker": "down"}
        # and what they asked of the workers waits in the outbox
        waiting = set(OutboxEvent.objects.filter(published_at__isnull=True).values_list("type", flat=True))
        assert {t.rsplit(".", 1)[-1] for t in waiting} == {"created", "cancelled", "rescheduled"}
        print("\nanswered with Redis down (ms): " + ", ".join(f"{n} {s * 1000:.1f}" for n, (_, s) in answers.items()))
    finally:
        stack.start_redis()

    # when Redis is back (empty: what it held before is gone too)
    assert Client().get("/readyz").json() == {"database": "ok", "broker": "ok"}

    # then the relay publishes what waited, and it all reaches the provider
    booked_ids = [answers[f"book {n}"][0].json()["sessionId"] for n in range(3)]
    for session_id in [*booked_ids, str(to_retry.id)]:
        assert session_settled(session_id, timeout=60).status == SessionStatus.SCHEDULED
    for session_id in (to_cancel.id, to_move.id):
        operation = wait_for(
            lambda session_id=session_id: MeetingOperation.objects.filter(
                session_id=session_id, state=MeetingOperationState.SUCCEEDED
            ).first(),
            timeout=60,
            what=f"the meeting operation of {session_id} to reach the provider",
        )
        assert operation is not None
    meetings = {m["topic"]: m for m in sandbox.meetings()}
    assert meetings[to_cancel.topic]["status"] == "cancelled"
    moved = meetings[to_move.topic]
    assert moved["status"] == "active" and moved["duration"] == 45
    assert moved["startTime"].startswith(moved_to.astimezone(UTC).strftime("%Y-%m-%dT%H:%M"))
    assert all(meetings[f"Booked while Redis was down {n}"]["status"] == "active" for n in range(3))
    # the operations' result events too: each published on its commit, or by the relay within a tick
    wait_for(lambda: not OutboxEvent.objects.filter(published_at__isnull=True).exists(), what="every event published")


def test_workers_outlive_a_broker_outage_in_the_middle_of_provider_calls(people, sandbox, stack):
    # given: the notifier is calling a calendar (a session scheduled a moment ago is being notified) and the
    # worker is calling the meeting provider (another session being provisioned), each task unacknowledged
    sandbox.configure(latencyMs=2500)
    first = book(people, provider="zoom", hours=120)["sessionId"]
    wait_for(lambda: sandbox.requests_received()["calendar"] >= 1, timeout=30, what="the notifier mid-call")
    book(people, provider="zoom", hours=124)
    wait_for(lambda: sandbox.requests_received()["create"] >= 2, timeout=30, what="the worker mid-call")

    # when Redis goes away mid-call, and comes back
    stack.stop_redis()
    for name in ("worker", "notifier"):
        wait_for(lambda n=name: b"Connection to broker lost" in stack.log(n, since_start=True), what="the loss")
    stack.start_redis()
    sandbox.configure(latencyMs=0)

    # then both are still there, and the work goes on: the next booking is provisioned and notified
    for name in ("worker", "notifier"):
        assert stack.running(name), stack.log(name, since_start=True)[-3000:].decode(errors="replace")
    session = session_settled(book(people, hours=128)["sessionId"], timeout=60)
    assert session.status == SessionStatus.SCHEDULED
    for session_id in (first, session.id):
        wait_for(
            lambda s=session_id: not NotificationDelivery.objects.filter(session_id=s)
            .exclude(state=DeliveryState.DELIVERED)
            .exists(),
            timeout=60,
            what="the sessions' notifications delivered",
        )
