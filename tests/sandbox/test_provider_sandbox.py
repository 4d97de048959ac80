"""The provider sandbox speaks Feishu, Zoom and Google Calendar as their docs describe, and fails, waits
and forgets on command (API.md "Provider sandbox"). Each test talks to a real server over HTTP."""

import os
import socket
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import requests

from meetings_app.sandbox import ProviderSandbox

PROJECT_ROOT = Path(__file__).resolve().parents[2]
RESERVE_APPLY = "/open-apis/vc/v1/reserves/apply?user_id_type=open_id"


@pytest.fixture
def sandbox():
    server = ProviderSandbox(port=0).start()
    yield server
    server.stop()


def configure(sandbox, **settings) -> dict:
    response = requests.post(f"{sandbox.url}/_sandbox/config", json=settings, timeout=5)
    assert response.status_code == 200, response.text
    return response.json()


def sandbox_meetings(sandbox) -> list[dict]:
    return requests.get(f"{sandbox.url}/_sandbox/meetings", timeout=5).json()["meetings"]


def feishu_headers(sandbox) -> dict:
    response = requests.post(
        f"{sandbox.url}/open-apis/auth/v3/tenant_access_token/internal",
        json={"app_id": "cli_sandbox", "app_secret": "secret"},
        timeout=5,
    )
    return {"Authorization": f"Bearer {response.json()['tenant_access_token']}"}


def zoom_headers(sandbox) -> dict:
    response = requests.post(
        f"{sandbox.url}/oauth/token",
        data={"grant_type": "account_credentials", "account_id": "acc"},
        auth=("client-id", "client-secret"),
        timeout=5,
    )
    return {"Authorization": f"Bearer {response.json()['access_token']}"}


def google_headers() -> dict:
    return {"Authorization": "Bearer ya29.any-token-google-auth-gave-us"}


def unix_in(hours: float) -> int:
    return int((datetime.now(UTC) + timedelta(hours=hours)).timestamp())


def reserve_body(end_time, topic="Resume review", owner_id="ou_owner") -> dict:
    return {"end_time": end_time, "owner_id": owner_id, "meeting_settings": {"topic": topic}}


def zoom_body(topic="Resume review", start="2099-12-01T02:00:00Z", agenda="session:1") -> dict:
    return {"topic": topic, "type": 2, "start_time": start, "duration": 60, "timezone": "UTC", "agenda": agenda}


def apply_reserve(sandbox, headers, **overrides) -> requests.Response:
    body = reserve_body(str(unix_in(48)))
    body.update(overrides)
    return requests.post(f"{sandbox.url}{RESERVE_APPLY}", json=body, headers=headers, timeout=5)


def google_event(event_id=None, summary="Resume review") -> dict:
    body = {
        "summary": summary,
        "description": "Join: https://zoom.us/j/81234567890",
        "start": {"dateTime": "2099-12-01T10:00:00+08:00", "timeZone": "Asia/Shanghai"},
        "end": {"dateTime": "2099-12-01T11:00:00+08:00", "timeZone": "Asia/Shanghai"},
        "attendees": [{"email": "mentor@example.com"}],
    }
    if event_id:
        body["id"] = event_id
    return body


# --- tokens -------------------------------------------------------------------------------------------


def test_feishu_issues_tenant_tokens_and_refuses_calls_without_a_valid_one(sandbox):
    token = requests.post(
        f"{sandbox.url}/open-apis/auth/v3/tenant_access_token/internal",
        json={"app_id": "cli_sandbox", "app_secret": "secret"},
        timeout=5,
    ).json()

    assert token["code"] == 0 and token["msg"] == "ok" and token["expire"] == 7200
    assert token["tenant_access_token"].startswith("t-")
    for headers in ({}, {"Authorization": "Bearer t-not-issued-here"}):
        refused = apply_reserve(sandbox, headers)
        assert refused.status_code == 401
        assert refused.json() == {"code": 99991663, "msg": "Invalid access token for authorization."}
    assert sandbox_meetings(sandbox) == []


