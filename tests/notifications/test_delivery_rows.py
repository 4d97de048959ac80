"""Notifications that cannot be lost: the deliveries of a result event are rows written in the transaction that
records the result, each delivered by a courier that claims an attempt, calls the provider or the mail server
outside any transaction, and records the answer; a delivery whose message was lost is re-driven by the sweep."""

from datetime import timedelta

import pytest
from django.core import mail
from django.db import connection, transaction
from django.utils import timezone

from accounts_app.models import Profile
from booking_project import metrics
from booking_project.provider_work import provider_work_sweep
from notifications_app import services, tasks
from notifications_app.models import Channel, DeliveryState, NotificationDelivery
from notifications_app.services import notification_deliver
from sessions_app.models import OutboxEvent
from tests.factories import MentorFactory, UserFactory
from tests.notification_factories import scheduled_session
from tests.notifications.conftest import result_event


@pytest.fixture
def session():
    return scheduled_session(
        mentor=MentorFactory(email="mentor@example.com"), students=[UserFactory(email="student@example.com")]
    )


@pytest.fixture
def couriers(monkeypatch, in_process_tasks):
    """Couriers enqueued are kept here (not sent); `run()` runs each in this process."""

    class Couriers(list):
        def run(self):
            while self:
                kwargs = self.pop(0)
                result = tasks.deliver_notification.apply(kwargs=kwargs)
                assert result.successful(), result.traceback

    enqueued = Couriers()
    monkeypatch.setattr(tasks.deliver_notification, "apply_async", lambda kwargs, **_: enqueued.append(kwargs))
    return enqueued


def deliveries(session) -> set[tuple[str, str]]:
    return {
        (d.channel, d.email_kind)
        for d in NotificationDelivery.objects.filter(session_id=session.id).exclude(channel=Channel.CALENDAR)
    } | {(Channel.CALENDAR, str(d.recipient_id)) for d in NotificationDelivery.objects.filter(channel="calendar")}


@pytest.mark.django_db
def test_recording_a_result_writes_its_deliveries_with_it_and_a_rolled_back_result_leaves_none(session):
    # when: the saga's transaction records the result, then fails and rolls back
    with pytest.raises(RuntimeError), transaction.atomic():
        result_event(session)
        assert NotificationDelivery.objects.filter(session_id=session.id).count() == 5
        raise RuntimeError("the backfill failed")

    # then
    assert not OutboxEvent.objects.exists()
    assert not NotificationDelivery.objects.exists()

    # and when it commits: a calendar event per participant, the reminders, an invitation per participant
    event_id = result_event(session)
    assert deliveries(session) == {
        (Channel.CALENDAR, str(session.mentor_id)),
        (Channel.CALENDAR, str(session.student_ids[0])),
        (Channel.REMINDERS, ""),
        (Channel.EMAIL, "invitation"),
    }
    assert NotificationDelivery.objects.filter(event_id=event_id, channel=Channel.EMAIL).count() == 2
    assert {d.state for d in NotificationDelivery.objects.all()} == {DeliveryState.PENDING}


@pytest.mark.django_db
def test_a_delivery_whose_message_was_lost_is_redriven_by_the_sweep_after_the_stuck_period(
    session, calendars, couriers, settings
):
    # given: the result recorded, and its message never arrived (the notifier down, Redis flushed)
    settings.NOTIFICATION_STUCK_AFTER_SECONDS = 300
    result_event(session)

    # when: the sweep runs before the stuck period is over
    provider_work_sweep(kinds=["notification_delivery"])

    # then: nothing yet
    assert couriers == [] and mail.outbox == []

    # and when it runs after it
    provider_work_sweep(now=timezone.now() + timedelta(seconds=301), kinds=["notification_delivery"])
    assert len(couriers) == 5
    couriers.run()

    # then: every calendar event and email arrived
    assert {d.state for d in NotificationDelivery.objects.all()} == {DeliveryState.DELIVERED}
    assert sorted(m.to[0] for m in mail.outbox) == ["mentor@example.com", "student@example.com"]
    assert len(calendars.active()) == 2


