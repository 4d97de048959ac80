"""Unknown is not failed: a create whose answer was lost (a timeout, a reset, a gateway's 502/503/504) may have
been carried out, so the next attempt and any compensation look for it first (DESIGN.md "One way to call the
outside world"). The providers answer through `responses` at the HTTP boundary; the clients are the real ones."""

import json
import re
import threading
import time
from datetime import timedelta
from urllib.parse import parse_qs, urlsplit

import pytest
import requests
import responses
from django.db import connection
from django.utils import timezone

from calendar_app.models import CalendarSlot, SlotStatus
from holds_app.models import Hold, HoldStatus
from meetings_app.models import Meeting, MeetingStatus
from sessions_app.models import MeetingSaga, SagaState, Session, SessionStatus
from sessions_app.saga import saga_advance, sagas_redrive_due
from tests.saga.conftest import FEISHU, RESERVE_APPLY, ZOOM_API, feishu_reserve, saga_of

pytestmark = pytest.mark.usefixtures("providers")

ZOOM_LIST = re.compile(rf"{re.escape(ZOOM_API)}/users/[^/]+/meetings\?.*")
FEISHU_PRIMARY = f"{FEISHU}/open-apis/calendar/v4/calendars/primary"
FEISHU_CALENDAR = "feishu.cn_app@group.calendar.feishu.cn"
FEISHU_EVENTS = re.compile(rf"{re.escape(FEISHU)}/open-apis/calendar/v4/calendars/[^/]+/events\?.*")


def zoom_meeting(session: Session, meeting_id: int, *, minutes_from_now: int = 60 * 24) -> dict:
    start = timezone.now() + timedelta(minutes=minutes_from_now)
    return {
        "id": meeting_id,
        "topic": session.topic,
        "agenda": f"Booking session {session.id}",
        "start_time": start.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "duration": 60,
        "join_url": f"https://zoom.test/j/{meeting_id}",
    }


def run_until_settled(session: Session, *, rounds: int = 10) -> None:
    """Drive the saga as its courier would, without the waits."""
    for _ in range(rounds):
        saga_advance(session_id=session.id)
        saga = saga_of(session)
        if saga.state in (SagaState.SUCCEEDED, SagaState.FAILED):
            return
        MeetingSaga.objects.filter(session_id=session.id).update(not_before=None)
    pytest.fail(f"the saga did not settle: {saga_of(session).state}")


def test_a_zoom_create_that_timed_out_is_found_and_adopted_not_made_twice(providers, booked):
    # given: the first create reaches Zoom, which makes meeting 501, but the answer never comes back
    session = booked("zoom")
    host = session.mentor.profile.zoom_user_id
    create = providers.post(f"{ZOOM_API}/users/{host}/meetings", body=requests.exceptions.ReadTimeout())
    listing = providers.get(ZOOM_LIST, json={"next_page_token": "", "meetings": [zoom_meeting(session, 501)]})

    # when
    first = saga_advance(session_id=session.id)

    # then: not failed, only unknown
    saga = saga_of(session)
    assert first.retry_in is not None
    assert saga.state == SagaState.RETRY_WAIT and saga.outcome_unknown

    # when the retry comes (its backoff over)
    assert saga_advance(session_id=session.id).retry_in > 0, "not before its backoff"
    MeetingSaga.objects.filter(session_id=session.id).update(not_before=timezone.now())
    saga_advance(session_id=session.id)

    # then: the meeting the lost call made is adopted; no second create was sent
    session.refresh_from_db()
    assert session.status == SessionStatus.SCHEDULED
    assert session.meeting.provider_meeting_id == "501"
    assert create.call_count == 1
    assert listing.call_count == 1
    assert parse_qs(urlsplit(listing.calls[0].request.url).query)["type"] == ["scheduled"]
    assert not saga_of(session).outcome_unknown
    assert Meeting.objects.filter(reference=str(session.id)).count() == 1


