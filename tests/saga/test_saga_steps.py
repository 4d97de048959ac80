"""The saga's decisions, step by step, with the providers answered by `responses` at the HTTP boundary.

The integration suite proves the whole stack; these pin each branch (retry, give up, adopt, flag, ignore)
quickly and deterministically."""

import json
import re
from datetime import timedelta

import pytest
import responses
from django.utils import timezone

from calendar_app.models import CalendarSlot, SlotStatus
from holds_app.models import Hold, HoldStatus
from meetings_app.models import Meeting, MeetingStatus
from sessions_app.models import MeetingSaga, OutboxEvent, SagaState, Session, SessionStatus
from sessions_app.saga import saga_advance, saga_backoff, sagas_redrive_due
from tests.saga.conftest import FEISHU, RESERVE_APPLY, ZOOM_API, feishu_reserve, saga_of

pytestmark = pytest.mark.usefixtures("providers")


def test_a_created_meeting_schedules_the_session_and_writes_the_link_on_its_slots(providers, booked):
    providers.post(RESERVE_APPLY, json=feishu_reserve())
    session = booked()

    step = saga_advance(session_id=session.id, event_id=saga_of(session).event_id)

    assert step.retry_in is None
    session.refresh_from_db()
    assert session.status == SessionStatus.SCHEDULED
    assert session.meeting.join_url == "https://vc.feishu.cn/j/123456789"
    assert session.meeting.reference == str(session.id)
    assert {s.metadata["meetingUrl"] for s in CalendarSlot.objects.filter(id__in=session.slot_ids)} == {
        "https://vc.feishu.cn/j/123456789"
    }
    assert saga_of(session).state == SagaState.SUCCEEDED
    result = OutboxEvent.objects.get(type="regular_mentoring.session.meeting.operation.result")
    assert result.payload["status"] == "success"


def test_a_transient_failure_asks_for_a_retry_with_backoff(providers, booked, settings):
    settings.SAGA_RETRY_BACKOFF_SECONDS = 2
    providers.post(RESERVE_APPLY, status=503)
    session = booked()

    step = saga_advance(session_id=session.id)

    assert 1 <= step.retry_in <= 2
    saga = saga_of(session)
    assert saga.state == SagaState.RETRY_WAIT and saga.attempts == 1 and saga.not_before > timezone.now()
    # A bare 503 is a gateway's: the reservation may have been made, and the next attempt must look first.
    assert saga.outcome_unknown
    assert Session.objects.get(id=session.id).status == SessionStatus.PENDING_MEETING


def test_a_retry_after_longer_than_the_backoff_is_honoured(providers, booked):
    providers.post(RESERVE_APPLY, status=429, headers={"Retry-After": "30"}, json={"code": 99991400, "msg": "limit"})
    session = booked()

    step = saga_advance(session_id=session.id)

    assert step.retry_in >= 30


def test_a_rate_limit_for_hours_gives_up_instead_of_hammering(providers, booked):
    providers.post(f"{ZOOM_API}/users/{_zoom_host(booked)}/meetings", status=429, headers={"Retry-After": "7200"})
    session = Session.objects.latest("created_at")

    saga_advance(session_id=session.id)

    session.refresh_from_db()
    assert session.status == SessionStatus.MEETING_FAILED
    assert "rate-limited" in session.failure_reason


def _zoom_host(booked) -> str:
    session = booked("zoom")
    return session.mentor.profile.zoom_user_id


def test_a_refused_request_fails_at_once_and_gives_everything_back(providers, booked):
    providers.post(RESERVE_APPLY, status=400, json={"code": 99992402, "msg": "field validation failed"})
    session = booked()

    step = saga_advance(session_id=session.id)

    assert step.retry_in is None
    session.refresh_from_db()
    assert session.status == SessionStatus.MEETING_FAILED
    assert "refused" in session.failure_reason
    assert saga_of(session).attempts == 1
    assert not Hold.objects.filter(session_id=session.id, status=HoldStatus.ACTIVE).exists()
    assert set(CalendarSlot.objects.filter(id__in=session.slot_ids).values_list("status", flat=True)) == {
        SlotStatus.CANCELLED
    }


