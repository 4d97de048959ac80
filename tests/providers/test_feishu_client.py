"""The Feishu client against Feishu's HTTP API as `responses` plays it: tenant token, reserves, errors."""

import json
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from zoneinfo import ZoneInfo

import pytest
import requests
import responses

from booking_project.providers.outcomes import NOT_DONE, UNKNOWN
from meetings_app.providers import FeishuMeetingClient, meeting_provider_client
from meetings_app.providers.base import (
    MeetingRequest,
    PermanentProviderError,
    ProvidedMeeting,
    ProviderError,
    TransientProviderError,
)

FEISHU = "https://feishu.test"
TOKEN_URL = f"{FEISHU}/open-apis/auth/v3/tenant_access_token/internal"
APPLY_URL = f"{FEISHU}/open-apis/vc/v1/reserves/apply"
RESERVE_ID = "6911188411932033028"
RESERVE_URL = f"{FEISHU}/open-apis/vc/v1/reserves/{RESERVE_ID}"
APP_ID = "cli_a1b2c3d4e5"
APP_SECRET = "feishu-app-secret-do-not-leak"
OWNER_OPEN_ID = "ou_7d8a6e6df7621556ce0d21922b676706ccs"

# 10:00 in Shanghai is 02:00 UTC; an hour later the meeting ends at 03:00 UTC = 1796094000.
MEETING = MeetingRequest(
    reference="3f2c9a4e-1b7d-4c55-9e0a-2d6f8b1c7e90",
    topic="Essay review with Ms. Lin",
    start_time=datetime(2026, 12, 1, 10, 0, tzinfo=ZoneInfo("Asia/Shanghai")),
    duration_minutes=60,
    host_id=OWNER_OPEN_ID,
)


@pytest.fixture
def feishu_settings(settings):
    settings.FEISHU_BASE_URL = FEISHU
    settings.FEISHU_APP_ID = APP_ID
    settings.FEISHU_APP_SECRET = APP_SECRET
    settings.PROVIDER_TIMEOUT_SECONDS = 4.0
    settings.FEISHU_MEETING_VIA = "reservation"
    return settings


@pytest.fixture
def feishu(feishu_settings):
    return meeting_provider_client("feishu")


def token_answer(token: str = "t-first", expire: int = 7200) -> dict:
    return {"code": 0, "msg": "ok", "tenant_access_token": token, "expire": expire}


def reserve_answer(*, end_time: str | int = "1796094000") -> dict:
    return {
        "code": 0,
        "msg": "success",
        "data": {
            "reserve": {
                "id": RESERVE_ID,
                "meeting_no": "112000358",
                "url": "https://vc.feishu.cn/j/337736498",
                "app_link": "https://applink.feishu.cn/client/videochat/open?id=6911188411932033028",
                "live_link": "https://meetings.feishu.cn/s/1gub381l4gglv",
                "end_time": end_time,
            }
        },
    }


def give_tokens(provider_api, *tokens: str, expire: int = 7200) -> None:
    for token in tokens:
        provider_api.add(responses.POST, TOKEN_URL, json=token_answer(token, expire))


def calls_to(provider_api, url: str) -> list:
    return [call for call in provider_api.calls if call.request.url.split("?")[0] == url]


def test_reserving_a_meeting_sends_owner_topic_and_end_time_as_a_string_of_unix_seconds(feishu, provider_api):
    # given
    give_tokens(provider_api, "t-first")
    provider_api.add(responses.POST, APPLY_URL, json=reserve_answer())

    # when
    provided = feishu.create(MEETING)

    # then
    assert provided == ProvidedMeeting(
        provider_meeting_id=RESERVE_ID,
        meeting_no="112000358",
        join_url="https://vc.feishu.cn/j/337736498",
        host_id=OWNER_OPEN_ID,
    )
    (apply,) = calls_to(provider_api, APPLY_URL)
    assert apply.request.url == f"{APPLY_URL}?user_id_type=open_id"
    assert apply.request.headers["Authorization"] == "Bearer t-first"
    assert apply.request.headers["Content-Type"] == "application/json"
    assert json.loads(apply.request.body) == {
        "end_time": "1796094000",
        "owner_id": OWNER_OPEN_ID,
        "meeting_settings": {"topic": "Essay review with Ms. Lin"},
    }


