"""Free/busy of a person's own calendar through the Feishu and Google calendar clients, against the providers'
HTTP APIs as `responses` plays them: what is asked, how the answer is read, and how each failure is classified
(the caller skips the calendar for any of them)."""

import json
from datetime import UTC, datetime

import pytest
import requests
import responses

from booking_project.providers.outcomes import OutcomeUnknownError, PermanentProviderError, TransientProviderError
from calendar_app.providers import calendar_provider_client, calendar_provider_clients_reset

FEISHU = "https://feishu.test"
FEISHU_TOKEN_URL = f"{FEISHU}/open-apis/auth/v3/tenant_access_token/internal"
FEISHU_FREEBUSY_URL = f"{FEISHU}/open-apis/calendar/v4/freebusy/list"
GOOGLE = "https://google.test/calendar/v3"
GOOGLE_FREEBUSY_URL = f"{GOOGLE}/freeBusy"

START = datetime(2026, 12, 1, 0, 0, tzinfo=UTC)
END = datetime(2026, 12, 2, 0, 0, tzinfo=UTC)


@pytest.fixture
def feishu(settings):
    settings.FEISHU_BASE_URL = FEISHU
    settings.FEISHU_APP_ID = "cli_a1b2"
    settings.FEISHU_APP_SECRET = "feishu-app-secret"
    settings.PROVIDER_TIMEOUT_SECONDS = 10.0
    calendar_provider_clients_reset()
    yield calendar_provider_client("feishu")
    calendar_provider_clients_reset()


@pytest.fixture
def google(settings):
    settings.GOOGLE_CALENDAR_BASE_URL = GOOGLE
    settings.GOOGLE_CALENDAR_ID = "primary"
    settings.GOOGLE_CALENDAR_ACCESS_TOKEN = "ya29.static-token"
    settings.GOOGLE_SERVICE_ACCOUNT_FILE = ""
    settings.PROVIDER_TIMEOUT_SECONDS = 10.0
    calendar_provider_clients_reset()
    yield calendar_provider_client("google")
    calendar_provider_clients_reset()


def feishu_token(provider_api) -> None:
    provider_api.add(
        responses.POST,
        FEISHU_TOKEN_URL,
        json={"code": 0, "msg": "ok", "tenant_access_token": "t-token", "expire": 7200},
    )


def at(hour: int, minute: int = 0) -> datetime:
    return datetime(2026, 12, 1, hour, minute, tzinfo=UTC)


# ---------------------------------------------------------------------------------------------------------
# Feishu


def test_feishu_asks_the_persons_busy_times_by_open_id_with_the_short_timeout(feishu, provider_api):
    # given
    feishu_token(provider_api)
    provider_api.add(
        responses.POST,
        FEISHU_FREEBUSY_URL,
        json={
            "code": 0,
            "msg": "success",
            "data": {
                "freebusy_list": [
                    # Feishu answers in the person's offset; not necessarily in order.
                    {"start_time": "2026-12-01T18:00:00+08:00", "end_time": "2026-12-01T19:30:00+08:00"},
                    {"start_time": "2026-12-01T02:00:00Z", "end_time": "2026-12-01T03:00:00Z"},
                ]
            },
        },
    )

    # when
    busy = feishu.busy(person="ou_mentor", start=START, end=END, timeout_seconds=2.0)

    # then
    assert busy == [(at(2), at(3)), (at(10), at(11, 30))]
    call = provider_api.calls[-1]
    assert call.request.url == f"{FEISHU_FREEBUSY_URL}?user_id_type=open_id"
    assert call.request.headers["Authorization"] == "Bearer t-token"
    assert call.request.req_kwargs["timeout"] == (2.0, 2.0)
    body = json.loads(call.request.body)
    assert body["time_min"] == "2026-12-01T00:00:00Z"
    assert body["time_max"] == "2026-12-02T00:00:00Z"
    assert body["user_id"] == "ou_mentor"


def test_feishu_busy_times_are_cut_to_the_window_and_an_empty_answer_is_free(feishu, provider_api):
    # given
    feishu_token(provider_api)
    provider_api.add(
        responses.POST,
        FEISHU_FREEBUSY_URL,
        json={
            "code": 0,
            "data": {"freebusy_list": [{"start_time": "2026-11-30T23:00:00Z", "end_time": "2026-12-01T01:00:00Z"}]},
        },
    )
    provider_api.add(responses.POST, FEISHU_FREEBUSY_URL, json={"code": 0, "msg": "success", "data": {}})

    # when
    first = feishu.busy(person="ou_mentor", start=START, end=END, timeout_seconds=2.0)
    second = feishu.busy(person="ou_mentor", start=START, end=END, timeout_seconds=2.0)

    # then
    assert first == [(at(0), at(1))]
    assert second == []


