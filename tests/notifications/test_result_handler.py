"""The meeting-result handler, branch by branch (create / update / cancel × success / failed), with the two
calendar providers played by `responses`, emails in Django's locmem outbox, and every delivery task run
in-process through Celery's `apply` (retries included)."""

from datetime import UTC, datetime, timedelta

import icalendar
import pytest
from django.core import mail
from django.db.models import F

from accounts_app.models import Profile
from calendar_app.models import CalendarEvent, CalendarEventStatus
from calendar_app.services import calendar_event_sync
from notifications_app.models import Channel, DeliveryState, EmailKind, NotificationDelivery, Reminder
from notifications_app.services import participant_calendar_sync
from sessions_app.models import OutboxEvent, Session, SessionStatus
from tests.factories import CounselorFactory, MentorFactory, UserFactory, future
from tests.notification_factories import scheduled_session
from tests.notifications.conftest import result_event

pytestmark = pytest.mark.django_db


@pytest.fixture
def session() -> Session:
    """Mentor on Feishu Calendar, student on Google Calendar, starting in two days."""
    mentor = MentorFactory(email="mentor@example.com")
    student = UserFactory(email="student@example.com")
    Profile.objects.filter(user=student).update(calendar_provider="google", time_zone="Europe/Paris")
    return scheduled_session(mentor=mentor, students=[student], counselor=CounselorFactory(email="c@example.com"))


def emails_to(address: str) -> list:
    return [message for message in mail.outbox if message.to == [address]]


def invitation_of(message) -> icalendar.Calendar:
    (attachment,) = [part for part in message.attachments if part.get_content_type() == "text/calendar"]
    return icalendar.Calendar.from_ical(attachment.get_payload(decode=True))


def move(session: Session, *, hours: float) -> Session:
    Session.objects.filter(id=session.id).update(scheduled_at=future(hours=hours))
    return Session.objects.select_related("meeting").get(id=session.id)


def cancel(session: Session) -> Session:
    Session.objects.filter(id=session.id).update(status=SessionStatus.CANCELLED)
    return Session.objects.select_related("meeting").get(id=session.id)


def test_create_success_puts_the_meeting_in_each_participants_calendar_with_reminders_and_an_email(
    session, calendars, deliver
):
    # when
    deliver(result_event(session))

    # then: one event per participant, in the participant's own provider, with the link
    url = session.meeting.join_url
    (feishu_event,) = calendars.active("feishu")
    (google_event,) = calendars.active("google")
    assert feishu_event.url == google_event.url == url
    assert feishu_event.start == int(session.scheduled_at.timestamp())
    assert feishu_event.attendees == [{"type": "user", "user_id": session.mentor.profile.feishu_open_id}]
    assert google_event.attendees == ["student@example.com"]
    # the calendars themselves remind too, at the same offsets as the email reminders
    assert feishu_event.reminders == google_event.reminders == [60, 24 * 60]
    rows = CalendarEvent.objects.filter(session_id=session.id)
    assert {(row.user_id, row.provider, row.status) for row in rows} == {
        (session.mentor_id, "feishu", CalendarEventStatus.ACTIVE),
        (session.student_ids[0], "google", CalendarEventStatus.ACTIVE),
    }
    # reminders 24 h and 1 h before the start, for both
    reminders = Reminder.objects.filter(session_id=session.id, state=DeliveryState.PENDING)
    assert sorted((r.recipient_id == session.mentor_id, r.due_at) for r in reminders) == sorted(
        (is_mentor, session.scheduled_at - timedelta(minutes=offset))
        for is_mentor in (True, False)
        for offset in (24 * 60, 60)
    )
    # one email each, with the link and an invitation
    for address in ("mentor@example.com", "student@example.com"):
        (message,) = emails_to(address)
        assert url in message.body
        assert url in message.alternatives[0].content
        event = invitation_of(message).walk("VEVENT")[0]
        assert invitation_of(message)["METHOD"] == "REQUEST"
        assert str(event["UID"]) == f"session-{session.id}@booking.example.com"
        assert event.decoded("DTSTART") == session.scheduled_at.astimezone(UTC)
        assert event.decoded("DTEND") == session.scheduled_at.astimezone(UTC) + timedelta(minutes=60)
        assert str(event["URL"]) == str(event["LOCATION"]) == url
        assert str(event["SUMMARY"]) == session.topic
    assert emails_to("c@example.com") == []