def test_the_last_transient_failure_gives_up(providers, booked):
    providers.post(RESERVE_APPLY, status=500)
    session = booked()
    MeetingSaga.objects.filter(session=session).update(attempts=2, state=SagaState.RETRY_WAIT)

    step = saga_advance(session_id=session.id)

    assert step.retry_in is None
    session.refresh_from_db()
    assert session.status == SessionStatus.MEETING_FAILED
    assert "after 3 attempts" in session.failure_reason


def test_a_saga_with_an_attempt_in_flight_is_left_to_that_worker(providers, booked):
    session = booked()
    MeetingSaga.objects.filter(session=session).update(
        state=SagaState.CREATING, attempts=1, attempt_started_at=timezone.now()
    )

    step = saga_advance(session_id=session.id)

    assert step.retry_in is None
    assert not [c for c in providers.calls if "reserves" in c.request.url]
    assert saga_of(session).state == SagaState.CREATING


def test_after_a_crash_zoom_adopts_the_meeting_it_already_made(providers, booked, settings):
    session = booked("zoom")
    host = session.mentor.profile.zoom_user_id
    providers.get(
        re.compile(rf"{re.escape(ZOOM_API)}/users/.+/meetings.*"),
        json={
            "next_page_token": "",
            "meetings": [
                {"id": 111, "topic": "other", "agenda": "Booking session someone-else", "join_url": "https://z/j/111"},
                {"id": 222, "topic": session.topic, "agenda": f"Booking session {session.id}", "join_url": "https://z/j/222"},
            ],
        },
    )  # fmt: skip
    create = providers.post(f"{ZOOM_API}/users/{host}/meetings", status=201, json={"id": 999, "join_url": "x"})
    stale = timezone.now() - timedelta(seconds=settings.SAGA_ATTEMPT_LEASE_SECONDS + 1)
    MeetingSaga.objects.filter(session=session).update(state=SagaState.CREATING, attempts=1, attempt_started_at=stale)

    saga_advance(session_id=session.id)

    session.refresh_from_db()
    assert session.status == SessionStatus.SCHEDULED
    assert session.meeting.provider_meeting_id == "222"
    assert create.call_count == 0


def test_after_a_crash_feishu_makes_a_new_reservation_and_asks_a_person_to_check(providers, booked, settings):
    providers.post(RESERVE_APPLY, json=feishu_reserve("987654321"))
    session = booked()
    stale = timezone.now() - timedelta(seconds=settings.SAGA_ATTEMPT_LEASE_SECONDS + 1)
    MeetingSaga.objects.filter(session=session).update(state=SagaState.CREATING, attempts=1, attempt_started_at=stale)

    saga_advance(session_id=session.id)

    session.refresh_from_db()
    saga = saga_of(session)
    assert session.status == SessionStatus.SCHEDULED
    assert saga.requires_manual_intervention
    assert "may have been left behind" in saga.manual_intervention_reason
    assert session.mentor.profile.feishu_open_id in saga.manual_intervention_reason


def test_a_meeting_already_stored_for_the_session_is_adopted_after_a_crash(providers, booked, settings):
    session = booked()
    stored = Meeting.objects.create(
        provider="feishu",
        provider_meeting_id="r1",
        meeting_no="1",
        join_url="https://vc.feishu.cn/j/1",
        start_time=session.scheduled_at,
        duration_minutes=60,
        topic=session.topic,
        reference=str(session.id),
    )
    stale = timezone.now() - timedelta(seconds=settings.SAGA_ATTEMPT_LEASE_SECONDS + 1)
    MeetingSaga.objects.filter(session=session).update(state=SagaState.CREATING, attempts=1, attempt_started_at=stale)

    saga_advance(session_id=session.id)

    session.refresh_from_db()
    assert session.meeting_id == stored.id
    assert not saga_of(session).requires_manual_intervention


def test_an_event_of_an_earlier_round_is_ignored(providers, booked):
    import uuid

    session = booked()

    saga_advance(session_id=session.id, event_id=uuid.uuid4())

    assert saga_of(session).state == SagaState.PENDING
    assert not [c for c in providers.calls if "reserves" in c.request.url]


def test_a_session_cancelled_before_provisioning_makes_no_meeting(providers, booked):
    session = booked()
    Session.objects.filter(id=session.id).update(status=SessionStatus.CANCELLED)

    saga_advance(session_id=session.id)

    assert saga_of(session).state == SagaState.FAILED
    assert not [c for c in providers.calls if "reserves" in c.request.url]


