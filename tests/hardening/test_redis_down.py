"""Redis is optional for answering (DESIGN.md, API.md "Health"): with the broker and the cache unreachable, or
hung, every request answers as usual with the throttles on, a request waits on Redis at most one short timeout
per REDIS_RETRY_AFTER_SECONDS, the throttles count in the process, and the events wait in the outbox.

The stack's own integration test (tests/integration/test_redis_outage.py) stops a real Redis mid-run."""

import socket
import threading
import time

import pytest
from django.core.cache import cache
from django.db import OperationalError

from booking_project.redis_connections import RedisCircuit, broker_circuit, redis_circuit
from booking_project.throttles import ProcessWindowCounts
from meetings_app.models import Meeting
from sessions_app.models import OutboxEvent, Session, SessionStatus
from sessions_app.outbox import outbox_relay
from tests.conftest import (
    BOOK_URL,
    LIST_URL,
    assert_error,
    booking_body,
    celery_broker_switch,
    detail_url,
    funded_student,
)
from tests.factories import future
from tests.saga.test_retry_and_queue import failed_session

pytestmark = pytest.mark.django_db(transaction=True)

REFUSED = "redis://127.0.0.1:1/0"  # nothing listens on port 1: the connection is refused at once


class HungRedis:
    """A server that accepts connections and never answers: a Redis that hangs (swapping, stopped with
    SIGSTOP, a half-dead network path). Counts the connections made to it."""

    def __init__(self):
        self._server = socket.create_server(("127.0.0.1", 0))
        self.url = f"redis://127.0.0.1:{self._server.getsockname()[1]}/0"
        self.connections: list[socket.socket] = []
        self._thread = threading.Thread(target=self._accept, daemon=True)
        self._thread.start()

    def _accept(self) -> None:
        while True:
            try:
                connection, _ = self._server.accept()
            except OSError:
                return
            self.connections.append(connection)

    def close(self) -> None:
        self._server.close()
        for connection in self.connections:
            connection.close()


@pytest.fixture
def redis_at(settings):
    """Point this process's cache and Celery broker at another Redis URL for the test."""
    from booking_project.celery import app

    previous_broker = app.conf.CELERY_BROKER_URL

    def point(url: str) -> None:
        settings.CACHES = {
            "default": {**settings.CACHES["default"], "LOCATION": url},
        }
        celery_broker_switch(url)

    yield point
    celery_broker_switch(previous_broker)


@pytest.fixture
def default_throttles(settings):
    settings.THROTTLE_BOOK_RATE = "30/min"
    settings.THROTTLE_ACTION_RATE = "60/min"


def test_with_redis_unreachable_every_request_answers_as_usual_and_the_events_wait_in_the_outbox(
    redis_at, default_throttles, counselor_api, counselor, student, mentor
):
    # given a session that failed (to retry) and one scheduled (to move), made while Redis was up
    failed = failed_session(counselor_api, student, mentor, hours=30)
    scheduled_id = counselor_api.post(
        BOOK_URL, booking_body(student=student, mentor=mentor, start=future(hours=40)), format="json"
    ).json()["sessionId"]
    meeting = Meeting.objects.create(
        provider="feishu", provider_meeting_id="r123456789", meeting_no="123456789",
        join_url="https://vc.feishu.cn/j/123456789", start_time=future(hours=40), duration_minutes=60, topic="x",
    )  # fmt: skip
    Session.objects.filter(id=scheduled_id).update(status=SessionStatus.SCHEDULED, meeting=meeting)
    outbox_relay()  # marks the events published so far (as beat does within seconds)

    # when Redis goes away and the counselor books, reads, lists, cancels, reschedules and retries
    redis_at(REFUSED)
    booked = counselor_api.post(BOOK_URL, booking_body(student=student, mentor=mentor), format="json")
    read = counselor_api.get(detail_url(booked.json()["sessionId"]))
    listed = counselor_api.get(LIST_URL)
    cancelled = counselor_api.post(f"{detail_url(booked.json()['sessionId'])}/cancel")
    moved = counselor_api.post(
        f"{detail_url(scheduled_id)}/reschedule",
        {"scheduledStartTime": future(hours=60).isoformat(), "duration": 45},
        format="json",
    )
    retried = counselor_api.post(f"{detail_url(failed.id)}/retry")

    # then each answers as usual
    assert booked.status_code == 201, booked.content
    assert (read.status_code, listed.status_code) == (200, 200)
    assert cancelled.status_code == 200 and cancelled.json()["status"] == "CANCELLED"
    assert moved.status_code == 200 and moved.json()["duration"] == 45
    assert retried.status_code == 200 and retried.json()["status"] == "PENDING_MEETING"
    # and the four events of the outage wait for the relay (nothing was lost, nothing raised)
    waiting = OutboxEvent.objects.filter(published_at__isnull=True)
    assert sorted(e.type.rsplit(".", 1)[-1] for e in waiting) == ["cancelled", "created", "created", "rescheduled"]
    # and this process leaves that Redis alone for a while (the cache and the broker are one server here)
    assert broker_circuit() is cache.circuit is redis_circuit(REFUSED)
    assert not cache.circuit.closed()


def test_with_redis_unreachable_the_throttle_still_limits_counting_in_the_process(
    redis_at, settings, counselor_api, counselor, mentor
):
    # given a limit of 3 bookings a day and Redis gone
    settings.THROTTLE_BOOK_RATE = "3/day"
    student = funded_student(counselor, units=10)
    redis_at(REFUSED)

    # when the counselor books five times
    responses = [
        counselor_api.post(
            BOOK_URL, booking_body(student=student, mentor=mentor, start=future(hours=30 + i)), format="json"
        )
        for i in range(5)
    ]

    # then the process's own count refuses the fourth and fifth, in the contract's shape
    assert [r.status_code for r in responses] == [201, 201, 201, 429, 429]
    assert_error(responses[3], 429, "THROTTLED")
    assert int(responses[3]["Retry-After"]) >= 1


