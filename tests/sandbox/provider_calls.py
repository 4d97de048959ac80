"""The provider calls the sandbox tests make, as the Feishu, Zoom and Google clients make them, and the
control API calls that set the sandbox up and read it back."""

from datetime import UTC, datetime, timedelta

import requests

RESERVE_APPLY = "/open-apis/vc/v1/reserves/apply?user_id_type=open_id"
FEISHU_EVENTS = "/open-apis/calendar/v4/calendars/cal_app/events"
GOOGLE_EVENTS = "/calendar/v3/calendars/mentor%40example.com/events"
# Feishu's idempotency_key is 32-128 characters; a UUID is what its docs suggest.
EVENT_KEY = "25fdf41b-8c80-2ce1-e94c-de8b5e7aa7e6"


def configure(sandbox, **settings) -> dict:
    response = requests.post(f"{sandbox.url}/_sandbox/config", json=settings, timeout=5)
    assert response.status_code == 200, response.text
    return response.json()


def config(sandbox) -> dict:
    return requests.get(f"{sandbox.url}/_sandbox/config", timeout=5).json()


def sandbox_meetings(sandbox) -> list[dict]:
    return requests.get(f"{sandbox.url}/_sandbox/meetings", timeout=5).json()["meetings"]


def sandbox_events(sandbox) -> list[dict]:
    return requests.get(f"{sandbox.url}/_sandbox/calendar-events", timeout=5).json()["events"]


def injected(sandbox) -> dict:
    return requests.get(f"{sandbox.url}/_sandbox/injected", timeout=5).json()


def feishu_headers(sandbox, timeout: float = 5) -> dict:
    response = requests.post(
        f"{sandbox.url}/open-apis/auth/v3/tenant_access_token/internal",
        json={"app_id": "cli_sandbox", "app_secret": "secret"},
        timeout=timeout,
    )
    return {"Authorization": f"Bearer {response.json()['tenant_access_token']}"}


def zoom_headers(sandbox, timeout: float = 5) -> dict:
    response = requests.post(
        f"{sandbox.url}/oauth/token",
        data={"grant_type": "account_credentials", "account_id": "acc"},
        auth=("client-id", "client-secret"),
        timeout=timeout,
    )
    return {"Authorization": f"Bearer {response.json()['access_token']}"}


GOOGLE_HEADERS = {"Authorization": "Bearer ya29.any-token-google-auth-gave-us"}


def unix_in(hours: float) -> int:
    return int((datetime.now(UTC) + timedelta(hours=hours)).timestamp())


def iso_in(hours: float) -> str:
    return (datetime.now(UTC) + timedelta(hours=hours)).strftime("%Y-%m-%dT%H:%M:%SZ")


def iso_of(unix: int) -> str:
    return datetime.fromtimestamp(unix, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def apply_reserve(sandbox, headers, **overrides) -> requests.Response:
    body = {"end_time": str(unix_in(48)), "owner_id": "ou_owner", "meeting_settings": {"topic": "Resume review"}}
    body.update(overrides)
    return requests.post(f"{sandbox.url}{RESERVE_APPLY}", json=body, headers=headers, timeout=5)


def zoom_body(topic="Resume review", start="2099-12-01T02:00:00Z", agenda="session:1", **overrides) -> dict:
    body = {"topic": topic, "type": 2, "start_time": start, "duration": 60, "timezone": "UTC", "agenda": agenda}
    body.update(overrides)
    return body


def create_zoom_meeting(sandbox, headers, timeout: float = 5, **body) -> requests.Response:
    return requests.post(
        f"{sandbox.url}/v2/users/me/meetings", json=zoom_body(**body), headers=headers, timeout=timeout
    )


def google_event(event_id=None, summary="Resume review") -> dict:
    body = {
        "summary": summary,
        "start": {"dateTime": "2099-12-01T10:00:00+08:00", "timeZone": "Asia/Shanghai"},
        "end": {"dateTime": "2099-12-01T11:00:00+08:00", "timeZone": "Asia/Shanghai"},
        "attendees": [{"email": "mentor@example.com"}],
    }
    if event_id:
        body["id"] = event_id
    return body


def feishu_event(start: int, end: int, summary="Resume review", vchat=None) -> dict:
    body = {
        "summary": summary,
        "description": "Session",
        "start_time": {"timestamp": str(start), "timezone": "Asia/Shanghai"},
        "end_time": {"timestamp": str(end), "timezone": "Asia/Shanghai"},
        "reminders": [{"minutes": 60}],
    }
    if vchat is not None:
        body["vchat"] = vchat
    return body
