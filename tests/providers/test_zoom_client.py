"""The Zoom client against Zoom's HTTP API as `responses` plays it: S2S OAuth, meetings, errors."""

import base64
import json
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from urllib.parse import parse_qs, urlsplit
from zoneinfo import ZoneInfo

import pytest
import requests
import responses

from meetings_app.providers import ZoomMeetingClient, meeting_provider_client
from meetings_app.providers.base import (
    MeetingRequest,
    PermanentProviderError,
    ProvidedMeeting,
    ProviderError,
    TransientProviderError,
)

API = "https://zoom-api.test/v2"
OAUTH_URL = "https://zoom-oauth.test/oauth/token"
ACCOUNT_ID = "acc-Zr3kQ9"
CLIENT_ID = "zoom-client-id"
CLIENT_SECRET = "zoom-client-secret-do-not-leak"
HOST = "mentor.lin@example.com"
MEETINGS_URL = f"{API}/users/{HOST}/meetings"
MEETING_ID = 85746065432
MEETING_URL = f"{API}/meetings/{MEETING_ID}"
JOIN_URL = f"https://us05web.zoom.us/j/{MEETING_ID}?pwd=abc"

# 10:00 in Shanghai is 02:00 UTC.
MEETING = MeetingRequest(
    reference="3f2c9a4e-1b7d-4c55-9e0a-2d6f8b1c7e90",
    topic="Essay review with Ms. Lin",
    start_time=datetime(2026, 12, 1, 10, 0, tzinfo=ZoneInfo("Asia/Shanghai")),
    duration_minutes=45,
    host_id=HOST,
)


@pytest.fixture
def zoom_settings(settings):
    settings.ZOOM_API_BASE_URL = API
    settings.ZOOM_OAUTH_URL = OAUTH_URL
    settings.ZOOM_ACCOUNT_ID = ACCOUNT_ID
    settings.ZOOM_CLIENT_ID = CLIENT_ID
    settings.ZOOM_CLIENT_SECRET = CLIENT_SECRET
    settings.PROVIDER_TIMEOUT_SECONDS = 4.0
    return settings


@pytest.fixture
def zoom(zoom_settings):
    return meeting_provider_client("zoom")


def give_tokens(provider_api, *tokens: str, expires_in: int = 3600) -> None:
    for token in tokens:
        provider_api.add(
            responses.POST,
            OAUTH_URL,
            json={"access_token": token, "token_type": "bearer", "expires_in": expires_in, "scope": "meeting:write"},
        )


def meeting_answer(*, meeting_id: int = MEETING_ID, agenda: str = "") -> dict:
    return {
        "id": meeting_id,
        "uuid": "aDYlohsHRtCd4ii1uC2+hA==",
        "host_id": "KDcuGIm1QgePTO8WbOqwIQ",
        "topic": MEETING.topic,
        "type": 2,
        "start_time": "2026-12-01T02:00:00Z",
        "duration": 45,
        "timezone": "UTC",
        "agenda": agenda,
        "join_url": f"https://us05web.zoom.us/j/{meeting_id}?pwd=abc",
        "start_url": f"https://us05web.zoom.us/s/{meeting_id}?zak=host-only",
        "password": "abc",
    }


def calls_to(provider_api, url: str) -> list:
    return [call for call in provider_api.calls if call.request.url.split("?")[0] == url]


def query_of(call) -> dict[str, list[str]]:
    return parse_qs(urlsplit(call.request.url).query)


def test_creating_a_meeting_posts_a_scheduled_meeting_in_utc_carrying_the_session_reference(zoom, provider_api):
    # given
    give_tokens(provider_api, "zoom-token-1")
    provider_api.add(responses.POST, MEETINGS_URL, status=201, json=meeting_answer(agenda="Booking session ..."))

    # when
    provided = zoom.create(MEETING)

    # then
    assert provided == ProvidedMeeting(
        provider_meeting_id=str(MEETING_ID), meeting_no=str(MEETING_ID), join_url=JOIN_URL, host_id=HOST
    )
    (create,) = calls_to(provider_api, MEETINGS_URL)
    assert create.request.method == "POST"
    assert create.request.headers["Authorization"] == "Bearer zoom-token-1"
    assert create.request.headers["Content-Type"] == "application/json"
    body = json.loads(create.request.body)
    assert body == {
        "topic": "Essay review with Ms. Lin",
        "type": 2,
        "start_time": "2026-12-01T02:00:00Z",
        "duration": 45,
        "timezone": "UTC",
        "agenda": body["agenda"],
        "settings": {"join_before_host": True, "waiting_room": False},
    }
    assert MEETING.reference in body["agenda"]


