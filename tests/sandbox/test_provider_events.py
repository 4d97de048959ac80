"""The sandbox sends the providers' webhooks as they do: POST /_sandbox/meetings/{id}/start|end signs the event
with the configured secrets, and the app's own checks (meetings_app/event_verification.py) accept it."""

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import requests

from meetings_app.event_verification import EventRefused, feishu_request_open, zoom_request_verify
from meetings_app.providers.feishu import _meeting_no
from meetings_app.sandbox import EventTarget, ProviderSandbox
from tests.sandbox.provider_calls import (
    EVENT_KEY,
    FEISHU_EVENTS,
    apply_reserve,
    feishu_headers,
    unix_in,
    zoom_body,
    zoom_headers,
)

ZOOM_SECRET = "sandbox-zoom-secret"
FEISHU_TOKEN = "sandbox-feishu-token"
FEISHU_KEY = "sandbox-feishu-encrypt-key"


class App:
    """A stand-in for the app's webhook endpoints: keeps what it receives, answers 200."""

    def __init__(self):
        self.received: list[dict] = []
        app = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                app.received.append({"path": self.path, "headers": dict(self.headers), "body": raw})
                answer = json.dumps({"received": True}).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(answer)))
                self.end_headers()
                self.wfile.write(answer)

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def app():
    app = App()
    yield app
    app.close()


def sandbox_sending_to(app: App, *, encrypt_key: str = "") -> ProviderSandbox:
    target = EventTarget(
        url=app.url,
        zoom_secret_token=ZOOM_SECRET,
        feishu_verification_token=FEISHU_TOKEN,
        feishu_encrypt_key=encrypt_key,
    )
    return ProviderSandbox(port=0, event_target=target).start()


@pytest.fixture
def sandbox(app):
    server = sandbox_sending_to(app)
    yield server
    server.stop()


def zoom_meeting_id(sandbox) -> str:
    response = requests.post(
        f"{sandbox.url}/v2/users/me/meetings", json=zoom_body(), headers=zoom_headers(sandbox), timeout=5
    )
    return str(response.json()["id"])


def zoom_opened(received: dict, secret: str = ZOOM_SECRET) -> dict:
    headers = {name.lower(): value for name, value in received["headers"].items()}
    return zoom_request_verify(
        raw_body=received["body"],
        timestamp=headers.get("x-zm-request-timestamp"),
        signature=headers.get("x-zm-signature"),
        secret=secret,
        now=time.time(),
        max_age_seconds=300,
        refuse_empty=True,
    )


def feishu_opened(received: dict, *, encrypt_key: str = "", token: str = FEISHU_TOKEN) -> dict:
    headers = {name.lower(): value for name, value in received["headers"].items()}
    return feishu_request_open(
        raw_body=received["body"],
        timestamp=headers.get("x-lark-request-timestamp"),
        nonce=headers.get("x-lark-request-nonce"),
        signature=headers.get("x-lark-signature"),
        verification_token=token,
        encrypt_key=encrypt_key,
        now=time.time(),
        max_age_seconds=300,
        refuse_empty=True,
    )


def send(sandbox, meeting_id: str, what: str) -> requests.Response:
    return requests.post(f"{sandbox.url}/_sandbox/meetings/{meeting_id}/{what}", timeout=15)


def test_a_zoom_start_and_end_are_signed_as_zoom_signs_them(sandbox, app):
    meeting_id = zoom_meeting_id(sandbox)

    started = send(sandbox, meeting_id, "start")
    ended = send(sandbox, meeting_id, "end")

    assert started.status_code == 200 and started.json()["appStatus"] == 200
    assert started.json()["appAnswer"] == {"received": True}
    assert [r["path"] for r in app.received] == ["/api/providers/zoom/events"] * 2
    start_event, end_event = (zoom_opened(r) for r in app.received)
    assert start_event["event"] == "meeting.started" and end_event["event"] == "meeting.ended"
    assert str(start_event["payload"]["object"]["id"]) == meeting_id
    # The end names the start the meeting had, and when it ended.
    assert end_event["payload"]["object"]["start_time"] == start_event["payload"]["object"]["start_time"]
    assert end_event["payload"]["object"]["end_time"]
    assert ended.json()["sent"]["body"] == app.received[1]["body"].decode()


