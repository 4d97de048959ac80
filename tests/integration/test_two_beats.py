"""Two beats at once (README "Deploying on several machines"): a second `beat` line runs beside the first, so
every periodic task is sent twice as often, and the worker's and the notifier's threads run them side by side.
Each periodic job claims its rows (SELECT ... FOR UPDATE SKIP LOCKED, or a compare-and-set on the row), so each
due row is handled once: every stranded event published once, every stuck saga re-driven once, every due
reminder sent once, every expired idempotency record deleted once."""

import re
import uuid
from collections import Counter
from datetime import timedelta

import pytest
import redis
from django.utils import timezone

from notifications_app.models import DeliveryState, Reminder
from notifications_app.services import reminders_sync
from sessions_app import outbox
from sessions_app.models import IdempotencyRecord, OutboxEvent, Session, SessionStatus
from sessions_app.outbox import OUTBOX_HANDED_KEY
from tests.conftest import TEST_BROKER_URL, celery_broker_switch, funded_student
from tests.factories import MentorFactory, UserFactory, future
from tests.integration.conftest import wait_for
from tests.integration.test_provisioning_saga import book, session_settled
from tests.notification_factories import scheduled_session

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]

UNREACHABLE_BROKER = "redis://127.0.0.1:1/0"
# The beat schedule's entries, by the name each beat logs when it sends one.
PERIODIC = ["outbox-relay", "saga-sweep", "reminders-send", "idempotency-records-expire"]


@pytest.fixture
def second_beat(stack):
    stack.start_beat("beat-2")
    yield "beat-2"
    stack.stop("beat-2")


def sends(stack, beat: str) -> Counter:
    """How many times `beat` sent each periodic task so far."""
    sent = re.findall(rb"Sending due task ([\w-]+)", stack.log(beat))
    return Counter(name.decode() for name in sent)


def test_two_beats_at_once_handle_each_due_row_once(people, sandbox, stack, second_beat, monkeypatch):
    tag = uuid.uuid4().hex[:8]
    people = {**people, "student": funded_student(people["counselor"], units=20)}
    wait_for(lambda: sends(stack, second_beat)["outbox-relay"] >= 2, what="the second beat to send its tasks")

    # given, while both beats tick: 80 reminders (40 sessions, two participants each) made due at the same instant
    sessions = [
        scheduled_session(
            start=future(hours=3),
            topic=f"Two beats {tag} {n}",
            mentor=MentorFactory(email=f"m{n}-{tag}@example.com"),
            students=[UserFactory(email=f"s{n}-{tag}@example.com")],
        )
        for n in range(40)
    ]
    for session in sessions:
        reminders_sync(session_id=session.id)
    reminders = Reminder.objects.filter(session_id__in=[s.id for s in sessions])
    now = timezone.now()
    assert reminders.update(due_at=now, not_before=now, updated_at=now) == 80
    wait_for(lambda: not reminders.exclude(state=DeliveryState.DELIVERED).exists(), timeout=60, what="every reminder")

    # and eight bookings whose events never reached the broker (stranded in the outbox)
    celery_broker_switch(UNREACHABLE_BROKER)
    try:
        stranded = [book(people, hours=30 + n, topic=f"Stranded {tag} {n}")["sessionId"] for n in range(8)]
    finally:
        celery_broker_switch(stack.redis_url)
    stranded_events = {
        str(e.id)
        for e in OutboxEvent.objects.filter(type__endswith=".session.created", payload__sessionId__in=stranded)
    }
    assert len(stranded_events) == 8
    assert not OutboxEvent.objects.filter(id__in=stranded_events, published_at__isnull=False).exists()

    # and six bookings whose messages were published where no worker listens (lost): their sagas get stuck
    # (recorded as handed on the stack's broker, like messages that broker took and then lost)
    stack_broker = redis.Redis.from_url(stack.redis_url)
    monkeypatch.setattr(
        outbox, "outbox_handed_record", lambda *, producer, event_ids: stack_broker.sadd(OUTBOX_HANDED_KEY, *event_ids)
    )
    celery_broker_switch(TEST_BROKER_URL)
    try:
        lost = [book(people, hours=50 + n, topic=f"Lost {tag} {n}")["sessionId"] for n in range(6)]
    finally:
        celery_broker_switch(stack.redis_url)
        monkeypatch.undo()
    wait_for(
        lambda: not OutboxEvent.objects.filter(payload__sessionId__in=lost, published_at__isnull=True).exists(),
        what="the relay to mark the lost bookings' events published",
    )

    # and 40 idempotency records over a day old
    IdempotencyRecord.objects.bulk_create(
        IdempotencyRecord(counselor=people["counselor"], key=f"{tag}-{n}", request_fingerprint="f" * 64,
                          session=Session.objects.get(id=stranded[0]), response_status=201, response_body={})
        for n in range(40)
    )  # fmt: skip
    IdempotencyRecord.objects.filter(key__startswith=tag).update(created_at=timezone.now() - timedelta(days=2))

    # when both beats go on ticking
    for session_id in [*stranded, *lost]:
        assert session_settled(session_id, timeout=60).status == SessionStatus.SCHEDULED
    wait_for(lambda: not IdempotencyRecord.objects.filter(key__startswith=tag).exists(), what="the records deleted")

    # then both beats sent every periodic task, several times each
    first, second = sends(stack, "beat"), sends(stack, second_beat)
    for name in PERIODIC:
        assert first[name] >= 1 and second[name] >= 1, (name, first, second)

    worker = stack.log_events("worker")
    # each stranded event was published by one relay, once
    published = Counter(e["eventId"] for e in worker if e.get("event") == "outbox.published")
    assert {event_id: published[event_id] for event_id in stranded_events} == dict.fromkeys(stranded_events, 1)
    # each stuck saga was re-driven by one sweep, once
    redriven = Counter(
        row for e in worker if e.get("event") == "provider_work.sweep_redrive" and e.get("kind") == "meeting_saga"
        for row in e["rowIds"]
    )  # fmt: skip
    assert {session_id: redriven[session_id] for session_id in lost} == dict.fromkeys(lost, 1)
    # and every one of those sessions has one meeting at the provider, never two
    made = Counter(m["topic"] for m in sandbox.meetings())
    assert [made[f"Stranded {tag} {n}"] for n in range(8)] == [1] * 8
    assert [made[f"Lost {tag} {n}"] for n in range(6)] == [1] * 6

    # each due reminder was sent once: 80 emails to 80 people, one attempt each
    sent_to = [m["To"] for m in stack.emails() if m["Subject"].startswith(f"Reminder: Two beats {tag}")]
    assert len(sent_to) == 80 and len(set(sent_to)) == 80
    assert set(reminders.values_list("attempts", flat=True)) == {1}

    # each expired record was deleted once: the clean-ups' counts add up to the 40
    expired = [e["deleted"] for e in worker if e.get("event") == "idempotency.records_expired"]
    assert sum(expired) == 40

    # What happened, for the record: how the work split between the runs that found it (two at once: a split).
    notifier = stack.log_events("notifier")
    reminder_runs = [e["sent"] for e in notifier if e.get("event") == "notifications.reminders_sent"]
    relay_runs = [e["published"] for e in worker if e.get("event") == "outbox.relayed" and e["published"]]
    print(
        f"\ntwo beats: beat sent {dict(first)}, beat-2 sent {dict(second)}; "
        f"8 stranded events published once each, by relay runs publishing {relay_runs}; "
        f"6 stuck sagas re-driven once each; 80 reminders sent once each, by sender runs sending {reminder_runs}; "
        f"40 expired records deleted by runs deleting {expired}"
    )