def test_zoom_recovery_finds_a_meeting_whose_start_has_already_passed(providers, booked):
    # given: the session's start passed while its create's answer was lost (a long outage, a late re-drive)
    session = booked("zoom")
    Session.objects.filter(id=session.id).update(scheduled_at=timezone.now() - timedelta(minutes=10))
    MeetingSaga.objects.filter(session_id=session.id).update(
        state=SagaState.RETRY_WAIT, attempts=1, outcome_unknown=True
    )

    def list_meetings(request):
        # Zoom's `upcoming` leaves out a meeting whose start has passed; `scheduled` lists it.
        kind = parse_qs(urlsplit(request.url).query)["type"][0]
        listed = [zoom_meeting(session, 777, minutes_from_now=-10)] if kind == "scheduled" else []
        return 200, {}, json.dumps({"next_page_token": "", "meetings": listed})

    providers.add_callback(responses.GET, ZOOM_LIST, callback=list_meetings)
    create = providers.post(re.compile(rf"{re.escape(ZOOM_API)}/users/[^/]+/meetings$"), status=201, json={})

    # when
    saga_advance(session_id=session.id)

    # then
    session.refresh_from_db()
    assert session.meeting is not None and session.meeting.provider_meeting_id == "777"
    assert create.call_count == 0


def test_a_gateway_504_after_zoom_made_the_meeting_leaves_exactly_one_meeting(providers, booked):
    # given: a gateway answers 504 (an HTML page) although Zoom carried the create out
    session = booked("zoom")
    host = session.mentor.profile.zoom_user_id
    providers.post(f"{ZOOM_API}/users/{host}/meetings", status=504, body="<html>Gateway Time-out</html>")
    providers.get(ZOOM_LIST, json={"next_page_token": "", "meetings": [zoom_meeting(session, 42)]})

    # when
    run_until_settled(session)

    # then
    session.refresh_from_db()
    assert session.status == SessionStatus.SCHEDULED and session.meeting.provider_meeting_id == "42"
    assert not saga_of(session).requires_manual_intervention


def test_compensation_after_a_lost_zoom_answer_cancels_what_the_lost_call_made(providers, booked, settings):
    # given: every create times out (each was carried out), until the saga runs out of attempts
    settings.SAGA_MAX_ATTEMPTS = 2
    session = booked("zoom")
    host = session.mentor.profile.zoom_user_id
    providers.post(f"{ZOOM_API}/users/{host}/meetings", body=requests.exceptions.ReadTimeout())
    # The listing itself fails while the saga still tries, and works once it compensates.
    listing = iter([requests.exceptions.ConnectTimeout(), requests.exceptions.ConnectTimeout()])

    def list_meetings(request):
        failure = next(listing, None)
        if failure is not None:
            raise failure
        return 200, {}, json.dumps({"next_page_token": "", "meetings": [zoom_meeting(session, 9)]})

    providers.add_callback(responses.GET, ZOOM_LIST, callback=list_meetings)
    delete = providers.delete(f"{ZOOM_API}/meetings/9", status=204)

    # when
    run_until_settled(session)

    # then: failed and given back, and the meeting the lost call made is cancelled, not left behind
    session.refresh_from_db()
    assert session.status == SessionStatus.MEETING_FAILED
    assert delete.call_count == 1
    assert Hold.objects.get(session_id=session.id).status == HoldStatus.RELEASED
    assert set(CalendarSlot.objects.filter(id__in=session.slot_ids).values_list("status", flat=True)) == {
        SlotStatus.CANCELLED
    }
    assert Meeting.objects.get(provider_meeting_id="9").status == MeetingStatus.CANCELLED
    assert not saga_of(session).requires_manual_intervention


def test_a_feishu_reservation_whose_answer_was_lost_is_flagged_with_owner_time_and_topic(providers, booked):
    # given
    session = booked()
    apply = iter([requests.exceptions.ReadTimeout(), None])

    def reserve(request):
        failure = next(apply)
        if failure is not None:
            raise failure
        return 200, {}, json.dumps(feishu_reserve("555000111"))

    providers.add_callback(responses.POST, RESERVE_APPLY, callback=reserve)

    # when
    run_until_settled(session)

    # then: scheduled with the second reservation, and a person is asked to look for the first
    session.refresh_from_db()
    saga = saga_of(session)
    assert session.status == SessionStatus.SCHEDULED
    assert saga.requires_manual_intervention
    assert session.mentor.profile.feishu_open_id in saga.manual_intervention_reason
    assert repr(session.topic) in saga.manual_intervention_reason
    assert "end time" in saga.manual_intervention_reason


