"""The session's life after booking (API.md "Act", issue 15): the clock and the providers move it, cancel is
refused once it has begun, and a cancelled or failed session shows no meeting."""

import threading
from datetime import timedelta

import pytest
from django.db import connection, transaction
from django.utils import timezone

from holds_app.models import Hold, HoldStatus
from notifications_app.models import Channel, NotificationDelivery
from sessions_app.life import session_meeting_ended, session_meeting_started, sessions_clock_tick
from sessions_app.models import AuditEntry, OutboxEvent, Session, SessionStatus
from tests.conftest import assert_error, detail_url, table_counts
from tests.lifecycle.test_lifecycle import action_url

pytestmark = pytest.mark.usefixtures("providers")


def starts_in(session: Session, minutes: float) -> Session:
    """Move the session's start (the database only: as if that much time had passed)."""
    Session.objects.filter(id=session.id).update(scheduled_at=timezone.now() + timedelta(minutes=minutes))
    session.refresh_from_db()
    return session


def lived_events(session: Session, kind: str) -> list[dict]:
    return [
        e.payload
        for e in OutboxEvent.objects.filter(type__endswith=f"session.{kind}")
        if e.payload["sessionId"] == str(session.id)
    ]


# --- the clock -------------------------------------------------------------------------------------------


def test_the_clock_starts_a_session_whose_start_has_come(counselor_api, scheduled):
    session = starts_in(scheduled(), minutes=-0.5)
    later = starts_in(scheduled(hours=50), minutes=10)

    tick = sessions_clock_tick()

    assert (tick.started, tick.completed) == (1, 0)
    body = counselor_api.get(detail_url(session.id)).json()
    assert body["status"] == "IN_PROGRESS" and body["startedAt"] is None, "the clock does not invent a real start"
    assert body["meetingUrl"], "a session in progress can be joined"
    assert Session.objects.get(id=later.id).status == SessionStatus.SCHEDULED
    assert Hold.objects.get(session_id=session.id).status == HoldStatus.ACTIVE
    [started] = lived_events(session, "started")
    assert started["status"] == "IN_PROGRESS"
    assert AuditEntry.objects.filter(session_id=session.id, action="started", via="clock", actor=None).count() == 1
    assert sessions_clock_tick() == tick.__class__(started=0, completed=0), "a second tick changes nothing"


def test_the_clock_completes_a_session_after_its_end_and_the_grace(counselor_api, scheduled, settings):
    settings.AUTO_COMPLETE_AFTER_MINUTES = 30
    session = scheduled()  # 60 minutes long
    sessions_clock_tick()
    starts_in(session, minutes=-(60 + 29))
    sessions_clock_tick()
    assert Session.objects.get(id=session.id).status == SessionStatus.IN_PROGRESS, "still within the grace"

    starts_in(session, minutes=-(60 + 31))
    tick = sessions_clock_tick()

    assert tick.completed == 1
    assert counselor_api.get(detail_url(session.id)).json()["status"] == "COMPLETED"
    assert Hold.objects.get(session_id=session.id).status == HoldStatus.CONSUMED
    assert len(lived_events(session, "completed")) == 1


def test_a_session_whose_whole_time_passed_unseen_is_completed_once(scheduled):
    session = starts_in(scheduled(), minutes=-24 * 60)

    tick = sessions_clock_tick()

    assert (tick.started, tick.completed) == (0, 1)
    assert Session.objects.get(id=session.id).status == SessionStatus.COMPLETED
    assert lived_events(session, "started") == [] and len(lived_events(session, "completed")) == 1


def test_the_clock_leaves_pending_failed_and_cancelled_sessions_alone(counselor_api, book):
    pending = book()
    cancelled = book(hours=50)
    counselor_api.post(action_url(cancelled, "cancel"))
    Session.objects.filter(id__in=[pending.id, cancelled.id]).update(scheduled_at=timezone.now() - timedelta(days=1))
    before = table_counts()

    assert sessions_clock_tick() == sessions_clock_tick().__class__(started=0, completed=0)
    assert table_counts() == before


@pytest.mark.django_db(transaction=True)
def test_two_clocks_racing_move_each_session_once(scheduled):
    sessions = [starts_in(scheduled(hours=48 + i), minutes=-1) for i in range(6)]
    barrier = threading.Barrier(2)
    ticks = []

    def tick() -> None:
        try:
            barrier.wait()
            ticks.append(sessions_clock_tick())
        finally:
            connection.close()

    threads = [threading.Thread(target=tick) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)

    assert sum(t.started for t in ticks) == len(sessions)
    assert set(Session.objects.filter(id__in=[s.id for s in sessions]).values_list("status", flat=True)) == {
        SessionStatus.IN_PROGRESS
    }
    assert OutboxEvent.objects.filter(type__endswith="session.started").count() == len(sessions)