def test_feishu_code_other_than_zero_is_a_refusal(feishu, provider_api):
    # given: no permission to read this person's calendar
    feishu_token(provider_api)
    provider_api.add(responses.POST, FEISHU_FREEBUSY_URL, json={"code": 190004, "msg": "no calendar access"})

    # when / then
    with pytest.raises(PermanentProviderError) as refused:
        feishu.busy(person="ou_mentor", start=START, end=END, timeout_seconds=2.0)
    assert refused.value.code == 190004


def test_feishu_timeout_is_transient_and_not_repeated(feishu, provider_api):
    # given
    feishu_token(provider_api)
    provider_api.add(responses.POST, FEISHU_FREEBUSY_URL, body=requests.exceptions.ReadTimeout("slow"))

    # when / then
    with pytest.raises(OutcomeUnknownError):
        feishu.busy(person="ou_mentor", start=START, end=END, timeout_seconds=2.0)
    assert [call.request.url.split("?")[0] for call in provider_api.calls].count(FEISHU_FREEBUSY_URL) == 1


def test_feishu_unreadable_busy_time_is_a_refusal_not_a_free_mentor(feishu, provider_api):
    # given
    feishu_token(provider_api)
    provider_api.add(
        responses.POST,
        FEISHU_FREEBUSY_URL,
        json={"code": 0, "data": {"freebusy_list": [{"start_time": "soon", "end_time": "later"}]}},
    )

    # when / then
    with pytest.raises(PermanentProviderError):
        feishu.busy(person="ou_mentor", start=START, end=END, timeout_seconds=2.0)


# ---------------------------------------------------------------------------------------------------------
# Google


def test_google_asks_freebusy_of_the_persons_calendar_with_the_short_timeout(google, provider_api):
    # given
    provider_api.add(
        responses.POST,
        GOOGLE_FREEBUSY_URL,
        json={
            "kind": "calendar#freeBusy",
            "timeMin": "2026-12-01T00:00:00.000Z",
            "timeMax": "2026-12-02T00:00:00.000Z",
            "calendars": {
                "mentor@example.com": {
                    "busy": [
                        {"start": "2026-12-01T09:00:00Z", "end": "2026-12-01T10:00:00Z"},
                        {"start": "2026-12-01T03:00:00+01:00", "end": "2026-12-01T04:00:00+01:00"},
                    ]
                }
            },
        },
    )

    # when
    busy = google.busy(person="mentor@example.com", start=START, end=END, timeout_seconds=2.0)

    # then
    assert busy == [(at(2), at(3)), (at(9), at(10))]
    (call,) = provider_api.calls
    assert call.request.headers["Authorization"] == "Bearer ya29.static-token"
    assert call.request.req_kwargs["timeout"] == (2.0, 2.0)
    assert json.loads(call.request.body) == {
        "timeMin": "2026-12-01T00:00:00Z",
        "timeMax": "2026-12-02T00:00:00Z",
        "timeZone": "UTC",
        "items": [{"id": "mentor@example.com"}],
    }


def test_google_errors_entry_for_the_calendar_is_a_refusal(google, provider_api):
    # given: HTTP 200, but the calendar is not shared with us
    provider_api.add(
        responses.POST,
        GOOGLE_FREEBUSY_URL,
        json={"calendars": {"mentor@example.com": {"errors": [{"domain": "global", "reason": "notFound"}]}}},
    )

    # when / then
    with pytest.raises(PermanentProviderError) as refused:
        google.busy(person="mentor@example.com", start=START, end=END, timeout_seconds=2.0)
    assert refused.value.code == "notFound"


def test_google_answer_without_the_calendar_asked_is_a_refusal(google, provider_api):
    # given
    provider_api.add(responses.POST, GOOGLE_FREEBUSY_URL, json={"calendars": {}})

    # when / then
    with pytest.raises(PermanentProviderError):
        google.busy(person="mentor@example.com", start=START, end=END, timeout_seconds=2.0)


def test_google_rate_limit_and_timeout_are_transient(google, provider_api):
    # given
    provider_api.add(
        responses.POST,
        GOOGLE_FREEBUSY_URL,
        status=429,
        json={"error": {"code": 429, "errors": [{"reason": "rateLimitExceeded"}]}},
    )
    provider_api.add(responses.POST, GOOGLE_FREEBUSY_URL, body=requests.exceptions.ReadTimeout("slow"))

    # when / then
    with pytest.raises(TransientProviderError):
        google.busy(person="mentor@example.com", start=START, end=END, timeout_seconds=2.0)
    with pytest.raises(OutcomeUnknownError):
        google.busy(person="mentor@example.com", start=START, end=END, timeout_seconds=2.0)
    assert len(provider_api.calls) == 2