def test_access_token_is_asked_for_with_account_credentials_and_basic_auth(zoom, provider_api):
    # given
    give_tokens(provider_api, "zoom-token-1")
    provider_api.add(responses.POST, MEETINGS_URL, status=201, json=meeting_answer())

    # when
    zoom.create(MEETING)

    # then
    (token_call,) = calls_to(provider_api, OAUTH_URL)
    basic = base64.b64encode(f"{CLIENT_ID}:{CLIENT_SECRET}".encode()).decode()
    assert token_call.request.headers["Authorization"] == f"Basic {basic}"
    assert token_call.request.headers["Content-Type"] == "application/x-www-form-urlencoded"
    assert parse_qs(token_call.request.body) == {"grant_type": ["account_credentials"], "account_id": [ACCOUNT_ID]}
    assert urlsplit(token_call.request.url).query == ""


def test_every_request_carries_the_configured_connect_and_read_timeout(zoom, provider_api):
    # given
    give_tokens(provider_api, "zoom-token-1")
    provider_api.add(responses.DELETE, MEETING_URL, status=204)

    # when
    zoom.cancel(str(MEETING_ID))

    # then
    assert [call.request.req_kwargs["timeout"] for call in provider_api.calls] == [(4.0, 4.0), (4.0, 4.0)]


def test_access_token_is_fetched_once_and_reused_by_later_calls(zoom_settings, provider_api):
    # given
    give_tokens(provider_api, "zoom-token-1", "zoom-token-2")
    provider_api.add(responses.POST, MEETINGS_URL, status=201, json=meeting_answer())
    provider_api.add(responses.PATCH, MEETING_URL, status=204)
    provider_api.add(responses.DELETE, MEETING_URL, status=204)

    # when: every caller gets the process's one client
    meeting_provider_client("zoom").create(MEETING)
    meeting_provider_client("zoom").update(str(MEETING_ID), MEETING)
    meeting_provider_client("zoom").cancel(str(MEETING_ID))

    # then
    assert len(calls_to(provider_api, OAUTH_URL)) == 1
    assert {call.request.headers["Authorization"] for call in provider_api.calls[1:]} == {"Bearer zoom-token-1"}


def test_access_token_is_fetched_again_shortly_before_it_expires(zoom_settings, provider_api, clock):
    # given a token that lives an hour
    zoom = ZoomMeetingClient.from_settings(clock=clock)
    give_tokens(provider_api, "zoom-token-1", "zoom-token-2")
    provider_api.add(responses.DELETE, MEETING_URL, status=204)
    zoom.cancel(str(MEETING_ID))

    # when it has two minutes left, then when it has thirty seconds
    clock.advance(3600 - 120)
    zoom.cancel(str(MEETING_ID))
    clock.advance(90)
    zoom.cancel(str(MEETING_ID))

    # then
    assert len(calls_to(provider_api, OAUTH_URL)) == 2
    assert [call.request.headers["Authorization"] for call in calls_to(provider_api, MEETING_URL)] == [
        "Bearer zoom-token-1",
        "Bearer zoom-token-1",
        "Bearer zoom-token-2",
    ]


def test_a_401_with_code_124_refreshes_the_token_once_and_retries_the_call(zoom, provider_api):
    # given
    give_tokens(provider_api, "zoom-token-stale", "zoom-token-fresh")
    provider_api.add(
        responses.POST, MEETINGS_URL, status=401, json={"code": 124, "message": "Access token is expired."}
    )
    provider_api.add(responses.POST, MEETINGS_URL, status=201, json=meeting_answer())

    # when
    provided = zoom.create(MEETING)

    # then
    assert provided.provider_meeting_id == str(MEETING_ID)
    assert len(calls_to(provider_api, OAUTH_URL)) == 2
    assert [call.request.headers["Authorization"] for call in calls_to(provider_api, MEETINGS_URL)] == [
        "Bearer zoom-token-stale",
        "Bearer zoom-token-fresh",
    ]


