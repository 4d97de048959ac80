"""Events leave the outbox after commit, and the relay publishes what on-commit publication could not."""

import json
from datetime import timedelta

import pytest
import redis
from django.db import transaction
from django.utils import timezone

from booking_project.events import EVENT_TYPES, MEETING_OPERATION_RESULT, SESSION_CREATED
from sessions_app.models import OutboxEvent
from sessions_app.outbox import OUTBOX_HANDED_KEY, outbox_event_add, outbox_relay
from sessions_app.tasks import provision_meeting
from tests.conftest import BOOK_URL, TEST_BROKER_URL, booking_body, celery_broker_switch

pytestmark = pytest.mark.django_db(transaction=True)

UNREACHABLE_BROKER = "redis://127.0.0.1:1/0"  # nothing listens on port 1


@pytest.fixture
def queue():
    """The test broker's default queue, emptied before and after (this process publishes to it meanwhile,
    even when an integration stack of the same run has its own broker)."""
    from booking_project.celery import app

    previous = app.conf.CELERY_BROKER_URL
    celery_broker_switch(TEST_BROKER_URL)
    client = redis.Redis.from_url(TEST_BROKER_URL)
    client.delete("celery", OUTBOX_HANDED_KEY)
    yield client
    client.delete("celery", OUTBOX_HANDED_KEY)
    celery_broker_switch(previous)


def queued_tasks(queue) -> list[dict]:
    """The queued tasks that carry an event of this test's database (another test run on the machine may
    share the broker)."""
    ours = {str(i) for i in OutboxEvent.objects.values_list("id", flat=True)}
    headers = [json.loads(raw)["headers"] for raw in queue.lrange("celery", 0, -1)]
    return [h for h in headers if any(event_id in h["kwargsrepr"] for event_id in ours)]


@pytest.fixture
def broker_down():
    def down():
        celery_broker_switch(UNREACHABLE_BROKER)

    from booking_project.celery import app

    previous = app.conf.CELERY_BROKER_URL
    yield down
    celery_broker_switch(previous)


def test_every_event_type_is_registered_with_its_handlers():
    created = [t for t in EVENT_TYPES.values() if t.kind == SESSION_CREATED]
    results = [t for t in EVENT_TYPES.values() if t.kind == MEETING_OPERATION_RESULT]
    assert len(created) == len(results) == 5
    assert all(provision_meeting in t.handlers for t in created)
    assert all(t.version == 1 and t.producers and t.description for t in EVENT_TYPES.values())


def test_a_booking_publishes_its_event_after_commit(counselor_api, student, mentor, queue):
    response = counselor_api.post(BOOK_URL, booking_body(student=student, mentor=mentor), format="json")

    event = OutboxEvent.objects.get(payload__sessionId=response.json()["sessionId"])
    [task] = queued_tasks(queue)
    assert task["task"] == "sessions.provision_meeting"
    assert str(event.id) in task["kwargsrepr"]
    # recorded on the broker as handed, and marked by the relay (no write per request), never sent again
    assert event.published_at is None
    assert queue.sismember(OUTBOX_HANDED_KEY, str(event.id))
    assert outbox_relay() == 0
    event.refresh_from_db()
    assert event.published_at is not None
    assert len(queued_tasks(queue)) == 1


def test_the_relay_marks_every_handed_event_in_one_update_and_sends_none_again(
    counselor_api, student, mentor, queue, settings
):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from tests.factories import future

    # given three bookings published at once, made older than the grace (as if the relay ran late)
    settings.OUTBOX_RELAY_GRACE_SECONDS = 0
    for hours in (30, 33, 36):
        counselor_api.post(
            BOOK_URL, booking_body(student=student, mentor=mentor, start=future(hours=hours)), format="json"
        )
    OutboxEvent.objects.update(created_at=timezone.now() - timedelta(minutes=1))
    assert len(queued_tasks(queue)) == 3

    # when the relay runs
    with CaptureQueriesContext(connection) as queries:
        published = outbox_relay()

    # then it marked all three with one UPDATE and published nothing again
    assert published == 0
    assert not OutboxEvent.objects.filter(published_at__isnull=True).exists()
    updates = [q["sql"] for q in queries.captured_queries if q["sql"].startswith('UPDATE "sessions_app_outboxevent"')]
    assert len(updates) == 1
    assert len(queued_tasks(queue)) == 3
    assert not queue.exists(OUTBOX_HANDED_KEY)


