"""Notifications end to end: the real worker handles the saga's result event, writes calendar events to the
sandbox's Feishu Calendar and Google Calendar, schedules reminders and sends emails (file-based backend); and
the reminder sender, run by two threads at once against PostgreSQL, sends each due reminder once."""

import threading
import uuid
from datetime import UTC, timedelta

import icalendar
import pytest
import redis
from django.core import mail
from django.db import connection
from django.utils import timezone

from notifications_app.models import Channel, DeliveryState, NotificationDelivery, Reminder
from notifications_app.services import reminders_send_due, reminders_sync
from sessions_app.models import SessionStatus
from tests.factories import MentorFactory, UserFactory, future
from tests.integration.conftest import wait_for
from tests.integration.test_provisioning_saga import book, session_settled
from tests.notification_factories import scheduled_session

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]


def events_of(sandbox, topic: str, *, status: str = "confirmed") -> list[dict]:
    """The participants' calendar events of the session. A Feishu meeting is itself an event of the app's
    calendar with the session's topic (FEISHU_MEETING_VIA=calendar), inviting nobody: not one of them."""
    return [e for e in sandbox.calendar_events(status=status) if e["summary"] == topic and e["attendees"]]


def emails_to(stack, address: str, subject: str) -> list:
    return [m for m in stack.emails() if m["To"] == address and m["Subject"] == subject]


def test_a_scheduled_session_reaches_every_calendar_reminder_and_inbox(people, sandbox, stack):
    # when
    booked = book(people)
    session = session_settled(booked["sessionId"])
    assert session.status == SessionStatus.SCHEDULED
    url, topic = session.meeting.join_url, session.topic

    # then: one calendar event per participant, each in the participant's provider, with the link
    def both_invited():
        events = events_of(sandbox, topic)
        return len(events) == 2 and all(e["attendees"] for e in events) and events

    events = wait_for(both_invited, what="2 events with their attendee")
    by_provider = {e["provider"]: e for e in events}
    assert set(by_provider) == {"feishu", "google"}
    assert by_provider["feishu"]["attendees"] == [people["mentor"].profile.feishu_open_id]
    assert by_provider["google"]["attendees"] == [people["student"].email]
    start = session.scheduled_at.astimezone(UTC)
    for event in events:
        assert event["meetingUrl"] == url
        assert event["start"] == start.isoformat().replace("+00:00", "Z")
        # the calendar's own reminders, at the offsets of the email reminders
        assert event["reminders"] == [60, 24 * 60]
    # reminders 24 h and 1 h before the start, for each participant
    reminders = wait_for(
        lambda: (rows := list(Reminder.objects.filter(session_id=session.id))) and len(rows) == 4 and rows,
        what="4 reminders",
    )
    assert sorted((r.recipient_id, r.due_at) for r in reminders) == sorted(
        (user.id, session.scheduled_at - timedelta(minutes=offset))
        for user in (people["mentor"], people["student"])
        for offset in (24 * 60, 60)
    )
    assert {r.state for r in reminders} == {DeliveryState.PENDING}
    # one email per participant, with the link and a valid invitation
    for person in (people["mentor"], people["student"]):
        (message,) = wait_for(
            lambda p=person: emails_to(stack, p.email, f"Session booked: {topic}"), what=f"email to {person}"
        )
        assert url in message.get_body(("plain",)).get_content()
        assert url in message.get_body(("html",)).get_content()
        (attachment,) = [part for part in message.iter_attachments() if part.get_content_type() == "text/calendar"]
        calendar = icalendar.Calendar.from_ical(attachment.get_content())
        assert calendar["METHOD"] == "REQUEST"
        (event,) = calendar.walk("VEVENT")
        assert str(event["UID"]).startswith(f"session-{session.id}@")
        assert event.decoded("DTSTART") == start and event.decoded("DTEND") == start + timedelta(minutes=60)
        assert str(event["URL"]) == url and str(event["SUMMARY"]) == topic
    assert len([m for m in stack.emails() if topic in m["Subject"]]) == 2


