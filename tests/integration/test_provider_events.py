"""The providers tell us when meetings really start and end: the sandbox sends Zoom's and Feishu's signed webhooks
to the stack's web line, and the session follows — IN_PROGRESS with startedAt, then COMPLETED with endedAt.
A forged, stale or replayed event changes nothing."""

import json
import time

import pytest
import requests

from holds_app.models import Hold, HoldStatus
from meetings_app.event_verification import zoom_signature
from meetings_app.models import ProviderEvent
from sessions_app.models import Session
from tests.integration.conftest import Sandbox
from tests.integration.test_provisioning_saga import book, read, session_settled
from tests.stack import STACK_SETTINGS

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]


@pytest.fixture(scope="module")
def web(stack):
    """The stack's web line, where the sandbox's --events-url points (started for this module only)."""
    stack.start_web()
    yield stack.web_url
    stack.stop("web")


def sandbox_meeting_id(sandbox, session_id: str) -> str:
    meeting = Session.objects.select_related("meeting").get(id=session_id).meeting
    return next(m["id"] for m in sandbox.meetings() if Sandbox.meeting_id_of(m) == meeting.provider_meeting_id)


def meeting_moves(sandbox, session_id: str, what: str) -> dict:
    meeting_id = sandbox_meeting_id(sandbox, session_id)
    response = requests.post(f"{sandbox.url}/_sandbox/meetings/{meeting_id}/{what}", timeout=15)
    assert response.status_code == 200, response.text
    return response.json()


def repost(sent: dict) -> requests.Response:
    """The same request again, byte for byte: what a replay (or a provider's redelivery) looks like."""
    return requests.post(sent["url"], data=sent["body"].encode(), headers=sent["headers"], timeout=10)


@pytest.mark.parametrize("provider", ["zoom", "feishu"])
def test_the_provider_s_events_start_and_complete_the_session(people, sandbox, web, provider):
    booked = book(people, provider=provider)
    session_settled(booked["sessionId"])

    started = meeting_moves(sandbox, booked["sessionId"], "start")

    assert started["appStatus"] == 200 and started["appAnswer"]["recorded"] is True
    running = read(people, booked["sessionId"])
    assert running["status"] == "IN_PROGRESS" and running["startedAt"] and running["endedAt"] is None

    ended = meeting_moves(sandbox, booked["sessionId"], "end")

    assert ended["appStatus"] == 200
    done = read(people, booked["sessionId"])
    assert done["status"] == "COMPLETED" and done["endedAt"] and done["startedAt"] == running["startedAt"]
    assert Hold.objects.get(session_id=booked["sessionId"]).status == HoldStatus.CONSUMED
    assert ProviderEvent.objects.filter(meeting__sessions__id=booked["sessionId"]).count() == 2


def test_a_forged_or_stale_zoom_event_changes_nothing(people, sandbox, web):
    booked = book(people, provider="zoom")
    session_settled(booked["sessionId"])
    zoom_id = sandbox_meeting_id(sandbox, booked["sessionId"])
    body = json.dumps(
        {"event": "meeting.started", "event_ts": int(time.time() * 1000), "payload": {"object": {"id": int(zoom_id)}}}
    ).encode()
    url = f"{web}/api/providers/zoom/events"
    now, ten_minutes_ago = str(int(time.time())), str(int(time.time()) - 600)
    secret = STACK_SETTINGS["ZOOM_WEBHOOK_SECRET_TOKEN"]

    forged = requests.post(
        url, data=body, headers={"x-zm-request-timestamp": now, "x-zm-signature": "v0=" + "ab" * 32}, timeout=10
    )
    stale = requests.post(
        url,
        data=body,
        headers={
            "x-zm-request-timestamp": ten_minutes_ago,
            "x-zm-signature": zoom_signature(secret, timestamp=ten_minutes_ago, raw_body=body),
        },
        timeout=10,
    )

    assert forged.status_code == 401 and forged.json()["error"]["code"] == "UNAUTHENTICATED"
    assert stale.status_code == 401 and stale.json()["error"]["code"] == "UNAUTHENTICATED"
    unchanged = read(people, booked["sessionId"])
    assert unchanged["status"] == "SCHEDULED" and unchanged["startedAt"] is None
    assert not ProviderEvent.objects.filter(provider="zoom", provider_reference=zoom_id).exists()


def test_a_replayed_start_after_the_end_changes_nothing(people, sandbox, web):
    booked = book(people, provider="feishu")
    session_settled(booked["sessionId"])
    started = meeting_moves(sandbox, booked["sessionId"], "start")
    meeting_moves(sandbox, booked["sessionId"], "end")
    done = read(people, booked["sessionId"])

    replayed = repost(started["sent"])

    assert replayed.status_code == 200 and replayed.json()["recorded"] is False
    assert read(people, booked["sessionId"]) == done
    assert ProviderEvent.objects.filter(meeting__sessions__id=booked["sessionId"]).count() == 2
