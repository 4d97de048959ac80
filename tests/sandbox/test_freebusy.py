"""The sandbox answers Feishu's `freebusy/list` and Google's `freeBusy` from the events it holds and the busy
times set through `POST /_sandbox/busy`, fails and waits on command like any calendar call, and the app's
`mentor_calendar_busy` reads a mentor's calendar through it (a real server over HTTP, in this process)."""

import uuid
from datetime import UTC, datetime

import pytest
import requests

from accounts_app.models import CalendarProvider
from calendar_app.busy import CalendarBusy, mentor_calendar_busy
from calendar_app.providers import calendar_provider_clients_reset
from tests.factories import MentorFactory

FEISHU_FREEBUSY = "/open-apis/calendar/v4/freebusy/list?user_id_type=open_id"
GOOGLE_FREEBUSY = "/calendar/v3/freeBusy"
GOOGLE_AUTH = {"Authorization": "Bearer ya29.any-token"}


def at(hour: int, minute: int = 0) -> datetime:
    return datetime(2026, 12, 1, hour, minute, tzinfo=UTC)


def iso(moment: datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")


def feishu_auth(sandbox) -> dict:
    response = requests.post(
        f"{sandbox.url}/open-apis/auth/v3/tenant_access_token/internal",
        json={"app_id": "cli_sandbox", "app_secret": "secret"},
        timeout=5,
    )
    return {"Authorization": f"Bearer {response.json()['tenant_access_token']}"}


def make_busy(sandbox, provider: str, user: str, start: datetime, end: datetime) -> requests.Response:
    return requests.post(
        f"{sandbox.url}/_sandbox/busy",
        json={"provider": provider, "user": user, "start": iso(start), "end": iso(end)},
        timeout=5,
    )


DAY_START, DAY_END = at(0), at(23)


def feishu_freebusy(sandbox, headers: dict, open_id: str, start=DAY_START, end=DAY_END) -> requests.Response:
    return requests.post(
        f"{sandbox.url}{FEISHU_FREEBUSY}",
        json={"time_min": iso(start), "time_max": iso(end), "user_id": open_id},
        headers=headers,
        timeout=5,
    )


def google_freebusy(sandbox, *ids: str, start=DAY_START, end=DAY_END) -> requests.Response:
    return requests.post(
        f"{sandbox.url}{GOOGLE_FREEBUSY}",
        json={"timeMin": iso(start), "timeMax": iso(end), "timeZone": "UTC", "items": [{"id": i} for i in ids]},
        headers=GOOGLE_AUTH,
        timeout=5,
    )


def feishu_spans(response: requests.Response) -> list[tuple[datetime, datetime]]:
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["code"] == 0
    return [
        (datetime.fromisoformat(entry["start_time"]), datetime.fromisoformat(entry["end_time"]))
        for entry in body["data"]["freebusy_list"]
    ]


def test_busy_times_set_through_the_control_api_are_that_persons_only_until_reset(sandbox):
    # given
    created = make_busy(sandbox, "feishu", "ou_mentor", at(10), at(11))
    headers = feishu_auth(sandbox)

    # when
    mentors = feishu_freebusy(sandbox, headers, "ou_mentor")
    others = feishu_freebusy(sandbox, headers, "ou_someone_else")
    listed = requests.get(f"{sandbox.url}/_sandbox/busy", timeout=5).json()
    requests.post(f"{sandbox.url}/_sandbox/reset", timeout=5)
    after_reset = feishu_freebusy(sandbox, headers, "ou_mentor")

    # then
    assert created.status_code == 201
    assert feishu_spans(mentors) == [(at(10), at(11))]
    assert feishu_spans(others) == []
    assert listed == {"busy": [{"provider": "feishu", "user": "ou_mentor", "start": iso(at(10)), "end": iso(at(11))}]}
    assert feishu_spans(after_reset) == []


@pytest.mark.parametrize(
    "body, field",
    [
        (
            {"provider": "zoom", "user": "ou_mentor", "start": "2026-12-01T10:00:00Z", "end": "2026-12-01T11:00:00Z"},
            "provider",
        ),
        ({"provider": "feishu", "user": "", "start": "2026-12-01T10:00:00Z", "end": "2026-12-01T11:00:00Z"}, "user"),
        (
            {"provider": "feishu", "user": "ou_mentor", "start": "2026-12-01T10:00:00", "end": "2026-12-01T11:00:00Z"},
            "start",
        ),
        (
            {
                "provider": "google",
                "user": "m@example.com",
                "start": "2026-12-01T11:00:00Z",
                "end": "2026-12-01T10:00:00Z",
            },
            "end",
        ),
    ],
)
def test_a_busy_time_that_makes_no_sense_is_refused_and_adds_nothing(sandbox, body, field):
    # when
    response = requests.post(f"{sandbox.url}/_sandbox/busy", json=body, timeout=5)

    # then
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["code"] == "VALIDATION_ERROR"
    assert field in error["details"]
    assert requests.get(f"{sandbox.url}/_sandbox/busy", timeout=5).json() == {"busy": []}


def test_feishu_counts_the_events_a_person_is_invited_to_until_they_are_deleted(sandbox):
    # given: an event on the app's calendar with the mentor invited, and the mentor's own busy time
    headers = feishu_auth(sandbox)
    events_url = f"{sandbox.url}/open-apis/calendar/v4/calendars/cal_app/events"
    event = requests.post(
        events_url,
        json={
            "summary": "Essay review",
            "start_time": {"timestamp": str(int(at(14).timestamp()))},
            "end_time": {"timestamp": str(int(at(15).timestamp()))},
            "vchat": {"vc_type": "third_party", "meeting_url": "https://zoom.us/j/1"},
        },
        headers=headers,
        timeout=5,
    ).json()["data"]["event"]
    requests.post(
        f"{events_url}/{event['event_id']}/attendees?user_id_type=open_id",
        json={"attendees": [{"type": "user", "user_id": "ou_mentor"}]},
        headers=headers,
        timeout=5,
    )
    make_busy(sandbox, "feishu", "ou_mentor", at(9), at(10))

    # when
    before = feishu_freebusy(sandbox, headers, "ou_mentor")
    requests.delete(f"{events_url}/{event['event_id']}", headers=headers, timeout=5)
    after = feishu_freebusy(sandbox, headers, "ou_mentor")

    # then
    assert feishu_spans(before) == [(at(9), at(10)), (at(14), at(15))]
    assert feishu_spans(after) == [(at(9), at(10))]


def test_feishu_refuses_a_window_it_cannot_read_in_its_own_words(sandbox):
    # when
    response = requests.post(
        f"{sandbox.url}{FEISHU_FREEBUSY}",
        json={"time_min": "tomorrow", "time_max": iso(at(12)), "user_id": "ou_mentor"},
        headers=feishu_auth(sandbox),
        timeout=5,
    )

    # then
    assert response.status_code == 400
    assert response.json()["code"] == 190002


def test_google_merges_and_cuts_busy_times_and_answers_errors_for_a_calendar_it_cannot_show(sandbox):
    # given: an event the mentor is invited to 10-11, their own busy time 10:30-12 and one across the window's end
    requests.post(
        f"{sandbox.url}/calendar/v3/calendars/primary/events",
        json={
            "summary": "Essay review",
            "start": {"dateTime": iso(at(10)), "timeZone": "UTC"},
            "end": {"dateTime": iso(at(11)), "timeZone": "UTC"},
            "attendees": [{"email": "mentor@example.com"}],
        },
        headers=GOOGLE_AUTH,
        timeout=5,
    )
    make_busy(sandbox, "google", "mentor@example.com", at(10, 30), at(12))
    make_busy(sandbox, "google", "mentor@example.com", at(17), at(19))

    # when
    response = google_freebusy(sandbox, "mentor@example.com", "no-such-calendar", start=at(8), end=at(18))

    # then
    assert response.status_code == 200
    calendars = response.json()["calendars"]
    assert calendars["mentor@example.com"]["busy"] == [
        {"start": iso(at(10)), "end": iso(at(12))},
        {"start": iso(at(17)), "end": iso(at(18))},
    ]
    assert calendars["no-such-calendar"]["errors"] == [{"domain": "global", "reason": "notFound"}]


def test_google_refuses_an_empty_window(sandbox):
    # when
    response = google_freebusy(sandbox, "mentor@example.com", start=at(12), end=at(12))

    # then
    assert response.status_code == 400
    assert response.json()["error"]["errors"][0]["reason"] == "timeRangeEmpty"


def test_free_busy_is_a_calendar_call_that_fails_on_command_for_its_provider_only(sandbox):
    # given: the next calendar call of Google fails
    requests.post(
        f"{sandbox.url}/_sandbox/config", json={"failNext": {"calendar": 1}, "failProvider": "google"}, timeout=5
    )

    # when
    feishu = feishu_freebusy(sandbox, feishu_auth(sandbox), "ou_mentor")
    google_failed = google_freebusy(sandbox, "mentor@example.com")
    google_then = google_freebusy(sandbox, "mentor@example.com")

    # then
    assert feishu.status_code == 200
    assert google_failed.status_code == 500
    assert google_then.status_code == 200
    assert (
        requests.get(f"{sandbox.url}/_sandbox/injected", timeout=5).json()["byProvider"]["google"]["failed"]["calendar"]
        == 1
    )


# ---------------------------------------------------------------------------------------------------------
# The app reading a mentor's calendar through the sandbox


@pytest.fixture
def app_at_sandbox(sandbox, settings):
    settings.FEISHU_BASE_URL = sandbox.url
    settings.FEISHU_APP_ID = "cli_sandbox"
    settings.FEISHU_APP_SECRET = "secret"
    settings.GOOGLE_CALENDAR_BASE_URL = f"{sandbox.url}/calendar/v3"
    settings.GOOGLE_CALENDAR_ACCESS_TOKEN = "ya29.sandbox"
    settings.GOOGLE_SERVICE_ACCOUNT_FILE = ""
    settings.CALENDAR_FREEBUSY_TIMEOUT_SECONDS = 0.5
    settings.CACHES = {"default": {**settings.CACHES["default"], "KEY_PREFIX": f"test-busy-{uuid.uuid4().hex}"}}
    calendar_provider_clients_reset()
    yield sandbox
    calendar_provider_clients_reset()


@pytest.mark.django_db
def test_a_mentor_busy_in_their_feishu_calendar_is_busy_and_a_slow_calendar_is_skipped(app_at_sandbox):
    # given
    sandbox = app_at_sandbox
    mentor = MentorFactory()
    mentor.profile.calendar_provider = CalendarProvider.FEISHU
    mentor.profile.save()
    open_id = mentor.profile.feishu_open_id
    make_busy(sandbox, "feishu", open_id, at(10), at(11))

    # when: once as usual, then (another window, so not from the cache) with Feishu slower than the timeout
    answered = mentor_calendar_busy(mentor=mentor, start=at(8), end=at(18))
    requests.post(f"{sandbox.url}/_sandbox/config", json={"latencyMs": 1500}, timeout=5)
    slow = mentor_calendar_busy(mentor=mentor, start=at(19), end=at(22))

    # then
    assert answered == CalendarBusy(busy=[(at(10), at(11))], checked=[f"feishu:{open_id}"], skipped=[])
    assert slow == CalendarBusy(busy=[], checked=[], skipped=[f"feishu:{open_id}"])


@pytest.mark.django_db
def test_a_mentor_busy_in_their_google_calendar_is_busy(app_at_sandbox):
    # given
    sandbox = app_at_sandbox
    mentor = MentorFactory()
    mentor.profile.calendar_provider = CalendarProvider.GOOGLE
    mentor.profile.save()
    make_busy(sandbox, "google", mentor.email, at(9), at(9, 45))

    # when
    answer = mentor_calendar_busy(mentor=mentor, start=at(8), end=at(18))

    # then
    assert answer == CalendarBusy(busy=[(at(9), at(9, 45))], checked=[f"google:{mentor.email}"], skipped=[])
