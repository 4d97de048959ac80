"""The providers' webhooks, as Zoom and Feishu send them: `POST /_sandbox/meetings/{id}/start` and `/end` make the
sandbox send the meeting's started / ended event to the app (PROVIDERS.md "Webhooks", "Event subscription").

`--events-url` is the app's base URL: Zoom's events go to `{url}/api/providers/zoom/events`, Feishu's to
`{url}/api/providers/feishu/events`, signed with the same secrets the app checks:
- Zoom: `x-zm-request-timestamp` (Unix seconds) and `x-zm-signature: v0=<hex HMAC-SHA256(secret token,
  "v0:{timestamp}:{raw body}")>`;
- Feishu: the v2 schema with `header.token` = the Verification Token; with an Encrypt Key the body is
  `{"encrypt": base64(IV + AES-256-CBC(SHA-256(key), PKCS#7(event)))}` and `X-Lark-Signature` = hex SHA-256 of
  timestamp + nonce + key + raw body.

Written apart from the app's checks (meetings_app/event_verification.py), so a test that has one verify the
other catches a mistake in either. Standard library only, except AES, which only an Encrypt Key needs.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import secrets
import time
import urllib.error
import urllib.request
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime

from meetings_app.sandbox.state import Meeting, Reply, SandboxState, control_error, iso_utc

ZOOM_EVENTS_PATH = "/api/providers/zoom/events"
FEISHU_EVENTS_PATH = "/api/providers/feishu/events"
ZOOM_EVENT_TYPES = {"started": "meeting.started", "ended": "meeting.ended"}
FEISHU_EVENT_TYPES = {"started": "vc.meeting.all_meeting_started_v1", "ended": "vc.meeting.all_meeting_ended_v1"}
SANDBOX_ZOOM_ACCOUNT_ID = "sandboxAccount01"
SANDBOX_FEISHU_APP_ID = "cli_sandbox"
DELIVERY_TIMEOUT_SECONDS = 10.0


@dataclass(frozen=True)
class EventTarget:
    """Where the sandbox sends the providers' events, and the secrets it signs them with."""

    url: str = ""  # the app's base URL; empty: events are not sent
    zoom_secret_token: str = ""
    feishu_verification_token: str = ""
    feishu_encrypt_key: str = ""


@dataclass
class Delivery:
    """One webhook request, exactly as it goes out."""

    url: str
    headers: dict[str, str]
    body: bytes = field(repr=False)


def zoom_delivery(
    meeting: Meeting, happened: str, *, target: EventTarget, now: float, run: dict[str, float] | None = None
) -> Delivery:
    """The Zoom event; `run` holds when the meeting really started (and ended), default now."""
    resource = meeting.resource
    run = run or {}
    meeting_object = {
        "id": resource["id"],
        "uuid": resource["uuid"],
        "host_id": resource["host_id"],
        "topic": resource["topic"],
        "type": resource["type"],
        "start_time": _iso(run.get("started", now)),
        "duration": resource["duration"],
        "timezone": resource.get("timezone", "UTC"),
    }
    if happened == "ended":
        meeting_object["end_time"] = _iso(run.get("ended", now))
    event = {
        "event": ZOOM_EVENT_TYPES[happened],
        "event_ts": int(now * 1000),
        "payload": {"account_id": SANDBOX_ZOOM_ACCOUNT_ID, "object": meeting_object},
    }
    body = json.dumps(event).encode()
    timestamp = str(int(now))
    digest = hmac.new(target.zoom_secret_token.encode(), f"v0:{timestamp}:".encode() + body, hashlib.sha256).hexdigest()
    headers = {
        "Content-Type": "application/json; charset=utf-8",
        "User-Agent": "Zoom Marketplace/1.0a",
        "x-zm-request-timestamp": timestamp,
        "x-zm-signature": f"v0={digest}",
    }
    return Delivery(target.url.rstrip("/") + ZOOM_EVENTS_PATH, headers, body)


def feishu_encrypt(plain: bytes, *, encrypt_key: str) -> str:
    from cryptography.hazmat.primitives import padding
    from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

    iv = os.urandom(16)
    padder = padding.PKCS7(128).padder()
    padded = padder.update(plain) + padder.finalize()
    encryptor = Cipher(algorithms.AES(hashlib.sha256(encrypt_key.encode()).digest()), modes.CBC(iv)).encryptor()
    return base64.b64encode(iv + encryptor.update(padded) + encryptor.finalize()).decode()


