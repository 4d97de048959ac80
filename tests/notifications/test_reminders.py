"""Reminders as rows of the provider-work engine: scheduled from settings' offsets, re-timed and superseded with
the session, sent by the beat task exactly once (outside any transaction), retried after a backoff kept as the
row's not_before, then handed to a person, who can send it again."""

from datetime import timedelta

import pytest
from django.conf import settings as django_settings
from django.core import mail
from django.db import connection
from django.utils import timezone

from booking_project.celery import app
from notifications_app.models import DeliveryState, Reminder
from notifications_app.services import reminder_retry, reminders_send_due, reminders_sync
from notifications_app.tasks import send_reminder
from sessions_app.models import Session, SessionStatus
from tests.factories import MentorFactory, StaffFactory, UserFactory, future
from tests.notification_factories import scheduled_session

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def reminder_settings(settings):
    settings.REMINDER_OFFSETS_MINUTES = [24 * 60, 60]
    settings.NOTIFICATION_MAX_ATTEMPTS = 3
    settings.NOTIFICATION_RETRY_BACKOFF_SECONDS = 30
    settings.NOTIFICATION_RETRY_BACKOFF_MAX_SECONDS = 60


def make_due(session: Session, **filters) -> None:
    moment = timezone.now() - timedelta(seconds=1)
    Reminder.objects.filter(session_id=session.id, **filters).update(due_at=moment, not_before=moment)


def test_offsets_already_in_the_past_are_skipped():
    session = scheduled_session(start=future(hours=2))

    reminders_sync(session_id=session.id)

    assert sorted(Reminder.objects.values_list("offset_minutes", flat=True)) == [60, 60]


def test_a_cancelled_session_keeps_no_reminder_to_send():
    session = scheduled_session()
    reminders_sync(session_id=session.id)
    Session.objects.filter(id=session.id).update(status=SessionStatus.CANCELLED)

    reminders_sync(session_id=session.id)

    assert set(Reminder.objects.values_list("state", flat=True)) == {DeliveryState.SUPERSEDED}


def test_a_due_reminder_is_sent_once_to_each_participant_with_the_link():
    # given
    session = scheduled_session(
        mentor=MentorFactory(email="mentor@example.com"), students=[UserFactory(email="student@example.com")]
    )
    reminders_sync(session_id=session.id)
    make_due(session, offset_minutes=60)

    # when
    first, second = reminders_send_due(), reminders_send_due()

    # then
    assert (first, second) == (2, 0)
    assert sorted(m.to[0] for m in mail.outbox) == ["mentor@example.com", "student@example.com"]
    assert all(session.meeting.join_url in m.body and m.subject.startswith("Reminder:") for m in mail.outbox)
    assert Reminder.objects.filter(state=DeliveryState.DELIVERED).count() == 2
    assert Reminder.objects.filter(state=DeliveryState.PENDING, offset_minutes=24 * 60).count() == 2


def test_a_due_reminder_of_a_session_cancelled_meanwhile_is_not_sent():
    session = scheduled_session()
    reminders_sync(session_id=session.id)
    make_due(session)
    Session.objects.filter(id=session.id).update(status=SessionStatus.CANCELLED)

    assert reminders_send_due() == 0
    assert mail.outbox == []
    assert set(Reminder.objects.values_list("state", flat=True)) == {DeliveryState.SUPERSEDED}


def test_a_reminder_is_sent_outside_any_transaction(settings):
    # given
    session = scheduled_session(students=[UserFactory(email="student@example.com")])
    reminders_sync(session_id=session.id)
    make_due(session)
    settings.EMAIL_BACKEND = "tests.notifications.test_reminders.TransactionCheckingBackend"
    TransactionCheckingBackend.seen.clear()

    # when
    reminders_send_due()

    # then: every send saw no transaction open around it (the test's own outer one aside)
    assert TransactionCheckingBackend.seen and set(TransactionCheckingBackend.seen) == {1}


class TransactionCheckingBackend:
    """Records how deep in transactions each send ran: 1 is the test's own transaction, more is ours."""

    seen: list[int] = []

    def __init__(self, *args, **kwargs):
        pass

    def send_messages(self, messages):
        TransactionCheckingBackend.seen.append(len(connection.savepoint_ids) + int(connection.in_atomic_block))
        return len(messages)


def test_a_failing_backend_is_retried_after_a_backoff_then_handed_to_a_person_who_sends_it_again(
    settings, django_capture_on_commit_callbacks, monkeypatch, in_process_tasks
):
    # given
    session = scheduled_session(students=[UserFactory(email="student@example.com")])
    reminders_sync(session_id=session.id)
    Reminder.objects.exclude(recipient_id=session.student_ids[0], offset_minutes=60).delete()
    make_due(session)
    settings.EMAIL_BACKEND = "tests.notifications.test_result_handler.BrokenEmailBackend"

    # when: three runs; after each failure the reminder waits for its backoff (a run before then sends nothing)
    for _ in range(3):
        reminders_send_due()
        reminder = Reminder.objects.get()
        if reminder.state == DeliveryState.RETRY_WAIT:
            assert reminder.not_before > timezone.now() + timedelta(seconds=14)
            assert reminders_send_due() == 0 and Reminder.objects.get().attempts == reminder.attempts
            make_due(session)

    # then
    assert (reminder.state, reminder.attempts) == (DeliveryState.GIVEN_UP, 3)
    assert reminder.requires_manual_intervention and "SMTP server down" in reminder.manual_intervention_reason

    # and when an operator retries it with the backend back
    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
    sent = []
    monkeypatch.setattr(send_reminder, "apply_async", lambda kwargs, **_: sent.append(kwargs))
    with django_capture_on_commit_callbacks(execute=True):
        assert reminder_retry(reminder_id=reminder.id, actor=StaffFactory())
    (kwargs,) = sent
    assert send_reminder.apply(kwargs=kwargs).get() is True
    reminder.refresh_from_db()
    assert reminder.state == DeliveryState.DELIVERED and not reminder.requires_manual_intervention
    assert reminder.resolved_by is not None
    assert [m.to for m in mail.outbox] == [["student@example.com"]]


def test_beat_sends_a_due_reminder_and_leaves_a_later_one_with_no_message_waiting(monkeypatch, in_process_tasks):
    # given: one reminder due now, one due tomorrow; nothing may sit in the broker for it (a far-off countdown
    # would be redelivered after the visibility timeout, or lost with Redis)
    session = scheduled_session(students=[UserFactory(email="student@example.com")])
    published = []
    monkeypatch.setattr(app, "send_task", lambda *args, **kwargs: published.append((args, kwargs)))
    reminders_sync(session_id=session.id)
    make_due(session, offset_minutes=60, recipient_id=session.student_ids[0])

    # when: whatever beat runs on its schedule runs
    for entry in django_settings.CELERY_BEAT_SCHEDULE.values():
        app.tasks[entry["task"]].apply()

    # then: the due one went out, once; the later ones wait as rows, with no message and no countdown
    assert [m.to for m in mail.outbox] == [["student@example.com"]]
    assert Reminder.objects.filter(state=DeliveryState.DELIVERED).count() == 1
    assert Reminder.objects.filter(state=DeliveryState.PENDING, not_before__gt=timezone.now()).count() == 3
    assert published == []