def test_a_meeting_whose_session_was_cancelled_during_the_call_is_cancelled(providers, booked):
    session = booked()

    def reserve_while_the_counselor_cancels(request):
        Session.objects.filter(id=session.id).update(status=SessionStatus.CANCELLED)
        return 200, {}, json.dumps(feishu_reserve())

    providers.add_callback(responses.POST, RESERVE_APPLY, callback=reserve_while_the_counselor_cancels)
    delete = providers.delete(f"{FEISHU}/open-apis/vc/v1/reserves/r123456789", json={"code": 0, "msg": "ok"})

    saga_advance(session_id=session.id)

    assert delete.call_count == 1
    assert Meeting.objects.get().status == MeetingStatus.CANCELLED
    assert Session.objects.get(id=session.id).status == SessionStatus.CANCELLED
    assert saga_of(session).state == SagaState.FAILED
    assert not saga_of(session).requires_manual_intervention


def test_after_a_crash_a_cancelled_session_gets_no_new_reservation_but_a_check(providers, booked, settings):
    apply = providers.post(RESERVE_APPLY, json=feishu_reserve())
    session = booked()
    stale = timezone.now() - timedelta(seconds=settings.SAGA_ATTEMPT_LEASE_SECONDS + 1)
    MeetingSaga.objects.filter(session=session).update(state=SagaState.CREATING, attempts=1, attempt_started_at=stale)
    Session.objects.filter(id=session.id).update(status=SessionStatus.CANCELLED)

    saga_advance(session_id=session.id)

    assert apply.call_count == 0
    saga = saga_of(session)
    assert saga.state == SagaState.FAILED
    assert saga.requires_manual_intervention and "left behind" in saga.manual_intervention_reason


def test_after_a_crash_a_cancelled_session_has_its_zoom_meeting_found_and_cancelled(providers, booked, settings):
    session = booked("zoom")
    providers.get(
        re.compile(rf"{re.escape(ZOOM_API)}/users/.+/meetings.*"),
        json={"meetings": [{"id": 5, "agenda": f"Booking session {session.id}", "join_url": "https://z/j/5"}]},
    )
    delete = providers.delete(f"{ZOOM_API}/meetings/5", status=204)
    stale = timezone.now() - timedelta(seconds=settings.SAGA_ATTEMPT_LEASE_SECONDS + 1)
    MeetingSaga.objects.filter(session=session).update(state=SagaState.CREATING, attempts=1, attempt_started_at=stale)
    Session.objects.filter(id=session.id).update(status=SessionStatus.CANCELLED)

    saga_advance(session_id=session.id)

    assert delete.call_count == 1
    assert Meeting.objects.get(provider_meeting_id="5").status == MeetingStatus.CANCELLED
    assert saga_of(session).state == SagaState.FAILED


def test_the_sweep_redrives_a_stuck_saga_once_per_period(booked, settings):
    settings.SAGA_STUCK_AFTER_SECONDS = 60
    stuck = booked()
    MeetingSaga.objects.filter(session=stuck).update(updated_at=timezone.now() - timedelta(minutes=5))

    first = sagas_redrive_due()
    second = sagas_redrive_due()

    assert first == [stuck.id]
    assert second == []
    later = sagas_redrive_due(now=timezone.now() + timedelta(minutes=2))
    assert stuck.id in later


def test_the_sweep_leaves_finished_and_recently_moving_sagas_alone(booked, settings):
    settings.SAGA_STUCK_AFTER_SECONDS = 60
    done = booked()
    MeetingSaga.objects.filter(session=done).update(
        state=SagaState.SUCCEEDED, updated_at=timezone.now() - timedelta(hours=1)
    )
    booked()  # just booked: not stuck

    assert sagas_redrive_due() == []


@pytest.mark.parametrize("attempt", [1, 2, 3, 8, 30])
def test_backoff_grows_with_jitter_and_stays_capped(settings, attempt):
    settings.SAGA_RETRY_BACKOFF_SECONDS = 2
    settings.SAGA_RETRY_BACKOFF_MAX_SECONDS = 60
    ceiling = min(60, 2 * 2 ** (attempt - 1))

    delays = {saga_backoff(attempt) for _ in range(50)}

    assert all(ceiling / 2 <= d <= ceiling for d in delays)
    assert len(delays) > 1  # jittered, not a fixed schedule
