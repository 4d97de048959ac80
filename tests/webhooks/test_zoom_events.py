"""Zoom's webhook: signed on the raw body, fresh, once per event; meeting.started / meeting.ended reach the
listeners with the meeting and the time Zoom gave."""

import hashlib
import hmac
import json
import random
import time
from datetime import UTC, datetime

import pytest
from rest_framework.test import APIClient

from meetings_app.event_verification import zoom_signature
from meetings_app.models import ProviderEvent
from tests.conftest import assert_error
from tests.webhooks.conftest import ZOOM_SECRET, ZOOM_URL, zoom_body, zoom_meeting, zoom_post

pytestmark = pytest.mark.django_db


def test_url_validation_answers_the_hmac_of_the_plain_token():
    raw = json.dumps({"event": "endpoint.url_validation", "payload": {"plainToken": "qgg8vlvZRS6UYooatFL8Aw"}})

    response = zoom_post(APIClient(), raw.encode())

    expected = hmac.new(ZOOM_SECRET.encode(), b"qgg8vlvZRS6UYooatFL8Aw", hashlib.sha256).hexdigest()
    assert response.status_code == 200
    assert response.json() == {"plainToken": "qgg8vlvZRS6UYooatFL8Aw", "encryptedToken": expected}


def test_unsigned_url_validation_is_refused_since_its_answer_would_sign_anything():
    raw = json.dumps({"event": "endpoint.url_validation", "payload": {"plainToken": "v0:1:{}"}}).encode()

    response = APIClient().post(ZOOM_URL, raw, content_type="application/json")

    assert_error(response, 401, "UNAUTHENTICATED")


def test_meeting_started_and_ended_reach_the_listener_with_zoom_s_times(heard):
    meeting = zoom_meeting()
    client = APIClient()

    started = zoom_post(
        client, zoom_body("meeting.started", int(meeting.provider_meeting_id), start_time="2026-12-01T02:01:00Z")
    )
    ended = zoom_post(
        client, zoom_body("meeting.ended", int(meeting.provider_meeting_id), end_time="2026-12-01T02:59:30Z")
    )

    assert started.status_code == 200 and started.json() == {"received": True, "recorded": True}
    assert ended.status_code == 200
    assert heard == [
        (meeting.id, "started", datetime(2026, 12, 1, 2, 1, tzinfo=UTC)),
        (meeting.id, "ended", datetime(2026, 12, 1, 2, 59, 30, tzinfo=UTC)),
    ]
    assert list(ProviderEvent.objects.order_by("id").values_list("kind", "meeting_id")) == [
        ("started", meeting.id),
        ("ended", meeting.id),
    ]


def test_without_object_times_the_event_time_counts(heard):
    meeting = zoom_meeting()

    zoom_post(APIClient(), zoom_body("meeting.started", meeting.provider_meeting_id, event_ts=1_796_090_460_000))

    assert heard == [(meeting.id, "started", datetime.fromtimestamp(1_796_090_460, UTC))]


def test_a_wrong_signature_is_refused_and_changes_nothing(heard):
    meeting = zoom_meeting()

    response = zoom_post(APIClient(), zoom_body("meeting.started", meeting.provider_meeting_id), secret="not-it")

    assert_error(response, 401, "UNAUTHENTICATED")
    assert heard == [] and not ProviderEvent.objects.exists()


def test_a_tampered_body_is_refused(heard):
    meeting = zoom_meeting()
    timestamp = str(int(time.time()))
    signed_for_another_body = zoom_signature(ZOOM_SECRET, timestamp=timestamp, raw_body=b"{}")
    response = APIClient().post(
        ZOOM_URL,
        zoom_body("meeting.started", meeting.provider_meeting_id),
        content_type="application/json",
        HTTP_X_ZM_REQUEST_TIMESTAMP=timestamp,
        HTTP_X_ZM_SIGNATURE=signed_for_another_body,
    )

    assert_error(response, 401, "UNAUTHENTICATED")
    assert heard == []


@pytest.mark.parametrize("skew", [-301, 301])
def test_a_stale_or_future_timestamp_is_refused(heard, skew):
    meeting = zoom_meeting()

    response = zoom_post(
        APIClient(), zoom_body("meeting.started", meeting.provider_meeting_id), timestamp=int(time.time()) + skew
    )

    assert_error(response, 401, "UNAUTHENTICATED")
    assert heard == [] and not ProviderEvent.objects.exists()