def test_a_token_refused_again_after_refresh_is_a_permanent_error(zoom, provider_api):
    # given
    give_tokens(provider_api, "zoom-token-1", "zoom-token-2", "zoom-token-3")
    provider_api.add(responses.PATCH, MEETING_URL, status=401, json={"code": 124, "message": "Invalid access token."})

    # when
    with pytest.raises(PermanentProviderError) as raised:
        zoom.update(str(MEETING_ID), MEETING)

    # then
    assert (raised.value.status, raised.value.code) == (401, 124)
    assert len(calls_to(provider_api, OAUTH_URL)) == 2
    assert len(calls_to(provider_api, MEETING_URL)) == 2


def test_a_401_with_another_code_does_not_refresh_the_token(zoom, provider_api):
    # given
    give_tokens(provider_api, "zoom-token-1", "zoom-token-2")
    provider_api.add(responses.PATCH, MEETING_URL, status=401, json={"code": 4711, "message": "Invalid scopes."})

    # when
    with pytest.raises(PermanentProviderError):
        zoom.update(str(MEETING_ID), MEETING)

    # then
    assert len(calls_to(provider_api, OAUTH_URL)) == 1


def test_update_patches_topic_time_duration_and_agenda(zoom, provider_api):
    # given
    give_tokens(provider_api, "zoom-token-1")
    provider_api.add(responses.PATCH, MEETING_URL, status=204)
    moved = MeetingRequest(
        reference=MEETING.reference,
        topic="Essay review, second draft",
        start_time=datetime(2026, 12, 2, 15, 30, tzinfo=UTC),
        duration_minutes=60,
        host_id=HOST,
    )

    # when
    zoom.update(str(MEETING_ID), moved)

    # then
    (patch,) = calls_to(provider_api, MEETING_URL)
    assert patch.request.method == "PATCH"
    assert patch.request.headers["Authorization"] == "Bearer zoom-token-1"
    body = json.loads(patch.request.body)
    assert body == {
        "topic": "Essay review, second draft",
        "start_time": "2026-12-02T15:30:00Z",
        "duration": 60,
        "timezone": "UTC",
        "agenda": body["agenda"],
    }
    assert MEETING.reference in body["agenda"]


def test_cancel_deletes_the_meeting(zoom, provider_api):
    # given
    give_tokens(provider_api, "zoom-token-1")
    provider_api.add(responses.DELETE, MEETING_URL, status=204)

    # when
    zoom.cancel(str(MEETING_ID))

    # then
    (delete,) = calls_to(provider_api, MEETING_URL)
    assert delete.request.method == "DELETE"
    assert delete.request.headers["Authorization"] == "Bearer zoom-token-1"


def test_cancelling_a_meeting_zoom_no_longer_knows_is_done(zoom, provider_api):
    # given
    give_tokens(provider_api, "zoom-token-1")
    provider_api.add(
        responses.DELETE, MEETING_URL, status=404, json={"code": 3001, "message": "Meeting does not exist."}
    )

    # when
    result = zoom.cancel(str(MEETING_ID))

    # then
    assert result is None
    assert len(calls_to(provider_api, MEETING_URL)) == 1


def test_a_404_with_another_code_on_cancel_is_permanent(zoom, provider_api):
    # given
    give_tokens(provider_api, "zoom-token-1")
    provider_api.add(responses.DELETE, MEETING_URL, status=404, json={"code": 1001, "message": "User does not exist."})

    # when / then
    with pytest.raises(PermanentProviderError):
        zoom.cancel(str(MEETING_ID))


def test_updating_a_meeting_zoom_no_longer_knows_is_permanent(zoom, provider_api):
    # given
    give_tokens(provider_api, "zoom-token-1")
    provider_api.add(
        responses.PATCH, MEETING_URL, status=404, json={"code": 3001, "message": "Meeting does not exist."}
    )

    # when
    with pytest.raises(PermanentProviderError) as raised:
        zoom.update(str(MEETING_ID), MEETING)

    # then
    assert (raised.value.status, raised.value.code) == (404, 3001)