def test_a_feishu_calendar_meeting_is_asked_again_with_the_same_key_and_nobody_is_flagged(providers, booked, settings):
    # given: Feishu's calendar way; the first create is carried out but its answer is lost
    settings.FEISHU_MEETING_VIA = "calendar"
    from meetings_app.providers import meeting_provider_clients_reset

    meeting_provider_clients_reset()
    providers.post(
        FEISHU_PRIMARY, json={"code": 0, "data": {"calendars": [{"calendar": {"calendar_id": FEISHU_CALENDAR}}]}}
    )
    keys: list[str] = []
    made: dict[str, str] = {}

    def create_event(request):
        key = parse_qs(urlsplit(request.url).query)["idempotency_key"][0]
        keys.append(key)
        first = key not in made
        made.setdefault(key, f"evt-{len(made) + 1}")
        event = {"event_id": made[key], "vchat": {"vc_type": "vc", "meeting_url": "https://vc.feishu.cn/j/700100200"}}
        if first:
            raise requests.exceptions.ReadTimeout()  # carried out, answer lost
        return 200, {}, json.dumps({"code": 0, "msg": "success", "data": {"event": event}})

    providers.add_callback(responses.POST, FEISHU_EVENTS, callback=create_event)
    session = booked()

    # when
    run_until_settled(session)

    # then: one event, the same key both times, the session scheduled with its link, nobody asked to look
    session.refresh_from_db()
    assert session.status == SessionStatus.SCHEDULED
    assert session.meeting.join_url == "https://vc.feishu.cn/j/700100200"
    assert session.meeting.meeting_no == "700100200"
    assert len(keys) == 2 and keys[0] == keys[1]
    assert len(made) == 1
    assert not saga_of(session).requires_manual_intervention


def test_a_step_whose_write_the_database_refuses_ends_failed_and_compensated_not_pending(providers, booked):
    # given: Zoom answers a meeting whose id is longer than our column takes (the database refuses the row),
    # every time, while the meeting really exists at Zoom
    session = booked("zoom")
    host = session.mentor.profile.zoom_user_id
    long_id = int("9" * 300)
    providers.post(
        f"{ZOOM_API}/users/{host}/meetings", status=201, json={"id": long_id, "join_url": "https://zoom.test/j/x"}
    )
    providers.get(ZOOM_LIST, json={"next_page_token": "", "meetings": [zoom_meeting(session, long_id)]})

    # when: driven as the courier and the sweep would, without waiting
    steps = 0
    while saga_of(session).state not in (SagaState.SUCCEEDED, SagaState.FAILED) and steps < 10:
        saga_advance(session_id=session.id)
        MeetingSaga.objects.filter(session_id=session.id).update(not_before=None)
        steps += 1

    # then: not pending for ever: failed, the unit and the slots given back, and a person asked to look
    session.refresh_from_db()
    saga = saga_of(session)
    assert saga.state == SagaState.FAILED
    assert session.status == SessionStatus.MEETING_FAILED
    assert Hold.objects.get(session_id=session.id).status == HoldStatus.RELEASED
    assert saga.unexpected_errors >= 1
    assert saga.requires_manual_intervention


def test_a_row_waiting_longer_than_a_countdown_is_woken_by_the_sweep(providers, booked, settings):
    # given: Zoom asks us to wait 200 s: longer than any Celery countdown we allow
    settings.PROVIDER_WORK_MAX_COUNTDOWN_SECONDS = 120
    session = booked("zoom")
    host = session.mentor.profile.zoom_user_id
    providers.post(f"{ZOOM_API}/users/{host}/meetings", status=429, headers={"Retry-After": "200"}, json={})

    # when
    step = saga_advance(session_id=session.id)

    # then: no countdown; the row holds the wait, and the sweep leaves it alone until then
    assert step.retry_in is None
    saga = saga_of(session)
    assert saga.state == SagaState.RETRY_WAIT
    assert saga.not_before > timezone.now() + timedelta(seconds=190)
    assert session.id not in sagas_redrive_due(now=timezone.now() + timedelta(seconds=150))
    assert session.id in sagas_redrive_due(now=timezone.now() + timedelta(seconds=210))