def test_zoom_issues_tokens_for_basic_auth_and_refuses_missing_or_unknown_bearers(sandbox):
    token_url = f"{sandbox.url}/oauth/token"
    form = {"grant_type": "account_credentials", "account_id": "acc"}

    issued = requests.post(token_url, data=form, auth=("id", "secret"), timeout=5)
    wrong_grant = requests.post(
        token_url, data={**form, "grant_type": "client_credentials"}, auth=("id", "s"), timeout=5
    )
    no_basic_auth = requests.post(token_url, data=form, timeout=5)

    assert issued.status_code == 200
    assert issued.json()["token_type"] == "bearer" and issued.json()["expires_in"] == 3600
    assert issued.json()["access_token"] and "scope" in issued.json()
    assert wrong_grant.status_code == 400
    assert no_basic_auth.status_code == 401
    for headers in ({}, {"Authorization": "Bearer not-issued-here"}):
        refused = requests.post(f"{sandbox.url}/v2/users/me/meetings", json=zoom_body(), headers=headers, timeout=5)
        assert refused.status_code == 401
        assert refused.json() == {"code": 124, "message": "Invalid access token."}


def test_google_takes_any_bearer_token_but_requires_one(sandbox):
    url = f"{sandbox.url}/calendar/v3/calendars/primary/events"

    refused = requests.post(url, json=google_event(), timeout=5)
    accepted = requests.post(url, json=google_event(), headers=google_headers(), timeout=5)

    assert refused.status_code == 401
    assert refused.json()["error"]["code"] == 401 and refused.json()["error"]["errors"][0]["reason"]
    assert accepted.status_code == 200


# --- Feishu reservations ------------------------------------------------------------------------------