def test_tenant_token_is_asked_for_with_app_id_and_secret(feishu, provider_api):
    # given
    give_tokens(provider_api, "t-first")
    provider_api.add(responses.POST, APPLY_URL, json=reserve_answer())

    # when
    feishu.create(MEETING)

    # then
    (token_call,) = calls_to(provider_api, TOKEN_URL)
    assert json.loads(token_call.request.body) == {"app_id": APP_ID, "app_secret": APP_SECRET}
    assert "Authorization" not in token_call.request.headers


def test_every_request_carries_the_configured_connect_and_read_timeout(feishu, provider_api):
    # given
    give_tokens(provider_api, "t-first")
    provider_api.add(responses.POST, APPLY_URL, json=reserve_answer())

    # when
    feishu.create(MEETING)

    # then
    assert [call.request.req_kwargs["timeout"] for call in provider_api.calls] == [(4.0, 4.0), (4.0, 4.0)]


def test_tenant_token_is_fetched_once_and_reused_by_later_calls(feishu, provider_api):
    # given
    give_tokens(provider_api, "t-first", "t-second")
    provider_api.add(responses.POST, APPLY_URL, json=reserve_answer())
    provider_api.add(responses.PUT, RESERVE_URL, json=reserve_answer())
    provider_api.add(responses.DELETE, RESERVE_URL, json={"code": 0, "msg": "success", "data": {}})

    # when
    feishu.create(MEETING)
    feishu.update(RESERVE_ID, MEETING)
    feishu.cancel(RESERVE_ID)

    # then
    assert len(calls_to(provider_api, TOKEN_URL)) == 1
    assert {call.request.headers["Authorization"] for call in provider_api.calls[1:]} == {"Bearer t-first"}


def test_the_shared_client_keeps_its_token_for_every_caller(feishu_settings, provider_api):
    # given
    give_tokens(provider_api, "t-first", "t-second")
    provider_api.add(responses.POST, APPLY_URL, json=reserve_answer())

    # when
    meeting_provider_client("feishu").create(MEETING)
    meeting_provider_client("feishu").create(MEETING)

    # then
    assert len(calls_to(provider_api, TOKEN_URL)) == 1


def test_token_is_fetched_again_a_few_minutes_before_it_expires(feishu_settings, provider_api, clock):
    # given a token that lives two hours
    feishu = FeishuMeetingClient.from_settings(clock=clock)
    give_tokens(provider_api, "t-first", "t-second")
    provider_api.add(responses.POST, APPLY_URL, json=reserve_answer())
    feishu.create(MEETING)

    # when it has ten minutes left, then when it has four
    clock.advance(7200 - 600)
    feishu.create(MEETING)
    clock.advance(360)
    feishu.create(MEETING)

    # then the first is still used with ten minutes left, and a new one is fetched with four
    assert len(calls_to(provider_api, TOKEN_URL)) == 2
    assert [call.request.headers["Authorization"] for call in calls_to(provider_api, APPLY_URL)] == [
        "Bearer t-first",
        "Bearer t-first",
        "Bearer t-second",
    ]


@pytest.mark.parametrize("code", [99991663, 99991661], ids=["expired", "invalid"])
def test_a_refused_token_is_refreshed_once_and_the_call_retried(feishu, provider_api, code):
    # given
    give_tokens(provider_api, "t-stale", "t-fresh")
    provider_api.add(responses.POST, APPLY_URL, status=400, json={"code": code, "msg": "Invalid access token"})
    provider_api.add(responses.POST, APPLY_URL, json=reserve_answer())

    # when
    provided = feishu.create(MEETING)

    # then
    assert provided.provider_meeting_id == RESERVE_ID
    assert len(calls_to(provider_api, TOKEN_URL)) == 2
    assert [call.request.headers["Authorization"] for call in calls_to(provider_api, APPLY_URL)] == [
        "Bearer t-stale",
        "Bearer t-fresh",
    ]