def test_a_zoom_event_signed_with_another_secret_is_refused_by_the_app_s_check(sandbox, app):
    send(sandbox, zoom_meeting_id(sandbox), "start")

    with pytest.raises(EventRefused):
        zoom_opened(app.received[0], secret="the-app-s-other-secret")


def test_a_feishu_calendar_meeting_s_event_carries_the_number_the_app_stores(sandbox, app):
    body = {
        "summary": "Resume review",
        "start_time": {"timestamp": str(unix_in(24))},
        "end_time": {"timestamp": str(unix_in(25))},
        "vchat": {"vc_type": "vc"},
    }
    created = requests.post(
        f"{sandbox.url}{FEISHU_EVENTS}?idempotency_key={EVENT_KEY}",
        json=body,
        headers=feishu_headers(sandbox),
        timeout=5,
    ).json()["data"]["event"]
    meeting = next(m for m in requests.get(f"{sandbox.url}/_sandbox/meetings", timeout=5).json()["meetings"])

    response = send(sandbox, meeting["id"], "start")

    assert response.status_code == 200 and app.received[0]["path"] == "/api/providers/feishu/events"
    event = feishu_opened(app.received[0])
    assert event["header"]["event_type"] == "vc.meeting.all_meeting_started_v1"
    assert event["header"]["token"] == FEISHU_TOKEN
    # What the app's Feishu client stores as the meeting's number, from the link the event answered.
    assert event["event"]["meeting"]["meeting_no"] == _meeting_no(created["vchat"]["meeting_url"])


def test_a_feishu_reservation_s_end_carries_its_number_and_times(sandbox, app):
    reserve = apply_reserve(sandbox, feishu_headers(sandbox)).json()["data"]["reserve"]

    send(sandbox, reserve["id"], "start")
    send(sandbox, reserve["id"], "end")

    start_event, end_event = (feishu_opened(r) for r in app.received)
    assert end_event["header"]["event_type"] == "vc.meeting.all_meeting_ended_v1"
    assert end_event["event"]["meeting"]["meeting_no"] == reserve["meeting_no"]
    assert end_event["event"]["meeting"]["start_time"] == start_event["event"]["meeting"]["start_time"]
    assert int(end_event["event"]["meeting"]["end_time"]) >= int(end_event["event"]["meeting"]["start_time"])
    assert start_event["header"]["event_id"] != end_event["header"]["event_id"]


def test_with_an_encrypt_key_feishu_events_are_encrypted_and_signed(app):
    sandbox = sandbox_sending_to(app, encrypt_key=FEISHU_KEY)
    try:
        reserve = apply_reserve(sandbox, feishu_headers(sandbox)).json()["data"]["reserve"]
        send(sandbox, reserve["id"], "start")
    finally:
        sandbox.stop()

    received = app.received[0]
    assert set(json.loads(received["body"])) == {"encrypt"}
    assert received["headers"]["X-Lark-Signature"]
    event = feishu_opened(received, encrypt_key=FEISHU_KEY)
    assert event["event"]["meeting"]["meeting_no"] == reserve["meeting_no"]
    with pytest.raises(EventRefused):
        feishu_opened(received, encrypt_key="another-key")


def test_an_unknown_or_cancelled_meeting_sends_nothing(sandbox, app):
    meeting_id = zoom_meeting_id(sandbox)
    requests.delete(f"{sandbox.url}/v2/meetings/{meeting_id}", headers=zoom_headers(sandbox), timeout=5)

    assert send(sandbox, "12345", "start").status_code == 404
    assert send(sandbox, meeting_id, "start").status_code == 409
    assert app.received == []


def test_without_an_events_url_the_sandbox_says_how_to_give_one():
    sandbox = ProviderSandbox(port=0).start()
    try:
        meeting_id = zoom_meeting_id(sandbox)
        response = send(sandbox, meeting_id, "start")
    finally:
        sandbox.stop()

    assert response.status_code == 409 and response.json()["error"]["code"] == "NO_EVENTS_URL"
