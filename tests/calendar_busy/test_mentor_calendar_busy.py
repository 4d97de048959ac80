"""The mentor's own calendar counts: `mentor_calendar_busy` reads the calendar the mentor's profile names, through
the provider clients (`responses` plays Feishu and Google), skips a calendar that does not answer instead of
failing, keeps answers for a short while, leaves out the events we made ourselves and never calls a paused
provider."""

import uuid
from datetime import UTC, datetime

import pytest
import requests
import responses

from accounts_app.models import CalendarProvider
from calendar_app.busy import CalendarBusy, mentor_calendar_busy
from calendar_app.models import CalendarEvent, CalendarEventStatus
from meetings_app.models import ProviderPause
from tests.calendar_busy.conftest import FEISHU, GOOGLE
from tests.factories import MentorFactory

pytestmark = pytest.mark.django_db

FEISHU_TOKEN_URL = f"{FEISHU}/open-apis/auth/v3/tenant_access_token/internal"
FEISHU_FREEBUSY_URL = f"{FEISHU}/open-apis/calendar/v4/freebusy/list"
GOOGLE_FREEBUSY_URL = f"{GOOGLE}/freeBusy"


def at(hour: int, minute: int = 0) -> datetime:
    return datetime(2026, 12, 1, hour, minute, tzinfo=UTC)


START, END = at(8), at(18)


def feishu_mentor(open_id: str | None = None):
    mentor = MentorFactory()
    mentor.profile.calendar_provider = CalendarProvider.FEISHU
    mentor.profile.feishu_open_id = open_id if open_id is not None else f"ou_{uuid.uuid4().hex[:12]}"
    mentor.profile.save()
    return mentor


def google_mentor(email: str | None = None):
    mentor = MentorFactory()
    mentor.email = email if email is not None else f"mentor-{uuid.uuid4().hex[:8]}@example.com"
    mentor.save()
    mentor.profile.calendar_provider = CalendarProvider.GOOGLE
    mentor.profile.save()
    return mentor


def feishu_answers(provider_api, *busy: tuple[datetime, datetime]) -> None:
    provider_api.add(
        responses.POST,
        FEISHU_TOKEN_URL,
        json={"code": 0, "msg": "ok", "tenant_access_token": "t-token", "expire": 7200},
    )
    provider_api.add(
        responses.POST,
        FEISHU_FREEBUSY_URL,
        json={
            "code": 0,
            "msg": "success",
            "data": {"freebusy_list": [{"start_time": s.isoformat(), "end_time": e.isoformat()} for s, e in busy]},
        },
    )


def google_answers(provider_api, email: str, *busy: tuple[datetime, datetime]) -> None:
    provider_api.add(
        responses.POST,
        GOOGLE_FREEBUSY_URL,
        json={"calendars": {email: {"busy": [{"start": s.isoformat(), "end": e.isoformat()} for s, e in busy]}}},
    )


def freebusy_calls(provider_api) -> int:
    return sum(
        1 for call in provider_api.calls if call.request.url.split("?")[0] in (FEISHU_FREEBUSY_URL, GOOGLE_FREEBUSY_URL)
    )


def our_event(mentor, start: datetime, end: datetime, *, provider: str, status=CalendarEventStatus.ACTIVE):
    return CalendarEvent.objects.create(
        session_id=uuid.uuid4(),
        user=mentor,
        provider=provider,
        calendar_id="app-calendar",
        event_id=uuid.uuid4().hex,
        status=status,
        starts_at=start,
        ends_at=end,
    )


def test_a_feishu_mentor_is_busy_when_their_calendar_says_so(provider_api):
    # given
    mentor = feishu_mentor()
    feishu_answers(provider_api, (at(10), at(11)), (at(17), at(19)))

    # when
    answer = mentor_calendar_busy(mentor=mentor, start=START, end=END)

    # then: cut to the window asked
    open_id = mentor.profile.feishu_open_id
    assert answer == CalendarBusy(busy=[(at(10), at(11)), (at(17), at(18))], checked=[f"feishu:{open_id}"], skipped=[])
    call = next(call for call in provider_api.calls if call.request.url.startswith(FEISHU_FREEBUSY_URL))
    assert call.request.req_kwargs["timeout"] == (2.0, 2.0)


def test_a_google_mentor_is_busy_when_their_calendar_says_so(provider_api):
    # given
    mentor = google_mentor()
    google_answers(provider_api, mentor.email, (at(9), at(9, 30)))

    # when
    answer = mentor_calendar_busy(mentor=mentor, start=START, end=END)

    # then
    assert answer == CalendarBusy(busy=[(at(9), at(9, 30))], checked=[f"google:{mentor.email}"], skipped=[])


def test_a_google_calendar_we_may_not_read_is_skipped(provider_api):
    # given
    mentor = google_mentor()
    provider_api.add(
        responses.POST,
        GOOGLE_FREEBUSY_URL,
        json={"calendars": {mentor.email: {"errors": [{"domain": "global", "reason": "notFound"}], "busy": []}}},
    )

    # when
    answer = mentor_calendar_busy(mentor=mentor, start=START, end=END)

    # then
    assert answer == CalendarBusy(busy=[], checked=[], skipped=[f"google:{mentor.email}"])


def test_a_feishu_error_code_skips_the_calendar(provider_api):
    # given
    mentor = feishu_mentor()
    provider_api.add(
        responses.POST,
        FEISHU_TOKEN_URL,
        json={"code": 0, "msg": "ok", "tenant_access_token": "t-token", "expire": 7200},
    )
    provider_api.add(responses.POST, FEISHU_FREEBUSY_URL, json={"code": 190004, "msg": "no calendar access"})

    # when
    answer = mentor_calendar_busy(mentor=mentor, start=START, end=END)

    # then
    assert answer == CalendarBusy(busy=[], checked=[], skipped=[f"feishu:{mentor.profile.feishu_open_id}"])