def test_a_token_refused_again_after_refresh_is_a_permanent_error(feishu, provider_api):
    # given
    give_tokens(provider_api, "t-stale", "t-fresh", "t-third")
    provider_api.add(responses.POST, APPLY_URL, status=400, json={"code": 99991663, "msg": "token expired"})

    # when
    with pytest.raises(PermanentProviderError) as raised:
        feishu.create(MEETING)

    # then
    assert raised.value.code == 99991663
    assert len(calls_to(provider_api, TOKEN_URL)) == 2
    assert len(calls_to(provider_api, APPLY_URL)) == 2


def test_update_puts_the_new_end_time_and_topic_on_the_reserve(feishu, provider_api):
    # given
    give_tokens(provider_api, "t-first")
    provider_api.add(responses.PUT, RESERVE_URL, json=reserve_answer(end_time="1796097600"))
    moved = MeetingRequest(
        reference=MEETING.reference,
        topic="Essay review, second draft",
        start_time=MEETING.start_time + timedelta(hours=1),
        duration_minutes=60,
        host_id=OWNER_OPEN_ID,
    )

    # when
    feishu.update(RESERVE_ID, moved)

    # then
    (put,) = calls_to(provider_api, RESERVE_URL)
    assert put.request.method == "PUT"
    assert put.request.headers["Authorization"] == "Bearer t-first"
    assert json.loads(put.request.body) == {
        "end_time": "1796097600",
        "meeting_settings": {"topic": "Essay review, second draft"},
    }


def test_cancel_deletes_the_reserve(feishu, provider_api):
    # given
    give_tokens(provider_api, "t-first")
    provider_api.add(responses.DELETE, RESERVE_URL, json={"code": 0, "msg": "success", "data": {}})

    # when
    feishu.cancel(RESERVE_ID)

    # then
    (delete,) = calls_to(provider_api, RESERVE_URL)
    assert delete.request.method == "DELETE"
    assert delete.request.headers["Authorization"] == "Bearer t-first"


@pytest.mark.parametrize("status", [200, 400, 404])
def test_cancelling_a_reserve_feishu_no_longer_knows_is_done(feishu, provider_api, status):
    # given
    give_tokens(provider_api, "t-first")
    provider_api.add(responses.DELETE, RESERVE_URL, status=status, json={"code": 121004, "msg": "reserve not found"})

    # when
    result = feishu.cancel(RESERVE_ID)

    # then
    assert result is None
    assert len(calls_to(provider_api, RESERVE_URL)) == 1


@pytest.mark.parametrize("end_time", ["1796094000", 1796094000], ids=["string", "integer"])
def test_end_time_in_the_answer_may_be_a_string_or_an_integer(feishu, provider_api, end_time):
    # given
    give_tokens(provider_api, "t-first")
    provider_api.add(responses.POST, APPLY_URL, json=reserve_answer(end_time=end_time))

    # when
    provided = feishu.create(MEETING)

    # then
    assert provided.meeting_no == "112000358"


def test_feishu_cannot_find_a_meeting_by_reference_and_asks_nothing(feishu, provider_api):
    # when
    found = feishu.find_by_reference(MEETING)

    # then
    assert found is None
    assert feishu.can_find_by_reference is False
    assert len(provider_api.calls) == 0