def test_a_hung_redis_costs_one_short_timeout_then_is_left_alone_for_a_while(
    redis_at, default_throttles, counselor_api, counselor, mentor, settings
):
    # given a Redis that accepts connections and never answers, and bookings a while apart
    settings.REDIS_RETRY_AFTER_SECONDS = 60
    student = funded_student(counselor, units=20)
    hung = HungRedis()
    try:
        redis_at(hung.url)

        # when the counselor books ten times
        started = time.perf_counter()
        statuses = [
            counselor_api.post(
                BOOK_URL, booking_body(student=student, mentor=mentor, start=future(hours=30 + i)), format="json"
            ).status_code
            for i in range(10)
        ]
        elapsed = time.perf_counter() - started
    finally:
        hung.close()

    # then every booking answered, and Redis was tried once, by the first, for the throttle's count: its event
    # and the nine bookings after it skipped Redis altogether (the cache and the broker are one server here)
    assert statuses == [201] * 10
    assert len(hung.connections) == 1, len(hung.connections)
    assert OutboxEvent.objects.filter(published_at__isnull=True).count() == 10
    print(f"ten bookings against a hung Redis: {elapsed * 1000:.0f} ms in all")


def test_the_circuit_tries_redis_again_after_the_pause(settings):
    settings.REDIS_RETRY_AFTER_SECONDS = 0.05
    circuit = RedisCircuit("redis://127.0.0.1:1/0")
    circuit.trip("test")
    assert not circuit.closed()

    time.sleep(0.06)

    assert circuit.closed()


def test_process_counts_forget_old_windows_when_they_grow():
    counts = ProcessWindowCounts(max_keys=3)
    for window in range(3):
        assert counts.incr(f"throttle:book:u:{window}", period=0) == 1
    time.sleep(1.1)  # past every key's period + 1 s

    assert counts.incr("throttle:book:u:3", period=60) == 1
    assert counts.incr("throttle:book:u:3", period=60) == 2
    assert len(counts._counts) == 1


# --- /healthz and /readyz -------------------------------------------------------------------------------


def test_healthz_answers_while_the_process_serves(client):
    response = client.get("/healthz")

    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


def test_readyz_says_database_and_broker_ok(client):
    response = client.get("/readyz")

    assert response.status_code == 200
    assert response.json() == {"database": "ok", "broker": "ok"}
    assert response["Cache-Control"] == "no-store"


def test_readyz_is_200_with_the_broker_down_and_says_so(client, redis_at):
    redis_at(REFUSED)

    response = client.get("/readyz")

    assert response.status_code == 200
    assert response.json() == {"database": "ok", "broker": "down"}


def test_readyz_is_503_when_the_database_does_not_answer(client, monkeypatch):
    from django.db import connection

    def refuse(*args, **kwargs):
        raise OperationalError("connection refused")

    monkeypatch.setattr(connection, "cursor", refuse)

    response = client.get("/readyz")

    assert response.status_code == 503
    assert response.json() == {"database": "down", "broker": "ok"}


def test_the_probes_answer_a_load_balancer_by_address_over_plain_http(client, settings):
    # given production's HTTPS redirect and a Host header that is the node's address, not the site's name
    settings.SECURE_SSL_REDIRECT = True
    settings.ALLOWED_HOSTS = ["booking.example.com"]

    for path in ("/healthz", "/readyz"):
        response = client.get(path, HTTP_HOST="10.0.3.7:8000")

        assert response.status_code == 200, (path, response.status_code)
    # and anything else still gets production's treatment
    assert client.get("/api/counselor/sessions", HTTP_HOST="booking.example.com").status_code == 301


def test_the_probes_refuse_other_methods_in_the_contracts_shape(client):
    assert_error(client.post("/readyz"), 405, "METHOD_NOT_ALLOWED")


def test_with_redis_unreachable_the_admins_repairs_answer_and_leave_the_work_to_the_sweep(
    redis_at, counselor_api, student, mentor
):
    from django.test import Client
    from django.urls import reverse

    from accounts_app.services import operator_make
    from notifications_app.models import DeliveryState, NotificationDelivery
    from sessions_app.models import MeetingSaga
    from tests.factories import StaffFactory
    from tests.notification_factories import GivenUpDeliveryFactory

    # given a notification that gave up and a session waiting for its meeting in the queue
    given_up = GivenUpDeliveryFactory()
    session_id = counselor_api.post(BOOK_URL, booking_body(student=student, mentor=mentor), format="json").json()[
        "sessionId"
    ]
    MeetingSaga.objects.filter(session_id=session_id).update(requires_manual_intervention=True)
    operator = Client()
    operator.force_login(operator_make(user=StaffFactory()))

    # when Redis goes away and an operator sends the notification again and re-provisions the session
    redis_at(REFUSED)
    retried = operator.post(
        reverse("admin:notifications_app_notificationdelivery_changelist"),
        {"action": "retry", "_selected_action": [given_up.pk], "index": 0},
    )
    reprovisioned = operator.post(
        reverse("admin:sessions_app_manualintervention_changelist"),
        {"action": "reprovision", "_selected_action": [MeetingSaga.objects.get(session_id=session_id).pk], "index": 0},
        follow=True,
    )

    # then both pages answer, the notification waits (pending) for the sweep, and the operator is told
    assert retried.status_code == 302
    assert NotificationDelivery.objects.get(pk=given_up.pk).state == DeliveryState.PENDING
    assert reprovisioned.status_code == 200
    assert "the sweep re-drives the provisioning once it is back" in reprovisioned.content.decode()