def test_the_same_event_twice_changes_nothing_the_second_time(heard):
    meeting = zoom_meeting()
    raw = zoom_body("meeting.started", meeting.provider_meeting_id, start_time="2026-12-01T02:01:00Z")

    first = zoom_post(APIClient(), raw)
    again = zoom_post(APIClient(), raw)  # Zoom's retry: same body, a new timestamp and signature

    assert first.json()["recorded"] is True
    assert again.status_code == 200 and again.json() == {"received": True, "recorded": False}
    assert len(heard) == 1 and ProviderEvent.objects.count() == 1


def test_an_unknown_meeting_answers_200_and_is_recorded_for_operators(heard):
    response = zoom_post(APIClient(), zoom_body("meeting.started", 81234567890))

    assert response.status_code == 200
    assert heard == []
    event = ProviderEvent.objects.get()
    assert (event.provider, event.provider_reference, event.meeting_id) == ("zoom", "81234567890", None)


def test_other_events_are_answered_and_ignored(heard):
    response = zoom_post(APIClient(), zoom_body("meeting.participant_joined", 81234567890))

    assert response.status_code == 200 and response.json()["recorded"] is False
    assert not ProviderEvent.objects.exists()


@pytest.mark.parametrize("raw", [b"{not json", b"[1, 2]", b"\xff\xfe", b"", b'{"event": "\\ud800"}'])
def test_a_signed_malformed_body_is_400(raw):
    assert_error(zoom_post(APIClient(), raw), 400, "VALIDATION_ERROR")
    assert not ProviderEvent.objects.exists()


def test_a_meeting_event_without_a_meeting_id_is_400():
    raw = json.dumps({"event": "meeting.started", "event_ts": 1, "payload": {"object": {}}}).encode()

    assert_error(zoom_post(APIClient(), raw), 400, "VALIDATION_ERROR")


def test_production_without_a_secret_refuses_everything(settings, heard):
    settings.PRODUCTION = True
    settings.ZOOM_WEBHOOK_SECRET_TOKEN = ""
    meeting = zoom_meeting()

    response = zoom_post(APIClient(), zoom_body("meeting.started", meeting.provider_meeting_id), secret="")

    assert_error(response, 401, "UNAUTHENTICATED")
    assert heard == []


def test_no_login_and_no_csrf_token_are_needed(heard):
    meeting = zoom_meeting()
    client = APIClient(enforce_csrf_checks=True)

    response = zoom_post(client, zoom_body("meeting.started", meeting.provider_meeting_id))

    assert response.status_code == 200 and len(heard) == 1


def test_over_the_rate_one_source_address_gets_429(settings):
    settings.THROTTLE_PROVIDER_EVENTS_RATE = "2/min"
    # Counts live in Redis across test runs: an address of this run's own.
    address = f"10.{random.randrange(256)}.{random.randrange(256)}.{random.randrange(1, 255)}"
    raw = zoom_body("meeting.participant_joined", 81234567890)

    answers = [zoom_post(APIClient(), raw, REMOTE_ADDR=address) for _ in range(3)]
    other = zoom_post(APIClient(), raw, REMOTE_ADDR=address.replace("10.", "11.", 1))

    assert [answer.status_code for answer in answers[:2]] == [200, 200]
    error = assert_error(answers[2], 429, "THROTTLED")
    assert error["details"]["retryAfterSeconds"] >= 1 and answers[2]["Retry-After"]
    assert other.status_code == 200


def test_a_listener_that_fails_rolls_the_record_back_so_the_redelivery_retries(heard):
    from meetings_app.provider_events import meeting_listener, meeting_listener_remove

    meeting = zoom_meeting()
    raw = zoom_body("meeting.started", meeting.provider_meeting_id)

    def broken(**kwargs):
        raise RuntimeError("the database went away")

    meeting_listener(broken)
    try:
        failed = zoom_post(APIClient(), raw)
    finally:
        meeting_listener_remove(broken)
    retried = zoom_post(APIClient(), raw)

    assert failed.status_code == 503 and failed.json()["error"]["code"] == "UNAVAILABLE"
    assert retried.status_code == 200 and retried.json()["recorded"] is True
    assert ProviderEvent.objects.count() == 1