def test_find_by_reference_follows_the_next_page_token_to_the_meeting_carrying_the_reference(zoom, provider_api):
    # given two pages of upcoming meetings, the wanted one on the second
    give_tokens(provider_api, "zoom-token-1")
    provider_api.add(
        responses.GET,
        MEETINGS_URL,
        json={
            "page_size": 300,
            "total_records": 3,
            "next_page_token": "page-2-token",
            "meetings": [
                meeting_answer(meeting_id=111, agenda="Booking session 00000000-0000-0000-0000-000000000000"),
                meeting_answer(meeting_id=222, agenda=""),
            ],
        },
    )
    provider_api.add(
        responses.GET,
        MEETINGS_URL,
        json={
            "page_size": 300,
            "total_records": 3,
            "next_page_token": "",
            "meetings": [meeting_answer(meeting_id=333, agenda=f"Booking session {MEETING.reference}")],
        },
    )

    # when
    found = zoom.find_by_reference(MEETING)

    # then
    assert found == ProvidedMeeting(
        provider_meeting_id="333", meeting_no="333", join_url="https://us05web.zoom.us/j/333?pwd=abc", host_id=HOST
    )
    first, second = calls_to(provider_api, MEETINGS_URL)
    assert query_of(first) == {"type": ["scheduled"], "page_size": ["300"]}
    assert query_of(second) == {"type": ["scheduled"], "page_size": ["300"], "next_page_token": ["page-2-token"]}
    assert {call.request.headers["Authorization"] for call in (first, second)} == {"Bearer zoom-token-1"}


def test_find_by_reference_answers_none_when_no_meeting_carries_the_reference(zoom, provider_api):
    # given
    give_tokens(provider_api, "zoom-token-1")
    provider_api.add(
        responses.GET,
        MEETINGS_URL,
        json={"next_page_token": "", "meetings": [meeting_answer(meeting_id=111, agenda="Booking session other")]},
    )

    # when
    found = zoom.find_by_reference(MEETING)

    # then
    assert found is None
    assert zoom.can_find_by_reference is True


def test_a_meeting_created_and_found_again_is_the_same_meeting(zoom, provider_api):
    # given Zoom lists the agenda exactly as the client wrote it
    give_tokens(provider_api, "zoom-token-1")
    provider_api.add(responses.POST, MEETINGS_URL, status=201, json=meeting_answer())
    created = zoom.create(MEETING)
    agenda = json.loads(calls_to(provider_api, MEETINGS_URL)[0].request.body)["agenda"]
    provider_api.add(responses.GET, MEETINGS_URL, json={"meetings": [meeting_answer(agenda=agenda)]})

    # when
    found = zoom.find_by_reference(MEETING)

    # then
    assert found == created


def test_http_429_with_retry_after_seconds_is_transient(zoom, provider_api):
    # given
    give_tokens(provider_api, "zoom-token-1")
    provider_api.add(
        responses.POST,
        MEETINGS_URL,
        status=429,
        json={"code": 429, "message": "You have reached the maximum per-second rate limit for this API."},
        headers={"Retry-After": "2", "X-RateLimit-Limit": "10", "X-RateLimit-Remaining": "0"},
    )

    # when
    with pytest.raises(TransientProviderError) as raised:
        zoom.create(MEETING)

    # then
    assert raised.value.retry_after == 2
    assert raised.value.status == 429


@pytest.mark.parametrize("written_as", ["http-date", "iso-8601"])
def test_the_daily_limit_is_transient_with_the_far_retry_after_in_seconds(zoom, provider_api, written_as):
    # given Zoom's daily limit, which names the moment it resets, ten hours away
    give_tokens(provider_api, "zoom-token-1")
    resets_at = datetime.now(UTC).replace(microsecond=0) + timedelta(hours=10)
    header = format_datetime(resets_at, usegmt=True) if written_as == "http-date" else resets_at.isoformat()
    provider_api.add(
        responses.POST,
        MEETINGS_URL,
        status=429,
        json={"code": 429, "message": "You have exceeded the daily rate limit (100) of Meeting Create/Update API"},
        headers={"Retry-After": header},
    )

    # when
    with pytest.raises(TransientProviderError) as raised:
        zoom.create(MEETING)

    # then
    assert 10 * 3600 - 10 <= raised.value.retry_after <= 10 * 3600


@pytest.mark.parametrize("status", [500, 502, 503, 504])
def test_server_errors_are_transient(zoom, provider_api, status):
    # given
    give_tokens(provider_api, "zoom-token-1")
    provider_api.add(responses.PATCH, MEETING_URL, status=status, body="upstream connect error")

    # when
    with pytest.raises(TransientProviderError) as raised:
        zoom.update(str(MEETING_ID), MEETING)

    # then
    assert raised.value.status == status