def test_the_same_event_handled_twice_makes_one_calendar_event_and_one_email_per_participant(
    session, calendars, deliver
):
    # given
    event_id = result_event(session)

    # when
    deliver(event_id)
    deliver(event_id)

    # then
    assert len(calendars.events) == 2 and len(calendars.active()) == 2
    assert len(emails_to("mentor@example.com")) == 1 and len(emails_to("student@example.com")) == 1
    assert Reminder.objects.filter(session_id=session.id).count() == 4
    assert [op for _, op in calendars.calls].count("create") == 2


def test_create_failed_emails_the_counselor_the_reason_and_the_retry_link_and_nothing_else(calendars, deliver):
    # given
    session = scheduled_session(status=SessionStatus.MEETING_FAILED, counselor=CounselorFactory(email="c@example.com"))
    Session.objects.filter(id=session.id).update(failure_reason="feishu create: HTTP 500")

    # when
    deliver(result_event(session, status="failed", reason="feishu create: HTTP 500"))

    # then
    (message,) = mail.outbox
    assert message.to == ["c@example.com"]
    assert "feishu create: HTTP 500" in message.body
    assert f"https://booking.example.com/app/sessions/{session.id}/" in message.body
    assert calendars.calls == []
    assert not Reminder.objects.filter(session_id=session.id).exists()


@pytest.mark.parametrize("status", ["success", "failed"])
def test_update_moves_calendar_events_and_reminders_and_tells_participants(session, calendars, deliver, status):
    # given: booked and notified, then rescheduled to three days ahead
    deliver(result_event(session))
    first_invitation = invitation_of(emails_to("student@example.com")[0]).walk("VEVENT")[0]
    moved = move(session, hours=72)
    mail.outbox.clear()

    update_event = result_event(moved, operation="update", status=status, reason="zoom update: HTTP 503")
    # recorded a second later (within one test transaction, now() does not move)
    OutboxEvent.objects.filter(id=update_event).update(created_at=F("created_at") + timedelta(seconds=1))
    NotificationDelivery.objects.filter(event_id=update_event).update(event_at=F("event_at") + timedelta(seconds=1))

    # when
    deliver(update_event)

    # then
    (feishu_event,) = calendars.active("feishu")
    (google_event,) = calendars.active("google")
    assert feishu_event.start == int(moved.scheduled_at.timestamp())
    assert google_event.start == moved.scheduled_at.astimezone(UTC).isoformat().replace("+00:00", "Z")
    assert feishu_event.reminders == google_event.reminders == [60, 24 * 60]
    assert len(calendars.events) == 2
    pending = Reminder.objects.filter(session_id=session.id, state=DeliveryState.PENDING)
    assert sorted({r.due_at for r in pending}) == [
        moved.scheduled_at - timedelta(minutes=24 * 60),
        moved.scheduled_at - timedelta(minutes=60),
    ]
    assert pending.count() == 4
    for address in ("mentor@example.com", "student@example.com"):
        (message,) = emails_to(address)
        assert "rescheduled" in message.subject.lower()
        event = invitation_of(message).walk("VEVENT")[0]
        assert event.decoded("DTSTART") == moved.scheduled_at.astimezone(UTC)
        assert event["UID"] == first_invitation["UID"]
        assert event["SEQUENCE"] > first_invitation["SEQUENCE"]
    counselor_emails = emails_to("c@example.com")
    if status == "success":
        assert counselor_emails == []
    else:
        (message,) = counselor_emails
        assert "zoom update: HTTP 503" in message.body