def test_rate_limit_code_is_transient_and_waits_for_the_ogw_reset_header(feishu, provider_api):
    # given
    give_tokens(provider_api, "t-first")
    provider_api.add(
        responses.POST,
        APPLY_URL,
        status=400,
        json={"code": 99991400, "msg": "request trigger frequency limit"},
        headers={"X-Ogw-Ratelimit-Limit": "50", "X-Ogw-Ratelimit-Reset": "7"},
    )

    # when
    with pytest.raises(TransientProviderError) as raised:
        feishu.create(MEETING)

    # then
    assert raised.value.retry_after == 7
    assert raised.value.code == 99991400
    assert (raised.value.provider, raised.value.operation) == ("feishu", "create")


def test_http_429_with_retry_after_seconds_is_transient(feishu, provider_api):
    # given
    give_tokens(provider_api, "t-first")
    provider_api.add(responses.POST, APPLY_URL, status=429, body="Too Many Requests", headers={"Retry-After": "12"})

    # when
    with pytest.raises(TransientProviderError) as raised:
        feishu.create(MEETING)

    # then
    assert raised.value.retry_after == 12
    assert raised.value.status == 429


def test_http_429_with_retry_after_as_an_http_date_is_transient(feishu, provider_api):
    # given
    give_tokens(provider_api, "t-first")
    in_two_minutes = format_datetime(datetime.now(UTC) + timedelta(minutes=2), usegmt=True)
    provider_api.add(responses.POST, APPLY_URL, status=429, headers={"Retry-After": in_two_minutes})

    # when
    with pytest.raises(TransientProviderError) as raised:
        feishu.create(MEETING)

    # then
    assert 110 <= raised.value.retry_after <= 120


@pytest.mark.parametrize(
    ("status", "body", "kind"),
    [
        (500, {"code": 190003, "msg": "internal error"}, NOT_DONE),
        (503, {"code": 190003, "msg": "internal error"}, NOT_DONE),
        (500, "<html>Internal Server Error</html>", NOT_DONE),
        (502, "<html>Bad Gateway</html>", UNKNOWN),
        (503, "<html>Service Unavailable</html>", UNKNOWN),
        (504, "", UNKNOWN),
    ],
)
def test_server_errors_are_transient_and_a_gateways_answer_is_unknown(feishu, provider_api, status, body, kind):
    # given: Feishu's own error body says it did not apply the call; a gateway's page says nothing of the kind
    give_tokens(provider_api, "t-first")
    if isinstance(body, dict):
        provider_api.add(responses.POST, APPLY_URL, status=status, json=body)
    else:
        provider_api.add(responses.POST, APPLY_URL, status=status, body=body)

    # when
    with pytest.raises(TransientProviderError) as raised:
        feishu.create(MEETING)

    # then
    assert raised.value.status == status
    assert raised.value.kind == kind
    assert raised.value.retry_after is None


@pytest.mark.parametrize(
    ("failure", "kind"),
    [
        (requests.exceptions.ConnectTimeout(), NOT_DONE),
        (requests.exceptions.ReadTimeout(), UNKNOWN),
        (requests.exceptions.ConnectionError(), UNKNOWN),
        (requests.exceptions.ChunkedEncodingError(), UNKNOWN),
    ],
    ids=["connect-timeout", "read-timeout", "connection-reset", "body-cut-short"],
)
def test_timeouts_and_connection_failures_are_not_done_before_sending_and_unknown_after(
    feishu, provider_api, failure, kind
):
    # given
    give_tokens(provider_api, "t-first")
    provider_api.add(responses.POST, APPLY_URL, body=failure)

    # when
    with pytest.raises(TransientProviderError) as raised:
        feishu.create(MEETING)

    # then: a request that may have left is never called "not done"
    assert raised.value.status is None
    assert raised.value.kind == kind
    assert type(failure).__name__ in str(raised.value)


def test_token_endpoint_timing_out_is_transient(feishu, provider_api):
    # given
    provider_api.add(responses.POST, TOKEN_URL, body=requests.exceptions.ReadTimeout())

    # when
    with pytest.raises(TransientProviderError) as raised:
        feishu.create(MEETING)

    # then
    assert raised.value.operation == "create"
    assert len(calls_to(provider_api, APPLY_URL)) == 0


