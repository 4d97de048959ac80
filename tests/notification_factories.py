"""factory-boy factories for calendar events and notifications, and a scheduled session to notify about."""

import uuid
from datetime import timedelta

import factory
from django.utils import timezone

from calendar_app.models import CalendarEvent
from meetings_app.models import Meeting
from notifications_app.models import Channel, DeliveryState, EmailKind, NotificationDelivery, Reminder
from sessions_app.models import Session, SessionStatus, SessionStudent
from tests.factories import CounselorFactory, MentorFactory, UserFactory, future


class CalendarEventFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = CalendarEvent

    session_id = factory.LazyFunction(uuid.uuid4)
    user = factory.SubFactory(UserFactory)


class ReminderFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Reminder

    session_id = factory.LazyFunction(uuid.uuid4)
    recipient = factory.SubFactory(UserFactory)
    offset_minutes = 60
    session_starts_at = factory.LazyFunction(lambda: future(hours=2))
    due_at = factory.LazyAttribute(lambda r: r.session_starts_at - timedelta(minutes=r.offset_minutes))
    not_before = factory.SelfAttribute("due_at")


class NotificationDeliveryFactory(factory.django.DjangoModelFactory):
    """An invitation email to deliver."""

    class Meta:
        model = NotificationDelivery

    event_id = factory.LazyFunction(uuid.uuid4)
    session_id = factory.LazyFunction(uuid.uuid4)
    channel = Channel.EMAIL
    recipient = factory.SubFactory(UserFactory)
    email_kind = EmailKind.INVITATION
    event_at = factory.LazyFunction(timezone.now)


class GivenUpDeliveryFactory(NotificationDeliveryFactory):
    """A participant's calendar event that gave up after its attempts: in the queue for a person."""

    channel = Channel.CALENDAR
    email_kind = ""
    state = DeliveryState.GIVEN_UP
    attempts = 3
    last_error = "google calendar.create: HTTP 500 from POST /calendar/v3/calendars/primary/events unavailable"
    requires_manual_intervention = True
    manual_intervention_reason = factory.LazyAttribute(lambda d: f"failed after 3 attempt(s): {d.last_error}")
    manual_intervention_at = factory.LazyFunction(timezone.now)


class MeetingFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Meeting

    provider = "feishu"
    provider_meeting_id = factory.Sequence(lambda n: f"69111884119320{n:05d}")
    meeting_no = factory.Sequence(lambda n: f"{100000000 + n}")
    join_url = factory.LazyAttribute(lambda m: f"https://vc.feishu.cn/j/{m.meeting_no}")
    start_time = factory.LazyFunction(future)
    duration_minutes = 60
    topic = "Resume review"


def scheduled_session(*, students=None, mentor=None, start=None, status=SessionStatus.SCHEDULED, **kwargs) -> Session:
    """A session as the saga leaves it: SCHEDULED with its meeting (rows only, no booking flow)."""
    counselor = kwargs.pop("counselor", None) or CounselorFactory()
    mentor = mentor or MentorFactory()
    students = students or [UserFactory()]
    start = start or future(hours=48)
    meeting = MeetingFactory(start_time=start) if status != SessionStatus.PENDING_MEETING else None
    session = Session.objects.create(
        session_type=kwargs.pop("session_type", "regular_mentoring"),
        status=status,
        counselor=counselor,
        mentor=mentor,
        scheduled_at=start,
        duration_minutes=kwargs.pop("duration_minutes", 60),
        meeting_provider="feishu",
        topic=kwargs.pop("topic", "Resume review"),
        meeting=meeting,
        **kwargs,
    )
    for position, student in enumerate(students):
        SessionStudent.objects.create(session=session, student=student, position=position)
    return session