@pytest.mark.parametrize("status", ["success", "failed"])
def test_cancel_deletes_calendar_events_cancels_reminders_and_tells_participants(session, calendars, deliver, status):
    # given
    deliver(result_event(session))
    cancelled = cancel(session)
    mail.outbox.clear()

    # when
    deliver(result_event(cancelled, operation="cancel", status=status))

    # then
    assert calendars.active() == [] and len(calendars.events) == 2
    assert set(CalendarEvent.objects.filter(session_id=session.id).values_list("status", flat=True)) == {
        CalendarEventStatus.DELETED
    }
    assert set(Reminder.objects.filter(session_id=session.id).values_list("state", flat=True)) == {
        DeliveryState.SUPERSEDED
    }
    for address in ("mentor@example.com", "student@example.com"):
        (message,) = emails_to(address)
        assert "cancelled" in message.subject.lower()
        calendar = invitation_of(message)
        assert calendar["METHOD"] == "CANCEL"
        assert calendar.walk("VEVENT")[0]["STATUS"] == "CANCELLED"


def test_a_cancel_handled_before_the_create_leaves_no_calendar_event_reminder_or_invitation(
    session, calendars, deliver
):
    # given: both events recorded, the session cancelled, and the cancel's notifications run first
    create_event = result_event(session)
    cancelled = cancel(session)
    cancel_event = result_event(cancelled, operation="cancel")

    # when
    deliver(cancel_event)
    deliver(create_event)

    # then
    assert calendars.events == {}
    assert not Reminder.objects.filter(session_id=session.id, state=DeliveryState.PENDING).exists()
    # Never invited, so not told of a cancellation either: an email about an unknown session only confuses.
    assert emails_to("student@example.com") == []
    cancellation = NotificationDelivery.objects.get(
        session_id=session.id, email_kind=EmailKind.CANCELLED, recipient__email="student@example.com"
    )
    assert cancellation.state == DeliveryState.SUPERSEDED and "never invited" in cancellation.last_error
    invitation = NotificationDelivery.objects.get(
        session_id=session.id, email_kind=EmailKind.INVITATION, recipient__email="student@example.com"
    )
    assert invitation.state == DeliveryState.SUPERSEDED


@pytest.mark.parametrize("provider", ["feishu", "google"])
def test_a_cancel_arriving_while_the_create_call_is_in_flight_leaves_no_event_behind(session, calendars, provider):
    # given: the participant's create call reaches the provider, and while it is there the session is cancelled
    # and the cancel's calendar task runs to its end
    participant = session.mentor_id if provider == "feishu" else session.student_ids[0]

    def cancel_meanwhile():
        calendars.during_create = None
        cancel(session)
        participant_calendar_sync(session_id=session.id, user_id=participant)

    calendars.during_create = cancel_meanwhile

    # when
    participant_calendar_sync(session_id=session.id, user_id=participant)

    # then
    assert len(calendars.events) == 1
    assert calendars.active() == []
    assert CalendarEvent.objects.get(session_id=session.id, user_id=participant).status == CalendarEventStatus.DELETED


def needing_a_person() -> list[NotificationDelivery]:
    return list(NotificationDelivery.objects.filter(requires_manual_intervention=True))


def test_a_calendar_provider_failing_every_time_gives_up_for_a_person_and_blocks_no_other_delivery(
    session, calendars, deliver
):
    # given
    calendars.down.add("google")

    # when
    deliver(result_event(session))

    # then: the student's calendar gave up after its attempts and waits for a person; everything else went out
    assert [op for provider, op in calendars.calls if provider == "google"] == ["create"] * 3
    (failed,) = needing_a_person()
    assert (failed.channel, failed.recipient_id, failed.attempts) == ("calendar", session.student_ids[0], 3)
    assert failed.state == DeliveryState.GIVEN_UP
    assert "HTTP 500" in failed.manual_intervention_reason
    assert len(calendars.active("feishu")) == 1
    assert len(mail.outbox) == 2
    assert Reminder.objects.filter(session_id=session.id).count() == 4
    # and the booking is untouched
    assert Session.objects.get(id=session.id).status == SessionStatus.SCHEDULED


def test_a_permanent_calendar_refusal_gives_up_at_once(session, calendars, deliver, settings):
    # given: no Google credentials at all
    settings.GOOGLE_CALENDAR_ACCESS_TOKEN = ""

    # when
    deliver(result_event(session))

    # then
    (failed,) = needing_a_person()
    assert failed.attempts == 1 and "GOOGLE_SERVICE_ACCOUNT_FILE" in failed.manual_intervention_reason
    assert CalendarEvent.objects.get(user_id=session.student_ids[0]).status == CalendarEventStatus.PENDING


