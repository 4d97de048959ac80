"""A provider's webhook moves the session of its meeting (sessions_app.life.session_meeting_reported, registered
with meetings_app's meeting_listener): started → IN_PROGRESS with startedAt, ended → COMPLETED with endedAt."""

import json
from datetime import UTC, datetime

import pytest
from rest_framework.test import APIClient

from holds_app.models import Hold, HoldStatus
from sessions_app.models import SessionStatus
from tests.webhooks.conftest import FEISHU_TOKEN, feishu_event, feishu_post

pytestmark = pytest.mark.django_db

STARTED = "vc.meeting.all_meeting_started_v1"
ENDED = "vc.meeting.all_meeting_ended_v1"


@pytest.fixture(autouse=True)
def feishu_token(settings):
    settings.FEISHU_EVENT_VERIFICATION_TOKEN = FEISHU_TOKEN
    settings.FEISHU_EVENT_ENCRYPT_KEY = ""


def test_started_then_ended_events_start_and_complete_the_session(scheduled):
    session = scheduled()
    number = session.meeting.meeting_no

    started = feishu_post(APIClient(), json.dumps(feishu_event(STARTED, number, start_time="1796090460")).encode())
    session.refresh_from_db()
    assert started.status_code == 200
    assert session.status == SessionStatus.IN_PROGRESS
    assert session.started_at == datetime.fromtimestamp(1796090460, UTC)

    ended = feishu_post(APIClient(), json.dumps(feishu_event(ENDED, number, end_time="1796093940")).encode())
    session.refresh_from_db()
    assert ended.status_code == 200
    assert session.status == SessionStatus.COMPLETED
    assert session.ended_at == datetime.fromtimestamp(1796093940, UTC)
    assert Hold.objects.get(session_id=session.id).status == HoldStatus.CONSUMED


def test_an_end_without_a_start_completes_a_scheduled_session(scheduled):
    session = scheduled()

    feishu_post(APIClient(), json.dumps(feishu_event(ENDED, session.meeting.meeting_no)).encode())

    session.refresh_from_db()
    assert session.status == SessionStatus.COMPLETED and session.ended_at is not None