def test_a_started_or_completed_session_supersedes_its_unsent_reminders(scheduled):
    session = starts_in(scheduled(), minutes=-1)

    sessions_clock_tick()

    [event] = OutboxEvent.objects.filter(type__endswith="session.started")
    delivery = NotificationDelivery.objects.get(event_id=event.id)
    assert delivery.channel == Channel.REMINDERS and delivery.session_id == session.id


# --- what the providers report ---------------------------------------------------------------------------


def test_the_provider_starting_the_meeting_starts_the_session_with_its_real_start(counselor_api, scheduled):
    session = scheduled()
    at = timezone.now().replace(microsecond=0) - timedelta(minutes=2)

    with transaction.atomic():
        assert session_meeting_started(meeting_id=session.meeting_id, at=at, via="feishu")
    with transaction.atomic():
        assert not session_meeting_started(meeting_id=session.meeting_id, at=at, via="feishu"), "a repeat"

    body = counselor_api.get(detail_url(session.id)).json()
    assert body["status"] == "IN_PROGRESS"
    assert body["startedAt"] == at.isoformat().replace("+00:00", "Z")
    assert len(lived_events(session, "started")) == 1


def test_the_provider_ending_the_meeting_completes_the_session_and_spends_the_unit(counselor_api, scheduled):
    session = scheduled()
    started, ended = timezone.now() - timedelta(minutes=50), timezone.now().replace(microsecond=0)
    with transaction.atomic():
        session_meeting_started(meeting_id=session.meeting_id, at=started, via="zoom")

    with transaction.atomic():
        assert session_meeting_ended(meeting_id=session.meeting_id, at=ended, via="zoom")
    with transaction.atomic():
        assert not session_meeting_ended(meeting_id=session.meeting_id, at=ended, via="zoom")

    body = counselor_api.get(detail_url(session.id)).json()
    assert body["status"] == "COMPLETED" and body["endedAt"] == ended.isoformat().replace("+00:00", "Z")
    assert Hold.objects.get(session_id=session.id).status == HoldStatus.CONSUMED
    assert len(lived_events(session, "completed")) == 1


def test_a_provider_event_learns_the_real_start_of_a_session_the_clock_started(scheduled):
    session = starts_in(scheduled(), minutes=-1)
    sessions_clock_tick()
    at = timezone.now().replace(microsecond=0)

    with transaction.atomic():
        assert session_meeting_started(meeting_id=session.meeting_id, at=at, via="zoom")

    session.refresh_from_db()
    assert session.status == SessionStatus.IN_PROGRESS and session.started_at == at
    assert len(lived_events(session, "started")) == 1


def test_a_provider_event_for_a_cancelled_session_changes_nothing(counselor_api, scheduled):
    session = scheduled()
    counselor_api.post(action_url(session, "cancel"))
    before = table_counts()

    with transaction.atomic():
        assert not session_meeting_started(meeting_id=session.meeting_id, at=timezone.now(), via="zoom")
        assert not session_meeting_ended(meeting_id=session.meeting_id, at=timezone.now(), via="zoom")

    assert table_counts() == before
    assert Session.objects.get(id=session.id).status == SessionStatus.CANCELLED


# --- cancel only before the start ------------------------------------------------------------------------


def test_cancel_after_the_start_is_invalid_state_and_changes_nothing(counselor_api, scheduled):
    session = starts_in(scheduled(), minutes=-1)
    before = table_counts()

    error = assert_error(counselor_api.post(action_url(session, "cancel")), 409, "INVALID_STATE")

    assert "begun" in error["message"]
    assert table_counts() == before
    assert Hold.objects.get(session_id=session.id).status == HoldStatus.ACTIVE


def test_cancel_of_a_session_in_progress_is_invalid_state(counselor_api, scheduled):
    session = starts_in(scheduled(), minutes=-1)
    sessions_clock_tick()

    assert_error(counselor_api.post(action_url(session, "cancel")), 409, "INVALID_STATE")
    assert Session.objects.get(id=session.id).status == SessionStatus.IN_PROGRESS


# --- no dead links ---------------------------------------------------------------------------------------


def test_a_cancelled_session_shows_no_meeting_in_the_api(counselor_api, scheduled):
    session = scheduled()
    assert counselor_api.get(detail_url(session.id)).json()["meetingUrl"]

    body = counselor_api.post(action_url(session, "cancel")).json()

    assert (body["meetingId"], body["meetingNo"], body["meetingUrl"]) == (None, None, None)
    listed = counselor_api.get("/api/counselor/sessions").json()["results"]
    assert [(s["meetingId"], s["meetingNo"], s["meetingUrl"]) for s in listed] == [(None, None, None)]


def test_reschedule_after_the_start_is_invalid_state_and_changes_nothing(counselor_api, scheduled):
    session = starts_in(scheduled(), minutes=-1)
    before = table_counts()

    body = {"scheduledStartTime": (timezone.now() + timedelta(days=3)).isoformat(), "duration": 60}
    error = assert_error(
        counselor_api.post(action_url(session, "reschedule"), body, format="json"), 409, "INVALID_STATE"
    )

    assert "begun" in error["message"]
    assert table_counts() == before
