"""Feishu's event subscription (v2 schema): the URL check's challenge echoed, the Verification Token checked,
with an Encrypt Key the body decrypted and X-Lark-Signature checked; the meeting found by its number."""

import json
import time
from datetime import UTC, datetime

import pytest
from rest_framework.test import APIClient

from meetings_app.models import MeetingStatus, ProviderEvent
from tests.conftest import assert_error
from tests.webhooks.conftest import (
    FEISHU_KEY,
    FEISHU_TOKEN,
    feishu_encrypt,
    feishu_event,
    feishu_meeting,
    feishu_post,
)

pytestmark = pytest.mark.django_db

STARTED = "vc.meeting.all_meeting_started_v1"
ENDED = "vc.meeting.all_meeting_ended_v1"


def plain(value: dict) -> bytes:
    return json.dumps(value).encode()


def encrypted(value: dict, key: str = FEISHU_KEY) -> bytes:
    return json.dumps({"encrypt": feishu_encrypt(plain(value), key)}).encode()


def test_the_url_check_echoes_the_challenge():
    body = {"challenge": "ajls384kdjx98XX", "token": FEISHU_TOKEN, "type": "url_verification"}

    response = feishu_post(APIClient(), plain(body))

    assert response.status_code == 200 and response.json() == {"challenge": "ajls384kdjx98XX"}


def test_the_url_check_with_another_token_is_refused():
    body = {"challenge": "ajls384kdjx98XX", "token": "someone-else", "type": "url_verification"}

    assert_error(feishu_post(APIClient(), plain(body)), 401, "UNAUTHENTICATED")


def test_started_and_ended_reach_the_listener_with_feishu_s_times(heard):
    meeting = feishu_meeting("123456789")
    client = APIClient()

    started = feishu_post(client, plain(feishu_event(STARTED, "123456789", start_time="1796090460")))
    ended = feishu_post(client, plain(feishu_event(ENDED, "123456789", end_time="1796093940")))

    assert started.status_code == 200 and started.json() == {"received": True, "recorded": True}
    assert ended.status_code == 200
    assert heard == [
        (meeting.id, "started", datetime.fromtimestamp(1796090460, UTC)),
        (meeting.id, "ended", datetime.fromtimestamp(1796093940, UTC)),
    ]


def test_without_meeting_times_the_event_s_create_time_counts(heard):
    meeting = feishu_meeting("223456789")
    event = feishu_event(STARTED, "223456789")
    event["header"]["create_time"] = "1796090460123"

    feishu_post(APIClient(), plain(event))

    assert heard == [(meeting.id, "started", datetime.fromtimestamp(1796090460.123, UTC))]


def test_the_most_recent_active_meeting_with_the_number_is_the_one(heard):
    feishu_meeting("323456789", status=MeetingStatus.CANCELLED)
    older = feishu_meeting("323456789")
    newer = feishu_meeting("323456789")
    assert older.created_at <= newer.created_at

    feishu_post(APIClient(), plain(feishu_event(STARTED, "323456789")))

    assert [meeting_id for meeting_id, _, _ in heard] == [newer.id]


def test_a_token_mismatch_is_refused_and_changes_nothing(heard):
    feishu_meeting("423456789")

    response = feishu_post(APIClient(), plain(feishu_event(STARTED, "423456789", token="not-ours")))

    assert_error(response, 401, "UNAUTHENTICATED")
    assert heard == [] and not ProviderEvent.objects.exists()


def test_the_same_event_id_twice_changes_nothing_the_second_time(heard):
    feishu_meeting("523456789")
    body = plain(feishu_event(STARTED, "523456789", event_id="5e3702a84e847582be8db7fb73283c02"))

    first = feishu_post(APIClient(), body)
    again = feishu_post(APIClient(), body)

    assert first.json()["recorded"] is True
    assert again.status_code == 200 and again.json()["recorded"] is False
    assert len(heard) == 1 and ProviderEvent.objects.get().event_key == "5e3702a84e847582be8db7fb73283c02"


def test_an_unknown_meeting_number_answers_200_and_is_recorded(heard):
    response = feishu_post(APIClient(), plain(feishu_event(STARTED, "999999999")))

    assert response.status_code == 200 and heard == []
    assert ProviderEvent.objects.get().meeting_id is None


@pytest.mark.parametrize("raw", [b"{not json", b"[]", b"\xff", b""])
def test_a_malformed_body_is_400(raw):
    assert_error(feishu_post(APIClient(), raw), 400, "VALIDATION_ERROR")


def test_a_meeting_event_without_its_number_is_400():
    event = feishu_event(STARTED, "1")
    del event["event"]["meeting"]["meeting_no"]

    assert_error(feishu_post(APIClient(), plain(event)), 400, "VALIDATION_ERROR")
    assert not ProviderEvent.objects.exists()


class TestWithAnEncryptKey:
    @pytest.fixture(autouse=True)
    def encrypt_key(self, settings):
        settings.FEISHU_EVENT_ENCRYPT_KEY = FEISHU_KEY

    def test_an_encrypted_signed_event_is_opened_and_recorded(self, heard):
        meeting = feishu_meeting("623456789")

        response = feishu_post(APIClient(), encrypted(feishu_event(STARTED, "623456789")), key=FEISHU_KEY)

        assert response.status_code == 200 and response.json()["recorded"] is True
        assert [meeting_id for meeting_id, _, _ in heard] == [meeting.id]

    def test_the_encrypted_url_check_echoes_the_challenge(self):
        body = {"challenge": "c-1", "token": FEISHU_TOKEN, "type": "url_verification"}

        response = feishu_post(APIClient(), encrypted(body))

        assert response.status_code == 200 and response.json() == {"challenge": "c-1"}

    def test_a_wrong_signature_is_refused(self, heard):
        feishu_meeting("723456789")

        response = feishu_post(APIClient(), encrypted(feishu_event(STARTED, "723456789")), key="another-key")

        assert_error(response, 401, "UNAUTHENTICATED")
        assert heard == [] and not ProviderEvent.objects.exists()

    def test_a_stale_timestamp_is_refused(self, heard):
        feishu_meeting("823456789")

        response = feishu_post(
            APIClient(),
            encrypted(feishu_event(STARTED, "823456789")),
            key=FEISHU_KEY,
            timestamp=int(time.time()) - 301,
        )

        assert_error(response, 401, "UNAUTHENTICATED")
        assert heard == []

    def test_a_body_encrypted_with_another_key_is_refused(self, heard):
        raw = encrypted(feishu_event(STARTED, "923456789"), key="another-key")

        assert_error(feishu_post(APIClient(), raw, key=FEISHU_KEY), 401, "UNAUTHENTICATED")

    def test_a_plain_body_is_refused(self, heard):
        feishu_meeting("133456789")

        response = feishu_post(APIClient(), plain(feishu_event(STARTED, "133456789")), key=FEISHU_KEY)

        assert_error(response, 401, "UNAUTHENTICATED")
        assert heard == []


def test_production_without_a_token_refuses_everything(settings):
    settings.PRODUCTION = True
    settings.FEISHU_EVENT_VERIFICATION_TOKEN = ""
    body = {"challenge": "c", "token": "", "type": "url_verification"}

    assert_error(feishu_post(APIClient(), plain(body)), 401, "UNAUTHENTICATED")
