"""Reminders as rows: scheduled from settings' offsets, re-timed and cancelled with the session, sent by the beat
task exactly once, retried with backoff and parked when the email backend keeps failing."""

from datetime import timedelta

import pytest
from django.conf import settings as django_settings
from django.core import mail
from django.utils import timezone

from notifications_app.models import FailedNotification, Reminder, ReminderStatus
from notifications_app.services import failed_notification_retry, reminders_send_due, reminders_sync
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


def make_due(session: Session) -> None:
    Reminder.objects.filter(session_id=session.id).update(due_at=timezone.now() - timedelta(seconds=1))


def test_offsets_already_in_the_past_are_skipped():
    session = scheduled_session(start=future(hours=2))

    reminders_sync(session_id=session.id)

    assert sorted(Reminder.objects.values_list("offset_minutes", flat=True)) == [60, 60]


def test_a_cancelled_session_keeps_no_pending_reminder():
    session = scheduled_session()
    reminders_sync(session_id=session.id)
    Session.objects.filter(id=session.id).update(status=SessionStatus.CANCELLED)

    reminders_sync(session_id=session.id)

    assert set(Reminder.objects.values_list("status", flat=True)) == {ReminderStatus.CANCELLED}


def test_a_due_reminder_is_sent_once_to_each_participant_with_the_link():
    # given
    session = scheduled_session(
        mentor=MentorFactory(email="mentor@example.com"), students=[UserFactory(email="student@example.com")]
    )
    reminders_sync(session_id=session.id)
    Reminder.objects.filter(session_id=session.id, offset_minutes=60).update(due_at=timezone.now())

    # when
    first, second = reminders_send_due(), reminders_send_due()

    # then
    assert (first, second) == (2, 0)
    assert sorted(m.to[0] for m in mail.outbox) == ["mentor@example.com", "student@example.com"]
    assert all(session.meeting.join_url in m.body and m.subject.startswith("Reminder:") for m in mail.outbox)
    assert Reminder.objects.filter(status=ReminderStatus.SENT).count() == 2
    assert Reminder.objects.filter(status=ReminderStatus.PENDING, offset_minutes=24 * 60).count() == 2


def test_a_due_reminder_of_a_session_cancelled_meanwhile_is_not_sent():
    session = scheduled_session()
    reminders_sync(session_id=session.id)
    make_due(session)
    Session.objects.filter(id=session.id).update(status=SessionStatus.CANCELLED)

    assert reminders_send_due() == 0
    assert mail.outbox == []
    assert set(Reminder.objects.values_list("status", flat=True)) == {ReminderStatus.CANCELLED}


def test_a_failing_backend_is_retried_with_backoff_then_parked_and_an_operator_retry_sends_it(
    settings, django_capture_on_commit_callbacks, monkeypatch, in_process_tasks
):
    # given
    session = scheduled_session(students=[UserFactory(email="student@example.com")])
    reminders_sync(session_id=session.id)
    Reminder.objects.exclude(recipient_id=session.student_ids[0], offset_minutes=60).delete()
    make_due(session)
    settings.EMAIL_BACKEND = "tests.notifications.test_result_handler.BrokenEmailBackend"

    # when: three runs, each after the backoff
    for _ in range(3):
        reminders_send_due()
        reminder = Reminder.objects.get()
        if reminder.status == ReminderStatus.PENDING:
            assert reminder.due_at > timezone.now() + timedelta(seconds=29)
            make_due(session)

    # then
    assert (reminder.status, reminder.attempts) == (ReminderStatus.FAILED, 3)
    (parked,) = FailedNotification.objects.all()
    assert (parked.task, parked.payload) == ("notifications.send_reminder", {"reminder_id": str(reminder.id)})

    # and when an operator retries it with the backend back
    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
    sent = []
    monkeypatch.setattr("celery.current_app.send_task", lambda name, kwargs: sent.append((name, kwargs)))
    with django_capture_on_commit_callbacks(execute=True):
        assert failed_notification_retry(failed=parked, actor=StaffFactory())
    ((name, kwargs),) = sent
    assert send_reminder.apply(kwargs=kwargs).get() is True
    assert Reminder.objects.get().status == ReminderStatus.SENT
    assert [m.to for m in mail.outbox] == [["student@example.com"]]


def test_the_sender_runs_from_beat_at_the_configured_interval_not_as_far_off_countdowns():
    entry = django_settings.CELERY_BEAT_SCHEDULE["reminders-send"]
    assert entry["task"] == "notifications.send_due_reminders"
    assert entry["schedule"] == django_settings.REMINDER_SEND_INTERVAL_SECONDS