def test_an_email_backend_failing_every_time_is_retried_then_given_up_for_a_person(
    session, calendars, deliver, settings
):
    # given
    settings.EMAIL_BACKEND = "tests.notifications.test_result_handler.BrokenEmailBackend"

    # when
    deliver(result_event(session))

    # then
    deliveries = NotificationDelivery.objects.filter(session_id=session.id, channel=Channel.EMAIL)
    assert {(d.state, d.attempts) for d in deliveries} == {(DeliveryState.GIVEN_UP, 3)}
    assert sorted(f.channel for f in needing_a_person()) == ["email", "email"]
    assert len(calendars.active()) == 2


class BrokenEmailBackend:
    def __init__(self, *args, **kwargs):
        pass

    def send_messages(self, messages):
        raise ConnectionRefusedError("SMTP server down")


def test_a_participants_profile_change_after_creation_keeps_their_event_where_it_was(session, calendars):
    # given
    student = session.student_ids[0]
    participant_calendar_sync(session_id=session.id, user_id=student)
    Profile.objects.filter(user_id=student).update(calendar_provider="feishu")
    move(session, hours=30)

    # when
    participant_calendar_sync(session_id=session.id, user_id=student)

    # then: moved in Google, not duplicated in Feishu
    assert [e.provider for e in calendars.active()] == ["google"]


def test_a_session_not_yet_scheduled_gets_no_calendar_event(calendars):
    session = scheduled_session(status=SessionStatus.PENDING_MEETING)

    row = participant_calendar_sync(session_id=session.id, user_id=session.mentor_id)

    assert row.status == CalendarEventStatus.DELETED and calendars.calls == []
    assert calendar_event_sync  # the service under test is the one the task calls
    assert datetime.now(UTC) < session.scheduled_at


def test_a_participant_the_provider_cannot_invite_is_left_out_without_a_failure(calendars, deliver):
    # given: a Google Calendar student with no email address
    student = UserFactory(email="")
    Profile.objects.filter(user=student).update(calendar_provider="google")
    session = scheduled_session(students=[student], mentor=MentorFactory(email="mentor@example.com"))

    # when
    deliver(result_event(session))

    # then
    assert [e.provider for e in calendars.active()] == ["feishu"]
    assert not CalendarEvent.objects.filter(user=student).exists()
    assert needing_a_person() == []
    assert [m.to for m in mail.outbox] == [["mentor@example.com"]]


@pytest.mark.parametrize("provider", ["feishu", "google"])
def test_an_event_made_by_a_worker_that_died_mid_call_is_found_and_deleted_once_the_session_is_cancelled(
    session, calendars, provider
):
    # given: a create reached the provider, but its worker died before recording the answer
    participant = session.mentor_id if provider == "feishu" else session.student_ids[0]

    def die_after_the_provider_answered():
        calendars.during_create = None
        participant_calendar_sync(session_id=session.id, user_id=participant)  # the provider makes the event
        raise SystemExit  # and the worker is gone before its answer is stored

    calendars.during_create = die_after_the_provider_answered
    with pytest.raises(SystemExit):
        participant_calendar_sync(session_id=session.id, user_id=participant)
    CalendarEvent.objects.filter(user_id=participant).update(status=CalendarEventStatus.CREATING, event_id="")
    assert len(calendars.active(provider)) == 1

    # when: the session is cancelled and the participant's calendar converges
    cancel(session)
    participant_calendar_sync(session_id=session.id, user_id=participant)

    # then
    assert calendars.active() == [] and len(calendars.events) == 1
    assert CalendarEvent.objects.get(user_id=participant).status == CalendarEventStatus.DELETED


def test_the_event_registry_lists_the_notification_handler_for_every_result_type():
    import json
    from io import StringIO

    from django.core.management import call_command

    out = StringIO()
    call_command("event_registry", "--json", stdout=out)
    results = [e for e in json.loads(out.getvalue()) if e["type"].endswith(".session.meeting.operation.result")]

    assert len(results) == 5
    assert all("notifications.meeting_result" in e["handlers"] for e in results)