def test_a_calendar_that_times_out_is_skipped_and_asked_again_next_time(provider_api):
    # given: the first request gets no answer in time, the next one does
    mentor = google_mentor()
    provider_api.add(responses.POST, GOOGLE_FREEBUSY_URL, body=requests.exceptions.ReadTimeout("slow"))
    google_answers(provider_api, mentor.email, (at(12), at(13)))

    # when
    first = mentor_calendar_busy(mentor=mentor, start=START, end=END)
    second = mentor_calendar_busy(mentor=mentor, start=START, end=END)

    # then: reported, not fatal, and the failure was not cached
    assert first == CalendarBusy(busy=[], checked=[], skipped=[f"google:{mentor.email}"])
    assert second.busy == [(at(12), at(13))]
    assert second.checked == [f"google:{mentor.email}"]
    assert freebusy_calls(provider_api) == 2


def test_a_second_look_at_the_same_times_asks_the_provider_nothing(provider_api):
    # given
    mentor = feishu_mentor()
    feishu_answers(provider_api, (at(10), at(11)))
    first = mentor_calendar_busy(mentor=mentor, start=START, end=END)

    # when: the same window, and one a few minutes later inside the same hours
    again = mentor_calendar_busy(mentor=mentor, start=START, end=END)
    nearly = mentor_calendar_busy(mentor=mentor, start=at(8, 7), end=at(17, 52))

    # then
    assert freebusy_calls(provider_api) == 1
    assert again == first
    assert nearly.busy == [(at(10), at(11))]
    assert nearly.checked == first.checked


def test_another_mentor_or_another_window_is_asked_for_again(provider_api):
    # given
    mentor, other = google_mentor(), google_mentor()
    google_answers(provider_api, mentor.email, (at(10), at(11)))
    google_answers(provider_api, other.email, (at(14), at(15)))
    google_answers(provider_api, mentor.email, (at(20), at(21)))
    mentor_calendar_busy(mentor=mentor, start=START, end=END)

    # when
    others = mentor_calendar_busy(mentor=other, start=START, end=END)
    evening = mentor_calendar_busy(mentor=mentor, start=at(19), end=at(22))

    # then
    assert others.busy == [(at(14), at(15))]
    assert evening.busy == [(at(20), at(21))]
    assert freebusy_calls(provider_api) == 3


def test_the_events_we_made_for_our_sessions_are_not_counted_twice(provider_api):
    # given: our live session event 10-11, one being made 15-16, one deleted 13-14, and the mentor's own 12-13
    mentor = feishu_mentor()
    our_event(mentor, at(10), at(11), provider="feishu")
    our_event(mentor, at(15), at(16), provider="feishu", status=CalendarEventStatus.CREATING)
    our_event(mentor, at(13), at(14), provider="feishu", status=CalendarEventStatus.DELETED)
    feishu_answers(provider_api, (at(10), at(11)), (at(12), at(13)), (at(13), at(14)), (at(15), at(16)))

    # when
    answer = mentor_calendar_busy(mentor=mentor, start=START, end=END)

    # then: only the times that are not ours (a deleted event of ours no longer explains a busy time)
    assert answer.busy == [(at(12), at(13)), (at(13), at(14))]


def test_a_busy_time_merely_overlapping_one_of_our_events_still_counts(provider_api):
    # given: Google merged our 10-11 with the mentor's own 11-12
    mentor = google_mentor()
    our_event(mentor, at(10), at(11), provider="google")
    google_answers(provider_api, mentor.email, (at(10), at(12)))

    # when
    answer = mentor_calendar_busy(mentor=mentor, start=START, end=END)

    # then
    assert answer.busy == [(at(10), at(12))]


def test_a_paused_provider_is_skipped_without_a_call(provider_api):
    # given: an operator paused Feishu (its calendar included)
    ProviderPause.objects.update_or_create(provider="feishu", defaults={"paused": True})
    feishu, google = feishu_mentor(), google_mentor()
    google_answers(provider_api, google.email, (at(10), at(11)))

    # when
    paused = mentor_calendar_busy(mentor=feishu, start=START, end=END)
    running = mentor_calendar_busy(mentor=google, start=START, end=END)

    # then
    assert paused == CalendarBusy(busy=[], checked=[], skipped=[f"feishu:{feishu.profile.feishu_open_id}"])
    assert running.checked == [f"google:{google.email}"]
    assert not any(call.request.url.startswith(FEISHU) for call in provider_api.calls)


def test_a_mentor_without_a_calendar_we_can_read_has_nothing_checked(provider_api):
    # given: Feishu without an open_id, Google without an email
    mentors = [feishu_mentor(open_id=""), google_mentor(email="")]

    # when
    answers = [mentor_calendar_busy(mentor=mentor, start=START, end=END) for mentor in mentors]

    # then
    assert answers == [CalendarBusy(busy=[], checked=[], skipped=[])] * 2
    assert len(provider_api.calls) == 0


def test_with_redis_down_the_calendar_is_just_asked(provider_api, settings):
    # given: nothing listens where the cache is
    settings.CACHES = {"default": {**settings.CACHES["default"], "LOCATION": "redis://127.0.0.1:1/0"}}
    mentor = google_mentor()
    google_answers(provider_api, mentor.email, (at(10), at(11)))
    google_answers(provider_api, mentor.email, (at(10), at(11)))

    # when
    answers = [mentor_calendar_busy(mentor=mentor, start=START, end=END) for _ in range(2)]

    # then
    assert [answer.busy for answer in answers] == [[(at(10), at(11))]] * 2
    assert freebusy_calls(provider_api) == 2