@pytest.mark.django_db
def test_handling_the_event_after_the_sweep_delivered_it_sends_nothing_twice(session, calendars, couriers):
    # given: delivered through the sweep's couriers
    event_id = result_event(session)
    provider_work_sweep(now=timezone.now() + timedelta(days=1), kinds=["notification_delivery"])
    couriers.run()

    # when: the original message arrives late
    tasks.notify_meeting_result.apply(kwargs={"event_id": event_id})
    couriers.run()

    # then
    assert len(mail.outbox) == 2 and len(calendars.events) == 2


@pytest.mark.django_db
def test_a_duplicate_courier_arriving_while_the_email_is_being_sent_sends_nothing(session, settings):
    # given: the mentor's invitation, and a second courier for it that arrives while the first one sends
    result_event(session)
    invitation = NotificationDelivery.objects.get(email_kind="invitation", recipient_id=session.mentor_id)
    settings.EMAIL_BACKEND = "tests.notifications.test_delivery_rows.DuplicateCourierBackend"
    DuplicateCourierBackend.delivery_id, DuplicateCourierBackend.answers = invitation.id, []

    # when
    notification_deliver(delivery_id=invitation.id)
    notification_deliver(delivery_id=invitation.id)  # and a late third one

    # then: sent once; the duplicate found the attempt in its lease and did nothing
    assert len(DuplicateCourierBackend.sent) == 1
    assert DuplicateCourierBackend.answers == [services.DONE]
    invitation.refresh_from_db()
    assert (invitation.state, invitation.attempts) == (DeliveryState.DELIVERED, 1)


class DuplicateCourierBackend:
    delivery_id = None
    answers: list = []
    sent: list = []

    def __init__(self, *args, **kwargs):
        pass

    def send_messages(self, messages):
        if not DuplicateCourierBackend.answers:
            DuplicateCourierBackend.sent = []
            DuplicateCourierBackend.answers.append(notification_deliver(delivery_id=self.delivery_id))
        DuplicateCourierBackend.sent.extend(messages)
        return len(messages)


@pytest.mark.django_db
def test_a_delivery_that_gives_up_asks_a_person_and_counts_in_the_metric(session, calendars, couriers):
    # given: Google Calendar down for good
    calendars.down.add("google")
    Profile.objects.filter(user_id=session.student_ids[0]).update(calendar_provider="google")
    before = metrics_value()

    # when
    tasks.notify_meeting_result.apply(kwargs={"event_id": result_event(session)})
    couriers.run()

    # then
    (given_up,) = NotificationDelivery.objects.filter(requires_manual_intervention=True)
    assert (given_up.channel, given_up.recipient_id, given_up.state) == (
        Channel.CALENDAR,
        session.student_ids[0],
        DeliveryState.GIVEN_UP,
    )
    assert "HTTP 500" in given_up.manual_intervention_reason
    assert metrics_value() == before + 1


def metrics_value() -> float:
    from prometheus_client.parser import text_string_to_metric_families

    for family in text_string_to_metric_families(metrics.metrics_exposition().decode()):
        for sample in family.samples:
            if sample.name == metrics.NEEDS_PERSON and sample.labels == {"kind": "notification_delivery"}:
                return sample.value
    raise AssertionError("no needs-person gauge for notification deliveries")


@pytest.mark.django_db(transaction=True)
def test_no_provider_or_mail_server_is_called_inside_a_transaction(session, calendars, couriers, settings):
    # given: every calendar call and every email send checks that no transaction (so no row lock) is open
    seen = []

    def outside_any_transaction(provider, operation):
        seen.append(("calendar", connection.in_atomic_block))

    calendars.before_each = outside_any_transaction
    settings.EMAIL_BACKEND = "tests.notifications.test_delivery_rows.TransactionCheckingBackend"
    TransactionCheckingBackend.seen = seen

    # when
    tasks.notify_meeting_result.apply(kwargs={"event_id": result_event(session)})
    couriers.run()

    # then
    assert {d.state for d in NotificationDelivery.objects.filter(session_id=session.id)} == {DeliveryState.DELIVERED}
    assert ("calendar", False) in seen and ("email", False) in seen
    assert all(in_transaction is False for _, in_transaction in seen), seen


class TransactionCheckingBackend:
    seen: list = []

    def __init__(self, *args, **kwargs):
        pass

    def send_messages(self, messages):
        TransactionCheckingBackend.seen.append(("email", connection.in_atomic_block))
        return len(messages)