@pytest.mark.race
@pytest.mark.django_db(transaction=True)
def test_a_stalled_token_endpoint_holds_up_only_its_callers_and_no_attempt_is_taken_as_dead(
    providers, booked, settings
):
    # given: Zoom's token endpoint stalls for longer than the attempt's lease; Feishu's answers at once
    settings.SAGA_ATTEMPT_LEASE_SECONDS = 1.0
    settings.FEISHU_MEETING_VIA = "reservation"
    zoom_sessions = [booked("zoom") for _ in range(3)]
    feishu_sessions = [booked("feishu") for _ in range(3)]
    providers.remove(responses.POST, "https://zoom.test/oauth/token")
    release = threading.Event()

    def slow_token(request):
        release.wait(10)
        return 200, {}, json.dumps({"access_token": "z-slow", "token_type": "bearer", "expires_in": 3600})

    providers.add_callback(responses.POST, "https://zoom.test/oauth/token", callback=slow_token)
    for number, session in enumerate(zoom_sessions, start=1001):
        host = session.mentor.profile.zoom_user_id
        providers.post(f"{ZOOM_API}/users/{host}/meetings", status=201, json=zoom_meeting(session, number))
    providers.post(RESERVE_APPLY, json=feishu_reserve("111222333"))

    def drive(session):
        try:
            saga_advance(session_id=session.id)
        finally:
            connection.close()

    zoom_threads = [threading.Thread(target=drive, args=(s,)) for s in zoom_sessions]
    for thread in zoom_threads:
        thread.start()

    # when: the Zoom callers wait on the token, past the lease; meanwhile the Feishu sessions are provisioned
    for session in feishu_sessions:
        saga_advance(session_id=session.id)
    time.sleep(settings.SAGA_ATTEMPT_LEASE_SECONDS + 0.5)
    feishu_while_zoom_waits = [Session.objects.get(id=s.id).status for s in feishu_sessions]
    zoom_while_waiting = list(MeetingSaga.objects.filter(session__in=zoom_sessions).values_list("state", "attempts"))
    release.set()
    for thread in zoom_threads:
        thread.join(15)

    # then: only the Zoom callers waited; the Feishu sessions were scheduled during Zoom's stall
    assert feishu_while_zoom_waits == [SessionStatus.SCHEDULED] * 3
    # No attempt was open while the token stalled, so no lease could run out and no saga looked dead
    assert zoom_while_waiting == [(SagaState.PENDING, 0)] * 3
    for session in zoom_sessions:
        assert Session.objects.get(id=session.id).status == SessionStatus.SCHEDULED
        assert saga_of(session).attempts == 1
        assert Meeting.objects.filter(reference=str(session.id)).count() == 1


def test_a_lost_zoom_create_that_lands_after_the_lookup_is_cancelled_by_the_leftover_check(providers, booked, settings):
    # given: the first create's answer is lost and the meeting it asked for lands only after the saga looked
    settings.SAGA_LEFTOVER_SETTLE_SECONDS = 30
    session = booked("zoom")
    host = session.mentor.profile.zoom_user_id
    creates = iter([requests.exceptions.ReadTimeout(), zoom_meeting(session, 602)])

    def create(request):
        answer = next(creates)
        if isinstance(answer, Exception):
            raise answer
        return 201, {}, json.dumps(answer)

    providers.add_callback(responses.POST, f"{ZOOM_API}/users/{host}/meetings", callback=create)
    landed: list[dict] = []
    providers.add_callback(
        responses.GET,
        ZOOM_LIST,
        callback=lambda request: (200, {}, json.dumps({"next_page_token": "", "meetings": list(landed)})),
    )
    delete = providers.delete(f"{ZOOM_API}/meetings/601", status=204)

    # when: the retry finds nothing and makes meeting 602; the session is scheduled with it
    assert saga_advance(session_id=session.id).retry_in is not None  # the answer was lost: retry, not fail
    MeetingSaga.objects.filter(session_id=session.id).update(not_before=None)
    saga_advance(session_id=session.id)

    # then: scheduled at once, and the saga keeps looking for the lost call's meeting
    session.refresh_from_db()
    saga = saga_of(session)
    assert session.status == SessionStatus.SCHEDULED
    assert session.meeting.provider_meeting_id == "602"
    assert saga.state == SagaState.CHECKING_LEFTOVERS
    assert saga.not_before > timezone.now() + timedelta(seconds=20)

    # when: the lost call's meeting 601 lands, and the settle time has passed
    landed.extend([zoom_meeting(session, 601), zoom_meeting(session, 602)])
    assert saga_advance(session_id=session.id).retry_in > 0  # not before its time
    MeetingSaga.objects.filter(session_id=session.id).update(not_before=timezone.now())
    saga_advance(session_id=session.id)

    # then: the extra meeting is cancelled, the session's own is kept, and nobody is asked to look
    saga = saga_of(session)
    assert saga.state == SagaState.SUCCEEDED
    assert delete.call_count == 1
    assert Meeting.objects.get(provider_meeting_id="601").status == MeetingStatus.CANCELLED
    assert Meeting.objects.get(provider_meeting_id="602").status == MeetingStatus.ACTIVE
    assert not saga.requires_manual_intervention
