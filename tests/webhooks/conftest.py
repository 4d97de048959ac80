"""Webhook requests as the providers send them: raw bytes, signed with the secrets set here."""

import base64
import hashlib
import hmac
import json
import os
import time
import uuid
from datetime import timedelta

import pytest
from django.utils import timezone
from rest_framework.test import APIClient

from meetings_app.models import Meeting, MeetingProvider
from meetings_app.provider_events import meeting_listener, meeting_listener_remove

ZOOM_URL = "/api/providers/zoom/events"
FEISHU_URL = "/api/providers/feishu/events"
ZOOM_SECRET = "zoom-secret-token-for-tests"
FEISHU_TOKEN = "feishu-verification-token-for-tests"
FEISHU_KEY = "feishu-encrypt-key-for-tests"


@pytest.fixture(autouse=True)
def webhook_secrets(settings):
    settings.ZOOM_WEBHOOK_SECRET_TOKEN = ZOOM_SECRET
    settings.FEISHU_EVENT_VERIFICATION_TOKEN = FEISHU_TOKEN
    settings.FEISHU_EVENT_ENCRYPT_KEY = ""
    settings.THROTTLE_PROVIDER_EVENTS_RATE = "none"
    return settings


@pytest.fixture
def heard():
    """What a listener registered for the test heard: [(meeting id, happened, at)]."""
    calls = []

    def listener(*, meeting, happened, at):
        calls.append((meeting.id, happened, at))

    meeting_listener(listener)
    yield calls
    meeting_listener_remove(listener)


def zoom_meeting(**fields) -> Meeting:
    number = fields.pop("provider_meeting_id", str(80_000_000_000 + uuid.uuid4().int % 10_000_000_000))
    return Meeting.objects.create(
        provider=MeetingProvider.ZOOM,
        provider_meeting_id=number,
        meeting_no=number,
        join_url=f"https://zoom.us/j/{number}",
        start_time=timezone.now() + timedelta(hours=1),
        duration_minutes=60,
        topic="Resume review",
        **fields,
    )


def feishu_meeting(meeting_no: str, **fields) -> Meeting:
    return Meeting.objects.create(
        provider=MeetingProvider.FEISHU,
        provider_meeting_id=fields.pop("provider_meeting_id", f"calendar:cal|{uuid.uuid4()}_0"),
        meeting_no=meeting_no,
        join_url=f"https://vc.feishu.cn/j/{meeting_no}",
        start_time=timezone.now() + timedelta(hours=1),
        duration_minutes=60,
        topic="Resume review",
        **fields,
    )


def zoom_body(event: str, meeting_id, *, event_ts: int | None = None, **object_fields) -> bytes:
    body = {
        "event": event,
        "event_ts": event_ts if event_ts is not None else int(time.time() * 1000),
        "payload": {
            "account_id": "acc",
            "object": {"id": meeting_id, "uuid": f"uuid-{meeting_id}==", "host_id": "h", "topic": "t", **object_fields},
        },
    }
    return json.dumps(body).encode()


def zoom_post(client: APIClient, raw: bytes, *, secret: str = ZOOM_SECRET, timestamp: int | None = None, **extra):
    ts = str(timestamp if timestamp is not None else int(time.time()))
    signature = "v0=" + hmac.new(secret.encode(), f"v0:{ts}:".encode() + raw, hashlib.sha256).hexdigest()
    return client.post(
        ZOOM_URL,
        raw,
        content_type="application/json",
        HTTP_X_ZM_REQUEST_TIMESTAMP=ts,
        HTTP_X_ZM_SIGNATURE=signature,
        **extra,
    )


def feishu_event(
    event_type: str, meeting_no: str, *, event_id: str | None = None, token: str = FEISHU_TOKEN, **meeting
):
    return {
        "schema": "2.0",
        "header": {
            "event_id": event_id or uuid.uuid4().hex,
            "event_type": event_type,
            "create_time": str(int(time.time() * 1000)),
            "token": token,
            "app_id": "cli_test",
            "tenant_key": "t",
        },
        "event": {"meeting": {"id": "69xxx", "topic": "t", "meeting_no": meeting_no, **meeting}},
    }


def feishu_encrypt(plain: bytes, key: str = FEISHU_KEY) -> str:
    from cryptography.hazmat.primitives import padding
    from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

    iv = os.urandom(16)
    padder = padding.PKCS7(128).padder()
    padded = padder.update(plain) + padder.finalize()
    encryptor = Cipher(algorithms.AES(hashlib.sha256(key.encode()).digest()), modes.CBC(iv)).encryptor()
    return base64.b64encode(iv + encryptor.update(padded) + encryptor.finalize()).decode()


def feishu_post(client: APIClient, raw: bytes, *, key: str | None = None, timestamp: int | None = None, **extra):
    headers = {}
    if key is not None:
        ts, nonce = str(timestamp if timestamp is not None else int(time.time())), uuid.uuid4().hex
        signature = hashlib.sha256(ts.encode() + nonce.encode() + key.encode() + raw).hexdigest()
        headers = {
            "HTTP_X_LARK_REQUEST_TIMESTAMP": ts,
            "HTTP_X_LARK_REQUEST_NONCE": nonce,
            "HTTP_X_LARK_SIGNATURE": signature,
        }
    return client.post(FEISHU_URL, raw, content_type="application/json", **headers, **extra)