@pytest.mark.parametrize(
    "failure",
    [requests.exceptions.ConnectTimeout(), requests.exceptions.ReadTimeout(), requests.exceptions.ConnectionError()],
    ids=["connect-timeout", "read-timeout", "connection-error"],
)
def test_timeouts_and_connection_failures_are_transient(zoom, provider_api, failure):
    # given
    give_tokens(provider_api, "zoom-token-1")
    provider_api.add(responses.POST, MEETINGS_URL, body=failure)

    # when / then
    with pytest.raises(TransientProviderError):
        zoom.create(MEETING)


@pytest.mark.parametrize(
    "status, code", [(400, 300), (404, 1001), (403, 200)], ids=["validation", "no-such-host", "forbidden"]
)
def test_other_client_errors_are_permanent(zoom, provider_api, status, code):
    # given
    give_tokens(provider_api, "zoom-token-1")
    provider_api.add(responses.POST, MEETINGS_URL, status=status, json={"code": code, "message": "refused"})

    # when
    with pytest.raises(PermanentProviderError) as raised:
        zoom.create(MEETING)

    # then
    assert (raised.value.status, raised.value.code) == (status, code)


def test_a_created_answer_that_is_not_json_is_permanent(zoom, provider_api):
    # given
    give_tokens(provider_api, "zoom-token-1")
    provider_api.add(responses.POST, MEETINGS_URL, status=201, body="<html>oops</html>")

    # when / then
    with pytest.raises(PermanentProviderError):
        zoom.create(MEETING)


def test_wrong_client_credentials_are_permanent(zoom, provider_api):
    # given
    provider_api.add(
        responses.POST,
        OAUTH_URL,
        status=400,
        json={"reason": "Invalid client_id or client_secret", "error": "invalid_client"},
    )

    # when
    with pytest.raises(PermanentProviderError) as raised:
        zoom.create(MEETING)

    # then
    assert raised.value.code == "invalid_client"
    assert len(calls_to(provider_api, MEETINGS_URL)) == 0


def test_oauth_endpoint_down_is_transient(zoom, provider_api):
    # given
    provider_api.add(responses.POST, OAUTH_URL, status=503, body="Service Unavailable")

    # when / then
    with pytest.raises(TransientProviderError):
        zoom.create(MEETING)


@pytest.mark.parametrize(
    "answer",
    [
        {"status": 400, "json": {"code": 300, "message": f"token zoom-secret-token {CLIENT_SECRET}"}},
        {"status": 500, "json": {"code": 1, "message": f"zoom-secret-token {CLIENT_SECRET}"}},
        {"status": 429, "json": {"code": 429, "message": "Bearer zoom-secret-token"}},
    ],
    ids=["client-error", "server-error", "rate-limited"],
)
def test_no_secret_or_token_appears_in_an_error_message(zoom, provider_api, answer):
    # given a Zoom that echoes the client secret and the token back
    give_tokens(provider_api, "zoom-secret-token")
    provider_api.add(responses.POST, MEETINGS_URL, **answer)

    # when
    with pytest.raises(ProviderError) as raised:
        zoom.create(MEETING)

    # then
    message = str(raised.value)
    assert CLIENT_SECRET not in message
    assert "zoom-secret-token" not in message
    assert "[redacted]" in message


def test_no_secret_appears_when_the_oauth_endpoint_refuses(zoom, provider_api):
    # given
    provider_api.add(
        responses.POST, OAUTH_URL, status=401, json={"reason": f"bad secret {CLIENT_SECRET}", "error": "invalid_client"}
    )

    # when
    with pytest.raises(PermanentProviderError) as raised:
        zoom.create(MEETING)

    # then
    assert CLIENT_SECRET not in str(raised.value)
    assert raised.value.status == 401


def test_a_naive_start_time_is_refused_before_anything_is_sent(zoom, provider_api):
    # given
    naive = MeetingRequest(
        reference=MEETING.reference,
        topic="t",
        start_time=datetime(2026, 12, 1, 2, 0),
        duration_minutes=45,
        host_id=HOST,
    )

    # when / then
    with pytest.raises(ValueError):
        zoom.create(naive)
    assert len(provider_api.calls) == 0
