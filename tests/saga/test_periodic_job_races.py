"""Periodic jobs run twice at once (two beats: README "Deploying on several machines") handle each due row once:
two outbox relays, two sweeps, released together by a barrier, each on its own database connection, publishing
to the test broker. (tests/integration/test_two_beats.py runs two real beats; here the overlap is certain.)"""

import json
import threading
import uuid
from collections import Counter
from datetime import timedelta

import pytest
import redis
from django.db import connection
from django.utils import timezone

from booking_project.provider_work import provider_work_sweep
from sessions_app.models import MeetingSaga, OutboxEvent
from sessions_app.outbox import outbox_relay
from tests.conftest import BOOK_URL, TEST_BROKER_URL, booking_body, celery_broker_switch, funded_student
from tests.factories import future

pytestmark = [pytest.mark.race, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def queue():
    """The test broker's default queue, this process publishing to it, emptied before and after."""
    from booking_project.celery import app

    previous = app.conf.CELERY_BROKER_URL
    celery_broker_switch(TEST_BROKER_URL)
    client = redis.Redis.from_url(TEST_BROKER_URL)
    client.delete("celery")
    yield client
    client.delete("celery")
    celery_broker_switch(previous)


def at_once(job, times: int = 2) -> list:
    """Run `job` in `times` threads released together; their results."""
    barrier = threading.Barrier(times)
    results: list = []

    def run():
        try:
            barrier.wait(timeout=10)
            results.append(job())
        finally:
            connection.close()

    threads = [threading.Thread(target=run) for _ in range(times)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    return results


def queued_kwargs(queue) -> list[str]:
    return [json.loads(raw)["headers"]["kwargsrepr"] for raw in queue.lrange("celery", 0, -1)]


def test_two_relays_at_once_publish_each_stranded_event_once(queue):
    # given 60 events that on-commit publication left behind a minute ago
    events = OutboxEvent.objects.bulk_create(
        OutboxEvent(type="regular_mentoring.session.created", version=1, payload={"sessionId": str(uuid.uuid4())})
        for _ in range(60)
    )
    OutboxEvent.objects.update(created_at=timezone.now() - timedelta(minutes=1))

    # when two relays run at once
    published = at_once(outbox_relay)

    # then together they published 60, and each event's message is in the queue once
    assert sum(published) == 60, published
    ids = [str(e.id) for e in events]
    sent = Counter(event_id for kwargs in queued_kwargs(queue) for event_id in ids if event_id in kwargs)
    assert sent == Counter({str(e.id): 1 for e in events})
    assert not OutboxEvent.objects.filter(published_at__isnull=True).exists()


def test_two_sweeps_at_once_redrive_each_stuck_saga_once(queue, counselor_api, counselor, mentor, settings):
    # given 20 sessions whose provisioning made no progress for longer than the stuck period (messages lost)
    student = funded_student(counselor, units=20)
    bodies = [booking_body(student=student, mentor=mentor, start=future(hours=30 + n)) for n in range(20)]
    session_ids = [counselor_api.post(BOOK_URL, body, format="json").json()["sessionId"] for body in bodies]
    queue.delete("celery")
    MeetingSaga.objects.update(updated_at=timezone.now() - timedelta(seconds=settings.SAGA_STUCK_AFTER_SECONDS + 60))

    # when two sweeps run at once
    redriven = at_once(lambda: provider_work_sweep(kinds=["meeting_saga"]))

    # then together they re-drove 20, and each session's courier is in the queue once
    assert sum(redriven) == 20, redriven
    sent = Counter(session_id for kwargs in queued_kwargs(queue) for session_id in session_ids if session_id in kwargs)
    assert sent == Counter(dict.fromkeys(session_ids, 1))