@pytest.mark.parametrize("as_type", [str, int], ids=["end_time_as_string", "end_time_as_int"])
def test_feishu_reservation_round_trip(sandbox, as_type):
    headers = feishu_headers(sandbox)
    end_time = unix_in(48)

    applied = apply_reserve(sandbox, headers, end_time=as_type(end_time))
    assert applied.status_code == 200
    assert applied.json()["code"] == 0
    reserve = applied.json()["data"]["reserve"]
    assert len(reserve["meeting_no"]) == 9 and reserve["meeting_no"].isdigit()
    assert reserve["url"] == f"https://vc.feishu.cn/j/{reserve['meeting_no']}"
    assert reserve["app_link"] and reserve["live_link"] and reserve["end_time"] == str(end_time)
    reserve_url = f"{sandbox.url}/open-apis/vc/v1/reserves/{reserve['id']}"

    updated = requests.put(
        reserve_url,
        json={"end_time": as_type(end_time + 1800), "meeting_settings": {"topic": "Mock interview"}},
        headers=headers,
        timeout=5,
    )
    fetched = requests.get(reserve_url, headers=headers, timeout=5)

    assert updated.status_code == 200 and updated.json()["code"] == 0
    assert fetched.json()["data"]["reserve"]["end_time"] == str(end_time + 1800)
    assert fetched.json()["data"]["reserve"]["meeting_settings"]["topic"] == "Mock interview"

    deleted = requests.delete(reserve_url, headers=headers, timeout=5)
    gone = requests.get(reserve_url, headers=headers, timeout=5)

    assert deleted.status_code == 200 and deleted.json()["code"] == 0
    assert gone.status_code == 404 and gone.json()["code"] == 121004
    assert sandbox_meetings(sandbox) == [
        {
            "provider": "feishu",
            "id": reserve["id"],
            "status": "cancelled",
            "topic": "Mock interview",
            "startTime": None,
            "duration": None,
            "endTime": datetime.fromtimestamp(end_time + 1800, UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "hostId": "ou_owner",
            "agenda": None,
        }
    ]


@pytest.mark.parametrize("missing", ["owner_id", "end_time"])
def test_feishu_reservation_without_owner_or_end_time_is_refused(sandbox, missing):
    body = reserve_body(str(unix_in(48)))
    del body[missing]

    response = requests.post(f"{sandbox.url}{RESERVE_APPLY}", json=body, headers=feishu_headers(sandbox), timeout=5)

    assert response.status_code == 400
    assert response.json()["code"] not in (0, None)
    assert sandbox_meetings(sandbox) == []


def test_feishu_deleting_a_reservation_twice_answers_reserve_not_found(sandbox):
    headers = feishu_headers(sandbox)
    reserve_id = apply_reserve(sandbox, headers).json()["data"]["reserve"]["id"]
    reserve_url = f"{sandbox.url}/open-apis/vc/v1/reserves/{reserve_id}"

    first = requests.delete(reserve_url, headers=headers, timeout=5)
    second = requests.delete(reserve_url, headers=headers, timeout=5)
    unknown = requests.delete(f"{sandbox.url}/open-apis/vc/v1/reserves/6900000000000000001", headers=headers, timeout=5)

    assert first.status_code == 200
    assert second.status_code == 404 and second.json() == {"code": 121004, "msg": "reserve not found"}
    assert unknown.status_code == 404 and unknown.json()["code"] == 121004


# --- Zoom meetings ------------------------------------------------------------------------------------


def test_zoom_create_answers_201_with_the_meeting(sandbox):
    response = requests.post(
        f"{sandbox.url}/v2/users/host@example.com/meetings", json=zoom_body(), headers=zoom_headers(sandbox), timeout=5
    )

    assert response.status_code == 201
    meeting = response.json()
    assert isinstance(meeting["id"], int)
    assert meeting["join_url"] == f"https://zoom.us/j/{meeting['id']}"
    assert meeting["topic"] == "Resume review" and meeting["agenda"] == "session:1"
    assert meeting["start_time"] == "2099-12-01T02:00:00Z" and meeting["duration"] == 60
    for name in ("uuid", "host_id", "type", "timezone", "start_url", "password", "created_at"):
        assert meeting[name] not in (None, ""), name
    assert sandbox_meetings(sandbox)[0] == {
        "provider": "zoom",
        "id": str(meeting["id"]),
        "status": "active",
        "topic": "Resume review",
        "startTime": "2099-12-01T02:00:00Z",
        "duration": 60,
        "endTime": None,
        "hostId": meeting["host_id"],
        "agenda": "session:1",
    }


def test_zoom_lists_a_hosts_active_meetings_page_by_page(sandbox):
    headers = zoom_headers(sandbox)
    created = [
        requests.post(
            f"{sandbox.url}/v2/users/me/meetings", json=zoom_body(agenda=f"session:{n}"), headers=headers, timeout=5
        ).json()
        for n in range(5)
    ]
    requests.post(f"{sandbox.url}/v2/users/other@example.com/meetings", json=zoom_body(), headers=headers, timeout=5)
    requests.delete(f"{sandbox.url}/v2/meetings/{created[0]['id']}", headers=headers, timeout=5)

    pages, token = [], ""
    while True:
        page = requests.get(
            f"{sandbox.url}/v2/users/me/meetings",
            params={"type": "upcoming", "page_size": 3, "next_page_token": token},
            headers=headers,
            timeout=5,
        ).json()
        pages.append(page)
        token = page["next_page_token"]
        if not token:
            break

    assert [len(page["meetings"]) for page in pages] == [3, 1]
    assert all(page["total_records"] == 4 and page["page_size"] == 3 for page in pages)
    listed = {meeting["agenda"] for page in pages for meeting in page["meetings"]}
    assert listed == {"session:1", "session:2", "session:3", "session:4"}


def test_zoom_patch_and_delete_answer_204_with_no_body(sandbox):
    headers = zoom_headers(sandbox)
    meeting_id = requests.post(
        f"{sandbox.url}/v2/users/me/meetings", json=zoom_body(), headers=headers, timeout=5
    ).json()["id"]
    meeting_url = f"{sandbox.url}/v2/meetings/{meeting_id}"

    patched = requests.patch(
        meeting_url, json={"topic": "Mock interview", "start_time": "2099-12-02T03:00:00Z"}, headers=headers, timeout=5
    )
    fetched = requests.get(meeting_url, headers=headers, timeout=5).json()
    deleted = requests.delete(meeting_url, headers=headers, timeout=5)

    assert patched.status_code == 204 and patched.content == b""
    assert fetched["topic"] == "Mock interview" and fetched["start_time"] == "2099-12-02T03:00:00Z"
    assert deleted.status_code == 204 and deleted.content == b""
    assert sandbox_meetings(sandbox)[0]["status"] == "cancelled"


def test_zoom_deleting_twice_answers_meeting_does_not_exist(sandbox):
    headers = zoom_headers(sandbox)
    meeting_id = requests.post(
        f"{sandbox.url}/v2/users/me/meetings", json=zoom_body(), headers=headers, timeout=5
    ).json()["id"]

    requests.delete(f"{sandbox.url}/v2/meetings/{meeting_id}", headers=headers, timeout=5)
    second = requests.delete(f"{sandbox.url}/v2/meetings/{meeting_id}", headers=headers, timeout=5)
    fetched = requests.get(f"{sandbox.url}/v2/meetings/{meeting_id}", headers=headers, timeout=5)

    assert second.status_code == 404
    assert second.json() == {"code": 3001, "message": f"Meeting does not exist: {meeting_id}."}
    assert fetched.status_code == 404 and fetched.json()["code"] == 3001


# --- calendars ----------------------------------------------------------------------------------------


def test_google_insert_patch_delete_and_gone_on_second_delete(sandbox):
    events_url = f"{sandbox.url}/calendar/v3/calendars/mentor%40example.com/events"

    inserted = requests.post(
        events_url, params={"sendUpdates": "all"}, json=google_event(), headers=google_headers(), timeout=5
    )
    event_url = f"{events_url}/{inserted.json()['id']}"
    patched = requests.patch(event_url, json={"summary": "Mock interview"}, headers=google_headers(), timeout=5)
    deleted = requests.delete(event_url, headers=google_headers(), timeout=5)
    deleted_again = requests.delete(event_url, headers=google_headers(), timeout=5)
    unknown = requests.delete(f"{events_url}/unknownevent1", headers=google_headers(), timeout=5)

    assert inserted.status_code == 200 and inserted.json()["status"] == "confirmed"
    assert patched.status_code == 200 and patched.json()["summary"] == "Mock interview"
    assert deleted.status_code == 204 and deleted.content == b""
    assert deleted_again.status_code == 410 and deleted_again.json()["error"]["errors"][0]["reason"] == "deleted"
    assert unknown.status_code == 404 and unknown.json()["error"]["code"] == 404
    events = requests.get(f"{sandbox.url}/_sandbox/calendar-events", timeout=5).json()["events"]
    assert events == [
        {
            "provider": "google",
            "calendarId": "mentor@example.com",
            "id": inserted.json()["id"],
            "status": "cancelled",
            "summary": "Mock interview",
            "start": "2099-12-01T02:00:00Z",
            "end": "2099-12-01T03:00:00Z",
            "meetingUrl": "https://zoom.us/j/81234567890",
            "attendees": ["mentor@example.com"],
            "reminders": [],
        }
    ]


def test_google_insert_with_an_id_already_used_answers_409(sandbox):
    events_url = f"{sandbox.url}/calendar/v3/calendars/primary/events"

    first = requests.post(events_url, json=google_event("session0123abc"), headers=google_headers(), timeout=5)
    again = requests.post(events_url, json=google_event("session0123abc"), headers=google_headers(), timeout=5)

    assert first.status_code == 200 and first.json()["id"] == "session0123abc"
    assert again.status_code == 409 and again.json()["error"]["errors"][0]["reason"] == "duplicate"
    assert len(requests.get(f"{sandbox.url}/_sandbox/calendar-events", timeout=5).json()["events"]) == 1


def test_feishu_calendar_event_with_the_same_idempotency_key_is_made_once(sandbox):
    headers = feishu_headers(sandbox)
    events_url = f"{sandbox.url}/open-apis/calendar/v4/calendars/cal_mentor/events"
    start = unix_in(48)
    body = {
        "summary": "Resume review",
        "start_time": {"timestamp": str(start), "timezone": "Asia/Shanghai"},
        "end_time": {"timestamp": str(start + 3600), "timezone": "Asia/Shanghai"},
        "vchat": {"vc_type": "third_party", "meeting_url": "https://vc.feishu.cn/j/123456789"},
        "reminders": [{"minutes": 60}],
    }

    first = requests.post(events_url, params={"idempotency_key": "key-1"}, json=body, headers=headers, timeout=5)
    again = requests.post(events_url, params={"idempotency_key": "key-1"}, json=body, headers=headers, timeout=5)
    event_id = first.json()["data"]["event"]["event_id"]
    added = requests.post(
        f"{events_url}/{event_id}/attendees",
        json={"attendees": [{"type": "user", "user_id": "ou_student"}]},
        headers=headers,
        timeout=5,
    )

    assert first.json()["code"] == 0 and again.json()["code"] == 0
    assert again.json()["data"]["event"]["event_id"] == event_id
    assert added.json()["code"] == 0
    events = requests.get(f"{sandbox.url}/_sandbox/calendar-events", timeout=5).json()["events"]
    assert len(events) == 1
    assert events[0]["provider"] == "feishu" and events[0]["status"] == "confirmed"
    assert events[0]["meetingUrl"] == "https://vc.feishu.cn/j/123456789"
    assert events[0]["attendees"] == ["ou_student"]

    patched = requests.patch(f"{events_url}/{event_id}", json={"summary": "Moved"}, headers=headers, timeout=5)
    deleted = requests.delete(f"{events_url}/{event_id}", headers=headers, timeout=5)

    assert patched.json()["data"]["event"]["summary"] == "Moved"
    assert deleted.json()["code"] == 0
    assert requests.get(f"{sandbox.url}/_sandbox/calendar-events", timeout=5).json()["events"][0]["status"] == (
        "cancelled"
    )


# --- failures, latency, tokens, reset -----------------------------------------------------------------


def test_fail_next_fails_exactly_that_many_creates_then_succeeds(sandbox):
    headers = feishu_headers(sandbox)
    configure(sandbox, failNext={"create": 2})

    answers = [apply_reserve(sandbox, headers) for _ in range(3)]

    assert [answer.status_code for answer in answers] == [500, 500, 200]
    assert all(answer.json()["code"] != 0 for answer in answers[:2])
    assert len(sandbox_meetings(sandbox)) == 1
    assert requests.get(f"{sandbox.url}/_sandbox/requests", timeout=5).json()["create"] == 3
    assert configure(sandbox)["failNext"]["create"] == 0


def test_injected_429_says_when_to_retry(sandbox):
    feishu, zoom = feishu_headers(sandbox), zoom_headers(sandbox)
    configure(sandbox, failStatus=429, failNext={"create": 2})

    feishu_answer = apply_reserve(sandbox, feishu)
    zoom_answer = requests.post(f"{sandbox.url}/v2/users/me/meetings", json=zoom_body(), headers=zoom, timeout=5)

    assert feishu_answer.status_code == 429
    assert feishu_answer.headers["Retry-After"] == "1" and feishu_answer.headers["X-Ogw-Ratelimit-Reset"] == "1"
    assert feishu_answer.json()["code"] == 99991400
    assert zoom_answer.status_code == 429 and zoom_answer.headers["Retry-After"] == "1"
    assert zoom_answer.json()["code"] == 429 and zoom_answer.json()["message"]
    assert sandbox_meetings(sandbox) == []


def test_fail_rate_one_fails_every_provider_call_but_not_tokens_or_control(sandbox):
    configure(sandbox, failRate=1.0)
    feishu = feishu_headers(sandbox)
    zoom = zoom_headers(sandbox)

    answers = [
        apply_reserve(sandbox, feishu),
        requests.post(f"{sandbox.url}/v2/users/me/meetings", json=zoom_body(), headers=zoom, timeout=5),
        requests.post(
            f"{sandbox.url}/calendar/v3/calendars/primary/events",
            json=google_event(),
            headers=google_headers(),
            timeout=5,
        ),
    ]

    assert [answer.status_code for answer in answers] == [500, 500, 500]
    assert answers[2].json()["error"]["code"] == 500
    assert sandbox_meetings(sandbox) == []
    assert requests.get(f"{sandbox.url}/_sandbox/calendar-events", timeout=5).json()["events"] == []


def test_fail_provider_limits_injected_failures_to_that_providers_calls(sandbox):
    configure(sandbox, failRate=1.0, failProvider="google")
    events_url = f"{sandbox.url}/calendar/v3/calendars/primary/events"

    google = requests.post(events_url, json=google_event(), headers=google_headers(), timeout=5)
    feishu = apply_reserve(sandbox, feishu_headers(sandbox))

    assert google.status_code == 500 and google.json()["error"]["errors"][0]["reason"] == "backendError"
    assert feishu.status_code == 200
    assert [meeting["provider"] for meeting in sandbox_meetings(sandbox)] == ["feishu"]
    assert requests.post(f"{sandbox.url}/_sandbox/config", json={"failProvider": "teams"}, timeout=5).status_code == 400


def test_expire_tokens_invalidates_every_issued_token_until_the_client_refreshes(sandbox):
    feishu, zoom = feishu_headers(sandbox), zoom_headers(sandbox)
    configure(sandbox, expireTokens=True)

    stale_feishu = apply_reserve(sandbox, feishu)
    stale_zoom = requests.post(f"{sandbox.url}/v2/users/me/meetings", json=zoom_body(), headers=zoom, timeout=5)
    fresh_feishu = apply_reserve(sandbox, feishu_headers(sandbox))

    assert stale_feishu.status_code == 401 and stale_feishu.json()["code"] == 99991663
    assert stale_zoom.status_code == 401 and stale_zoom.json()["code"] == 124
    assert fresh_feishu.status_code == 200


def test_reset_forgets_everything_and_restores_the_start_up_config():
    with ProviderSandbox(latency_ms=5, fail_rate=0.0) as sandbox:
        apply_reserve(sandbox, feishu_headers(sandbox))
        configure(sandbox, latencyMs=0, failRate=0.5, failStatus=503, failNext={"cancel": 4})

        reset = requests.post(f"{sandbox.url}/_sandbox/reset", timeout=5)

        assert reset.status_code == 200
        expected = {
            "latencyMs": 5,
            "failRate": 0.0,
            "failStatus": 500,
            "failNext": {"create": 0, "update": 0, "cancel": 0, "calendar": 0, "read": 0},
            "failProvider": None,
        }
        assert requests.get(f"{sandbox.url}/_sandbox/config", timeout=5).json() == expected
        assert sandbox_meetings(sandbox) == []
        assert set(requests.get(f"{sandbox.url}/_sandbox/requests", timeout=5).json().values()) == {0}


def test_config_refuses_settings_it_does_not_know(sandbox):
    response = requests.post(f"{sandbox.url}/_sandbox/config", json={"failRate": 2}, timeout=5)

    assert response.status_code == 400
    assert response.json()["error"]["code"] == "VALIDATION_ERROR"


def test_unknown_paths_answer_404_json(sandbox):
    response = requests.get(f"{sandbox.url}/open-apis/nothing/here", timeout=5)

    assert response.status_code == 404
    assert response.json()["error"]["code"] == "NOT_FOUND"


def test_a_create_whose_caller_gave_up_during_the_latency_still_happens(sandbox):
    headers = zoom_headers(sandbox)
    configure(sandbox, latencyMs=400)

    with pytest.raises(requests.Timeout):
        requests.post(f"{sandbox.url}/v2/users/me/meetings", json=zoom_body(), headers=headers, timeout=0.1)

    deadline = time.monotonic() + 5
    while not sandbox_meetings(sandbox) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert [meeting["status"] for meeting in sandbox_meetings(sandbox)] == ["active"]


def test_500_concurrent_slow_requests_are_served_side_by_side(sandbox):
    headers = zoom_headers(sandbox)
    configure(sandbox, latencyMs=1000)

    def create(n: int) -> int:
        body = zoom_body(agenda=f"session:{n}")
        return requests.post(f"{sandbox.url}/v2/users/me/meetings", json=body, headers=headers, timeout=60).status_code

    started = time.monotonic()
    with ThreadPoolExecutor(max_workers=500) as pool:
        statuses = list(pool.map(create, range(500)))
    elapsed = time.monotonic() - started

    assert statuses == [201] * 500
    # One at a time would take 500 s; this bound only catches a server that does not serve concurrently.
    assert elapsed < 30, elapsed
    assert len(sandbox_meetings(sandbox)) == 500


# --- the management command ---------------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_run_provider_sandbox_command_serves_until_terminated():
    port = _free_port()
    process = subprocess.Popen(
        [sys.executable, "manage.py", "run_provider_sandbox", "--port", str(port)],
        cwd=PROJECT_ROOT,
        env={**os.environ, "DJANGO_SETTINGS_MODULE": "booking_project.settings"},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        answer, deadline = None, time.monotonic() + 30
        while answer is None and time.monotonic() < deadline and process.poll() is None:
            try:
                answer = requests.get(f"http://127.0.0.1:{port}/_sandbox/meetings", timeout=1)
            except requests.ConnectionError:
                time.sleep(0.1)

        assert answer is not None, process.stderr.read() if process.poll() is not None else "no answer"
        assert answer.status_code == 200 and answer.json() == {"meetings": []}
    finally:
        process.terminate()
        stdout, stderr = process.communicate(timeout=10)

    assert process.returncode == 0, stderr
    assert f"http://127.0.0.1:{port}" in stdout