def test_a_calendar_provider_down_for_good_gives_up_for_a_person_and_nothing_else_suffers(people, sandbox, stack):
    # given: Google Calendar fails every call; Feishu (meetings and calendar) answers
    sandbox.configure(failRate=1.0, failProvider="google")

    # when
    session = session_settled(book(people)["sessionId"])

    # then: the student's calendar gave up and waits for a person, the mentor's event and both emails went out
    failed = wait_for(
        lambda: NotificationDelivery.objects.filter(
            session_id=session.id, channel=Channel.CALENDAR, requires_manual_intervention=True
        ).first(),
        what="a calendar delivery given up for a person",
    )
    assert failed.recipient_id == people["student"].id and failed.attempts == 3
    assert failed.state == DeliveryState.GIVEN_UP and "HTTP 500" in failed.manual_intervention_reason
    wait_for(lambda: len(events_of(sandbox, session.topic)) == 1, what="the mentor's event")
    assert events_of(sandbox, session.topic)[0]["provider"] == "feishu"
    wait_for(lambda: len([m for m in stack.emails() if session.topic in m["Subject"]]) == 2, what="both emails")
    assert Reminder.objects.filter(session_id=session.id).count() == 4
    session.refresh_from_db()
    assert session.status == SessionStatus.SCHEDULED
    assert session.meeting.status == "active"


@pytest.mark.race
def test_two_reminder_senders_at_once_send_each_due_reminder_exactly_once(settings, stack):
    # given: 24 reminders due now (12 sessions, two participants each)
    settings.REMINDER_OFFSETS_MINUTES = [60]
    tag = uuid.uuid4().hex[:8]
    sessions = [
        scheduled_session(
            start=future(hours=3),
            topic=f"Race {tag} {n}",
            mentor=MentorFactory(email=f"m{n}-{tag}@example.com"),
            students=[UserFactory(email=f"s{n}-{tag}@example.com")],
        )
        for n in range(12)
    ]
    for session in sessions:
        reminders_sync(session_id=session.id)
    ids = [s.id for s in sessions]
    now = timezone.now()
    assert Reminder.objects.filter(session_id__in=ids).update(due_at=now, not_before=now) == 24
    start = threading.Barrier(2)
    counts: list[int] = []

    def sender():
        try:
            start.wait(timeout=10)
            counts.append(reminders_send_due())
        finally:
            connection.close()

    # when: two senders in this process (and the worker's beat sender, which may join in)
    threads = [threading.Thread(target=sender) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)

    # then: every reminder sent, each exactly once, whoever sent it
    wait_for(
        lambda: not Reminder.objects.filter(session_id__in=ids).exclude(state=DeliveryState.DELIVERED).exists(),
        what="every reminder sent",
    )
    ours = [m.to[0] for m in mail.outbox if m.subject.startswith(f"Reminder: Race {tag}")]
    workers = [m["To"] for m in stack.emails() if m["Subject"].startswith(f"Reminder: Race {tag}")]
    recipients = sorted(ours + workers)
    assert len(recipients) == 24 and len(set(recipients)) == 24
    assert sum(counts) == len(ours)


def test_notifications_whose_messages_were_lost_all_arrive_once_the_notifier_is_back(people, sandbox, stack):
    # given: the notifier is down while sessions are booked and scheduled
    stack.stop("notifier")
    try:
        sessions = [session_settled(book(people, hours=90 + i)["sessionId"]) for i in range(2)]
        assert {s.status for s in sessions} == {SessionStatus.SCHEDULED}
        # the fan-out is rows already, written with each result, whatever becomes of its messages
        wait_for(
            lambda: NotificationDelivery.objects.filter(session_id__in=[s.id for s in sessions]).count() == 2 * 5,
            what="the delivery rows of both sessions",
        )
        # when: the broker loses every message (a Redis restart without persistence)
        redis.Redis.from_url(stack.redis_url).flushdb()
    finally:
        stack.start_notifier()

    # then: the sweep re-drives the deliveries and every calendar event and email arrives, each once
    for session in sessions:
        wait_for(lambda s=session: len(events_of(sandbox, s.topic)) == 2, timeout=40, what="both calendar events")
        for person in (people["mentor"], people["student"]):
            wait_for(
                lambda p=person, s=session: emails_to(stack, p.email, f"Session booked: {s.topic}"),
                timeout=40,
                what=f"the email to {person}",
            )
    wait_for(
        lambda: not NotificationDelivery.objects.filter(session_id__in=[s.id for s in sessions])
        .exclude(state=DeliveryState.DELIVERED)
        .exists(),
        what="every delivery delivered",
    )
    for session in sessions:
        assert len(events_of(sandbox, session.topic)) == 2
        assert len([m for m in stack.emails() if m["Subject"] == f"Session booked: {session.topic}"]) == 2