def test_a_business_error_with_http_200_is_permanent(feishu, provider_api):
    # given
    give_tokens(provider_api, "t-first")
    provider_api.add(responses.POST, APPLY_URL, json={"code": 121001, "msg": "internal error: invalid end_time"})

    # when
    with pytest.raises(PermanentProviderError) as raised:
        feishu.create(MEETING)

    # then
    assert raised.value.code == 121001
    assert "121001" in str(raised.value)


@pytest.mark.parametrize("status, code", [(400, 99992402), (403, 99991672), (404, 121004)])
def test_other_client_errors_are_permanent(feishu, provider_api, status, code):
    # given
    give_tokens(provider_api, "t-first")
    provider_api.add(responses.PUT, RESERVE_URL, status=status, json={"code": code, "msg": "refused"})

    # when
    with pytest.raises(PermanentProviderError) as raised:
        feishu.update(RESERVE_ID, MEETING)

    # then
    assert (raised.value.status, raised.value.code) == (status, code)


def test_a_body_that_is_not_json_is_permanent(feishu, provider_api):
    # given
    give_tokens(provider_api, "t-first")
    provider_api.add(responses.POST, APPLY_URL, status=200, body="<html>maintenance</html>")

    # when / then
    with pytest.raises(PermanentProviderError):
        feishu.create(MEETING)


def test_an_answer_without_the_reserve_is_permanent(feishu, provider_api):
    # given
    give_tokens(provider_api, "t-first")
    provider_api.add(responses.POST, APPLY_URL, json={"code": 0, "msg": "success", "data": {}})

    # when / then
    with pytest.raises(PermanentProviderError):
        feishu.create(MEETING)


def test_a_wrong_app_secret_is_permanent(feishu, provider_api):
    # given
    provider_api.add(responses.POST, TOKEN_URL, json={"code": 10014, "msg": "app secret invalid"})

    # when
    with pytest.raises(PermanentProviderError) as raised:
        feishu.create(MEETING)

    # then
    assert raised.value.code == 10014
    assert len(calls_to(provider_api, APPLY_URL)) == 0


def echoing(*values: str) -> dict:
    return {"code": 99992402, "msg": "field validation failed: " + " ".join(values)}


@pytest.mark.parametrize(
    "answer",
    [
        {"status": 400, "json": echoing(APP_SECRET, "t-secret-token")},
        {"status": 503, "json": {"code": 1, "msg": f"upstream said Bearer t-secret-token {APP_SECRET}"}},
        {"status": 429, "json": {"code": 99991400, "msg": f"slow down t-secret-token {APP_SECRET}"}},
        {"status": 200, "json": {"code": 121001, "msg": f"t-secret-token/{APP_SECRET}"}},
    ],
    ids=["client-error", "server-error", "rate-limited", "business-error"],
)
def test_no_secret_or_token_appears_in_an_error_message(feishu, provider_api, answer):
    # given a Feishu that echoes the app secret and the token back
    give_tokens(provider_api, "t-secret-token")
    provider_api.add(responses.POST, APPLY_URL, **answer)

    # when
    with pytest.raises(ProviderError) as raised:
        feishu.create(MEETING)

    # then
    message = str(raised.value)
    assert APP_SECRET not in message
    assert "t-secret-token" not in message
    assert "[redacted]" in message


def test_no_secret_appears_when_the_token_request_fails(feishu, provider_api):
    # given
    provider_api.add(responses.POST, TOKEN_URL, status=400, json={"code": 10014, "msg": f"bad secret {APP_SECRET}"})

    # when
    with pytest.raises(ProviderError) as raised:
        feishu.create(MEETING)

    # then
    assert APP_SECRET not in str(raised.value)
    assert APP_SECRET not in repr(raised.value.args)
