"""While an operator has paused a provider, its work waits before any attempt is opened: no attempt spent, no
provider call (`responses` records none), its state unchanged, and the sweep leaves it alone until the recheck;
resuming wakes the waiting rows at PROVIDER_RESUME_DRAIN_PER_SECOND."""

from collections import Counter
from datetime import timedelta

import pytest
from django.utils import timezone

from booking_project.provider_work import provider_work_sweep
from meetings_app.models import PauseAction, ProviderPause, ProviderPauseChange
from meetings_app.services import provider_pause, provider_resume
from notifications_app.models import Channel, DeliveryState
from notifications_app.services import notification_deliver
from sessions_app.meeting_operations import meeting_operation_advance
from sessions_app.models import (
    MeetingOperation,
    MeetingOperationKind,
    MeetingOperationState,
    MeetingSaga,
    SagaState,
    SessionStatus,
)
from sessions_app.saga import saga_advance
from tests.notification_factories import NotificationDeliveryFactory, scheduled_session
from tests.saga.conftest import ZOOM_API, saga_of

pytestmark = pytest.mark.django_db


def test_a_paused_zooms_saga_waits_without_an_attempt_or_a_call(providers, booked, operator, settings):
    settings.PROVIDER_PAUSE_RECHECK_SECONDS = 300
    session = booked("zoom")
    provider_pause(provider="zoom", actor=operator, reason="Zoom outage")

    step = saga_advance(session_id=session.id, event_id=saga_of(session).event_id)

    assert step.retry_in is None  # no countdown that would spend the courier's retries
    saga = saga_of(session)
    assert (saga.state, saga.attempts, saga.unexpected_errors) == (SagaState.PENDING, 0, 0)
    assert saga.not_before > timezone.now() + timedelta(seconds=250)
    session.refresh_from_db()
    assert session.status == SessionStatus.PENDING_MEETING
    assert len(providers.calls) == 0
    # Long after its stuck period, but before the recheck, the sweep does not re-drive it.
    later = timezone.now() + timedelta(seconds=settings.SAGA_STUCK_AFTER_SECONDS + 60)
    assert provider_work_sweep(now=later, kinds=["meeting_saga"]) == 0


def test_a_pause_keeps_a_longer_wait_and_does_not_hold_the_other_provider(providers, booked, operator, settings):
    settings.PROVIDER_PAUSE_RECHECK_SECONDS = 60
    zoom, feishu = booked("zoom"), booked("feishu")
    far = timezone.now() + timedelta(hours=1)
    MeetingSaga.objects.filter(session_id=zoom.id).update(not_before=far)
    provider_pause(provider="feishu", actor=operator, reason="Feishu outage")
    provider_pause(provider="zoom", actor=operator, reason="Zoom outage")

    saga_advance(session_id=zoom.id)
    assert saga_of(zoom).not_before == far  # a provider's longer Retry-After is not cut short by the pause
    provider_resume(provider="zoom", actor=operator)
    host = zoom.mentor.profile.zoom_user_id
    providers.post(
        f"{ZOOM_API}/users/{host}/meetings", status=201, json={"id": 999, "join_url": "https://zoom.test/j/999"}
    )
    saga_advance(session_id=feishu.id)
    saga_advance(session_id=zoom.id)

    assert saga_of(feishu).attempts == 0 and saga_of(feishu).state == SagaState.PENDING
    zoom.refresh_from_db()
    assert zoom.status == SessionStatus.SCHEDULED and saga_of(zoom).attempts == 1


def test_a_paused_providers_meeting_cancel_waits_without_an_attempt(providers, operator):
    session = scheduled_session()  # a Feishu meeting
    operation = MeetingOperation.objects.create(session=session, kind=MeetingOperationKind.CANCEL)
    provider_pause(provider="feishu", actor=operator, reason="Feishu outage")

    step = meeting_operation_advance(operation_id=operation.id)

    assert step.retry_in is None
    operation.refresh_from_db()
    assert (operation.state, operation.attempts) == (MeetingOperationState.PENDING, 0)
    assert operation.not_before > timezone.now()
    assert len(providers.calls) == 0


def test_a_paused_feishus_calendar_event_waits_but_an_email_does_not(providers, operator, settings, mailoutbox):
    session = scheduled_session()
    student = session.students.get()
    calendar = NotificationDeliveryFactory(
        session_id=session.id, channel=Channel.CALENDAR, email_kind="", recipient=student
    )
    student.profile.calendar_provider = "feishu"
    student.profile.save()
    email = NotificationDeliveryFactory(session_id=session.id, recipient=student)
    provider_pause(provider="feishu", actor=operator, reason="Feishu outage")

    notification_deliver(delivery_id=calendar.id)
    notification_deliver(delivery_id=email.id)

    calendar.refresh_from_db()
    assert (calendar.state, calendar.attempts) == (DeliveryState.PENDING, 0)
    assert len(providers.calls) == 0
    email.refresh_from_db()
    assert email.state == DeliveryState.DELIVERED and len(mailoutbox) == 1


def test_resume_wakes_the_backlog_oldest_first_at_the_configured_rate(providers, booked, operator, settings):
    settings.PROVIDER_RESUME_DRAIN_PER_SECOND = 2
    sessions = [booked("zoom") for _ in range(5)]
    other = booked("feishu")
    provider_pause(provider="zoom", actor=operator, reason="Zoom outage")
    for session in sessions:
        saga_advance(session_id=session.id)
    before = timezone.now()

    woken = provider_resume(provider="zoom", actor=operator, reason="Zoom is back")

    assert woken == 5
    waits = [(saga_of(s).not_before - before).total_seconds() for s in sessions]
    per_second = Counter(round(w) for w in waits)
    assert sorted(per_second) == [0, 1, 2] and max(per_second.values()) <= 2
    assert waits == sorted(waits)  # the oldest booking first
    assert all(saga_of(s).attempts == 0 for s in sessions)
    assert saga_of(other).not_before is None
    assert not ProviderPause.objects.get(provider="zoom").paused
    changes = list(ProviderPauseChange.objects.filter(provider="zoom").order_by("at", "id"))
    assert [(c.action, c.actor, c.woken) for c in changes] == [
        (PauseAction.PAUSE, operator, 0),
        (PauseAction.RESUME, operator, 5),
    ]
    assert changes[0].reason == "Zoom outage"


def test_pausing_twice_or_resuming_a_running_provider_changes_nothing(operator):
    assert provider_pause(provider="zoom", actor=operator, reason="outage")
    assert not provider_pause(provider="zoom", actor=operator, reason="again")
    assert provider_resume(provider="zoom", actor=operator) == 0
    assert provider_resume(provider="zoom", actor=operator) is None
    assert ProviderPauseChange.objects.count() == 2


def test_google_cannot_be_paused(operator):
    from booking_project.errors import ApplicationError

    with pytest.raises(ApplicationError):
        provider_pause(provider="google", actor=operator, reason="outage")
    assert not ProviderPauseChange.objects.exists()