def feishu_delivery(
    meeting: Meeting, happened: str, *, target: EventTarget, now: float, run: dict[str, float] | None = None
) -> Delivery:
    """The Feishu event (v2 schema); `run` as for Zoom."""
    resource = meeting.resource
    run = run or {}
    topic = resource.get("topic") if meeting.source == "calendar" else resource["meeting_settings"].get("topic")
    owner = resource.get("owner_id") or resource.get("reserve_user_id") or ""
    meeting_event = {
        "id": meeting.id,
        "topic": topic or "",
        "meeting_no": resource["meeting_no"],
        "start_time": str(int(run.get("started", now))),
        "host_user": {"id": {"open_id": owner}, "user_role": 1, "user_type": 1},
        "owner": {"id": {"open_id": owner}, "user_role": 1, "user_type": 1},
    }
    if happened == "ended":
        meeting_event["end_time"] = str(int(run.get("ended", now)))
    event = {
        "schema": "2.0",
        "header": {
            "event_id": uuid.uuid4().hex,
            "event_type": FEISHU_EVENT_TYPES[happened],
            "create_time": str(int(now * 1000)),
            "token": target.feishu_verification_token,
            "app_id": SANDBOX_FEISHU_APP_ID,
            "tenant_key": "sandbox_tenant",
        },
        "event": {"meeting": meeting_event},
    }
    plain = json.dumps(event).encode()
    timestamp, nonce = str(int(now)), secrets.token_hex(8)
    headers = {
        "Content-Type": "application/json; charset=utf-8",
        "User-Agent": "Go-http-client/1.1",
        "X-Lark-Request-Timestamp": timestamp,
        "X-Lark-Request-Nonce": nonce,
    }
    body = plain
    if target.feishu_encrypt_key:
        body = json.dumps({"encrypt": feishu_encrypt(plain, encrypt_key=target.feishu_encrypt_key)}).encode()
        headers["X-Lark-Signature"] = hashlib.sha256(
            timestamp.encode() + nonce.encode() + target.feishu_encrypt_key.encode() + body
        ).hexdigest()
    return Delivery(target.url.rstrip("/") + FEISHU_EVENTS_PATH, headers, body)


def deliver(delivery: Delivery, *, timeout: float = DELIVERY_TIMEOUT_SECONDS) -> tuple[int, object]:
    """POST the webhook; the app's status and its answer (JSON when it is JSON)."""
    request = urllib.request.Request(delivery.url, data=delivery.body, headers=delivery.headers, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            status, raw = response.status, response.read()
    except urllib.error.HTTPError as error:
        status, raw = error.code, error.read()
    try:
        return status, json.loads(raw)
    except ValueError:
        return status, raw.decode(errors="replace")


def _meeting_by_id(state: SandboxState, meeting_id: str) -> Meeting | None:
    for (provider, key), meeting in state.meetings.items():
        if key == meeting_id and provider in ("zoom", "feishu"):
            return meeting
    return None


def meeting_event_send(state: SandboxState, meeting_id: str, happened: str) -> Reply:
    """`POST /_sandbox/meetings/{id}/start|end`: the meeting starts (or ends) and its provider tells the app."""
    target: EventTarget = state.event_target or EventTarget()
    if not target.url:
        return control_error(
            409, "NO_EVENTS_URL", "Start the sandbox with --events-url (the app's base URL) to send events."
        )
    now = time.time()
    with state.lock:
        meeting = _meeting_by_id(state, meeting_id)
        if meeting is None:
            return control_error(404, "NOT_FOUND", f"No meeting {meeting_id} in the sandbox.")
        if meeting.status != "active":
            return control_error(409, "INVALID_STATE", f"Meeting {meeting_id} is {meeting.status}.")
        run = _meeting_moves(state, meeting, happened, now)
        build = zoom_delivery if meeting.provider == "zoom" else feishu_delivery
        delivery = build(meeting, happened, target=target, now=now, run=run)
        provider = meeting.provider
    try:
        status, answer = deliver(delivery)
    except OSError as error:
        return control_error(502, "APP_UNREACHABLE", f"The app did not answer at {delivery.url}: {error}")
    return Reply(
        200,
        {
            "provider": provider,
            "meetingId": meeting_id,
            "happened": happened,
            "sent": {"url": delivery.url, "headers": delivery.headers, "body": delivery.body.decode()},
            "appStatus": status,
            "appAnswer": answer,
        },
    )


def _meeting_moves(state: SandboxState, meeting: Meeting, happened: str, now: float) -> dict[str, float]:
    """Note when the meeting really started or ended (so an end names the start it had); Zoom's own meeting
    says so in its status, as Zoom's API does."""
    run = state.meeting_runs.setdefault((meeting.provider, meeting.id), {})
    run[happened] = now
    if happened == "started":
        run.pop("ended", None)
    if meeting.provider == "zoom":
        meeting.resource["status"] = "started" if happened == "started" else "finished"
    return dict(run)


def _iso(seconds: float) -> str:
    return iso_utc(datetime.fromtimestamp(seconds, UTC))