def test_an_event_whose_publication_failed_with_the_broker_up_is_relayed(
    counselor_api, student, mentor, queue, settings, monkeypatch
):
    # given a booking whose on-commit publication failed (the broker refused the message), the broker fine since
    settings.OUTBOX_RELAY_GRACE_SECONDS = 0
    from sessions_app import outbox

    real_send = outbox._handlers_send

    def refuse(*, event, producer):
        raise ConnectionError("the broker dropped the connection")

    monkeypatch.setattr(outbox, "_handlers_send", refuse)
    response = counselor_api.post(BOOK_URL, booking_body(student=student, mentor=mentor), format="json")
    monkeypatch.setattr(outbox, "_handlers_send", real_send)
    from booking_project.redis_connections import redis_circuits_reset

    redis_circuits_reset()
    event = OutboxEvent.objects.get(payload__sessionId=response.json()["sessionId"])
    assert response.status_code == 201
    assert queued_tasks(queue) == [] and not queue.sismember(OUTBOX_HANDED_KEY, str(event.id))

    # when the relay runs, then it publishes the event once and marks it
    assert outbox_relay() == 1
    assert outbox_relay() == 0
    event.refresh_from_db()
    assert event.published_at is not None
    assert [t["task"] for t in queued_tasks(queue)] == ["sessions.provision_meeting"]


def test_an_event_whose_record_was_lost_is_published_again_not_lost(counselor_api, student, mentor, queue, settings):
    # given a published event whose record on the broker was lost (Redis restarted without its data, say)
    settings.OUTBOX_RELAY_GRACE_SECONDS = 0
    response = counselor_api.post(BOOK_URL, booking_body(student=student, mentor=mentor), format="json")
    queue.delete(OUTBOX_HANDED_KEY)

    # when the relay runs, then it cannot tell, and publishes it again: a duplicate (handlers are idempotent)
    assert outbox_relay() == 1
    event = OutboxEvent.objects.get(payload__sessionId=response.json()["sessionId"])
    assert event.published_at is not None
    assert [t["task"] for t in queued_tasks(queue)] == ["sessions.provision_meeting"] * 2


def test_a_booking_answers_201_with_the_broker_down_and_the_relay_publishes_later(
    counselor_api, student, mentor, queue, broker_down, settings
):
    settings.OUTBOX_RELAY_GRACE_SECONDS = 0
    broker_down()

    response = counselor_api.post(BOOK_URL, booking_body(student=student, mentor=mentor), format="json")

    assert response.status_code == 201
    event = OutboxEvent.objects.get(payload__sessionId=response.json()["sessionId"])
    assert event.published_at is None
    assert outbox_relay() == 0  # still down: nothing published, nothing lost

    celery_broker_switch(TEST_BROKER_URL)
    assert outbox_relay() == 1

    event.refresh_from_db()
    assert event.published_at is not None
    assert [t["task"] for t in queued_tasks(queue)] == ["sessions.provision_meeting"]


def test_the_relay_leaves_young_events_to_on_commit_publication(counselor_api, student, mentor, broker_down, settings):
    settings.OUTBOX_RELAY_GRACE_SECONDS = 60
    broker_down()
    counselor_api.post(BOOK_URL, booking_body(student=student, mentor=mentor), format="json")

    assert outbox_relay() == 0
    assert OutboxEvent.objects.filter(published_at__isnull=True).count() == 1


def test_an_event_of_a_rolled_back_transaction_is_never_published(monkeypatch):
    published = []
    monkeypatch.setattr("sessions_app.outbox.outbox_event_publish", lambda *, event: published.append(event))

    with pytest.raises(RuntimeError), transaction.atomic():
        outbox_event_add(type="regular_mentoring.session.created", payload={"sessionId": "x"})
        raise RuntimeError("the booking failed after recording its event")
    with transaction.atomic():
        kept = outbox_event_add(type="regular_mentoring.session.created", payload={"sessionId": "y"})

    assert list(OutboxEvent.objects.values_list("id", flat=True)) == [kept.id]
    assert [e.id for e in published] == [kept.id]


def test_the_relay_publishes_oldest_first_and_only_once(counselor_api, student, mentor, queue, broker_down, settings):
    settings.OUTBOX_RELAY_GRACE_SECONDS = 0
    broker_down()
    from tests.factories import future

    for hours in (30, 33, 36):
        counselor_api.post(
            BOOK_URL, booking_body(student=student, mentor=mentor, start=future(hours=hours)), format="json"
        )
    OutboxEvent.objects.update(created_at=timezone.now() - timedelta(minutes=1))
    celery_broker_switch(TEST_BROKER_URL)

    assert outbox_relay() == 3
    assert outbox_relay() == 0
    assert len(queued_tasks(queue)) == 3


def test_the_registry_command_lists_every_event_type_with_its_handlers():
    import json as json_module
    from io import StringIO

    from django.core.management import call_command

    out = StringIO()
    call_command("event_registry", "--json", stdout=out)

    registry = {entry["type"]: entry for entry in json_module.loads(out.getvalue())}
    assert set(registry) == set(EVENT_TYPES)
    assert registry["class_session.session.created"]["handlers"] == ["sessions.provision_meeting"]
    assert registry["class_session.session.created"]["version"] == 1
    assert "sessions_app.saga" in registry["gap_analysis.session.meeting.operation.result"]["producers"]
