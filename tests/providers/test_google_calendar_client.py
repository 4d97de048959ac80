"""The Google Calendar v3 client against Google's HTTP API as `responses` plays it, with a static token and
with a service account key (google-auth) whose token endpoint `responses` answers too."""

import json
from datetime import UTC, datetime

import pytest
import responses
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from booking_project.providers.outcomes import PermanentProviderError, TransientProviderError
from calendar_app.providers import (
    CalendarEventRequest,
    ProvidedCalendarEvent,
    calendar_provider_client,
    calendar_provider_clients_reset,
)

GOOGLE = "https://google.test/calendar/v3"
EVENTS_URL = f"{GOOGLE}/calendars/primary/events"
KEY = "5c1f0b0e9a4d4a3c8b7e6d5c4b3a29100"
EVENT_URL = f"{EVENTS_URL}/{KEY}"
TOKEN_URI = "https://oauth2.test/token"

EVENT = CalendarEventRequest(
    summary="Essay review",
    description="Join: https://zoom.us/j/81234567890",
    start_time=datetime(2026, 12, 1, 2, 0, tzinfo=UTC),
    end_time=datetime(2026, 12, 1, 3, 0, tzinfo=UTC),
    meeting_url="https://zoom.us/j/81234567890",
    time_zone="Europe/Paris",
    attendee_open_id="",
    attendee_email="student@example.com",
)


@pytest.fixture
def google_settings(settings):
    settings.GOOGLE_CALENDAR_BASE_URL = GOOGLE
    settings.GOOGLE_CALENDAR_ID = "primary"
    settings.GOOGLE_CALENDAR_ACCESS_TOKEN = "ya29.static-token"
    settings.GOOGLE_SERVICE_ACCOUNT_FILE = ""
    settings.PROVIDER_TIMEOUT_SECONDS = 4.0
    calendar_provider_clients_reset()
    yield settings
    calendar_provider_clients_reset()


@pytest.fixture
def google(google_settings):
    return calendar_provider_client("google")


def google_error(status: int, reason: str) -> dict:
    return {"error": {"code": status, "message": reason, "errors": [{"domain": "global", "reason": reason}]}}


def test_create_inserts_our_id_with_the_participant_as_attendee(google, provider_api):
    # given
    provider_api.add(responses.POST, EVENTS_URL, json={"id": KEY, "status": "confirmed"})

    # when
    made = google.create(EVENT, idempotency_key=KEY)

    # then
    assert made == ProvidedCalendarEvent(calendar_id="primary", event_id=KEY)
    (insert,) = provider_api.calls
    assert insert.request.url == f"{EVENTS_URL}?sendUpdates=none"
    assert insert.request.headers["Authorization"] == "Bearer ya29.static-token"
    assert insert.request.req_kwargs["timeout"] == (4.0, 4.0)
    body = json.loads(insert.request.body)
    assert body["id"] == KEY
    assert body["attendees"] == [{"email": "student@example.com"}]
    assert body["start"] == {"dateTime": "2026-12-01T02:00:00Z", "timeZone": "Europe/Paris"}
    assert body["end"] == {"dateTime": "2026-12-01T03:00:00Z", "timeZone": "Europe/Paris"}
    assert body["location"] == "https://zoom.us/j/81234567890"


def test_inserting_an_id_that_is_already_there_is_the_same_event(google, provider_api):
    # given: an earlier attempt made it
    provider_api.add(responses.POST, EVENTS_URL, status=409, json=google_error(409, "duplicate"))

    # when
    made = google.create(EVENT, idempotency_key=KEY)

    # then
    assert made == ProvidedCalendarEvent(calendar_id="primary", event_id=KEY)


def test_an_id_google_would_refuse_is_refused_before_any_request(google, provider_api):
    with pytest.raises(ValueError):
        google.create(EVENT, idempotency_key="not-base32hex-xyz!")
    assert len(provider_api.calls) == 0


def test_update_patches_and_delete_of_a_gone_event_is_done(google, provider_api):
    # given
    provider_api.add(responses.PATCH, EVENT_URL, json={"id": KEY})
    provider_api.add(responses.DELETE, EVENT_URL, status=410, json=google_error(410, "deleted"))
    provider_api.add(responses.DELETE, EVENT_URL, status=404, json=google_error(404, "notFound"))

    # when
    google.update("primary", KEY, EVENT)
    google.delete("primary", KEY)
    google.delete("primary", KEY)

    # then
    patch = provider_api.calls[0]
    assert patch.request.method == "PATCH"
    assert json.loads(patch.request.body)["start"]["dateTime"] == "2026-12-01T02:00:00Z"
    assert "id" not in json.loads(patch.request.body)


def test_the_event_reminds_by_popup_at_the_offsets_when_inserted_and_again_when_moved(google, provider_api):
    # given: offsets a day and an hour ahead, with one past Google's four weeks (40320 minutes)
    provider_api.add(responses.POST, EVENTS_URL, json={"id": KEY, "status": "confirmed"})
    provider_api.add(responses.PATCH, EVENT_URL, json={"id": KEY})
    event = CalendarEventRequest(**{**EVENT.__dict__, "reminder_minutes": (1440, 60, 50000)})
    moved = CalendarEventRequest(**{**event.__dict__, "start_time": datetime(2026, 12, 2, 2, 0, tzinfo=UTC)})

    # when
    google.create(event, idempotency_key=KEY)
    google.update("primary", KEY, moved)

    # then: the calendar's defaults replaced by ours, on the insert and on the move
    reminders = {
        "useDefault": False,
        "overrides": [{"method": "popup", "minutes": 60}, {"method": "popup", "minutes": 1440}],
    }
    insert, patch = provider_api.calls
    assert json.loads(insert.request.body)["reminders"] == reminders
    assert json.loads(patch.request.body)["start"]["dateTime"] == "2026-12-02T02:00:00Z"
    assert json.loads(patch.request.body)["reminders"] == reminders


def test_past_five_offsets_the_five_nearest_the_start_are_kept(google, provider_api):
    provider_api.add(responses.PATCH, EVENT_URL, json={"id": KEY})
    event = CalendarEventRequest(**{**EVENT.__dict__, "reminder_minutes": (10080, 2880, 1440, 120, 60, 15, 0)})

    google.update("primary", KEY, event)

    overrides = json.loads(provider_api.calls[0].request.body)["reminders"]["overrides"]
    assert [override["minutes"] for override in overrides] == [0, 15, 60, 120, 1440]


def test_an_event_without_reminder_offsets_keeps_the_calendars_reminders(google, provider_api):
    provider_api.add(responses.PATCH, EVENT_URL, json={"id": KEY})

    google.update("primary", KEY, EVENT)

    assert "reminders" not in json.loads(provider_api.calls[0].request.body)


@pytest.mark.parametrize(
    ("status", "reason", "headers", "kind", "retry_after"),
    [
        (500, "backendError", {}, TransientProviderError, None),
        (503, "backendError", {}, TransientProviderError, None),
        (429, "rateLimitExceeded", {"Retry-After": "7"}, TransientProviderError, 7),
        (403, "userRateLimitExceeded", {}, TransientProviderError, None),
        (403, "forbiddenForNonOrganizer", {}, PermanentProviderError, None),
        (400, "timeRangeEmpty", {}, PermanentProviderError, None),
    ],
)
def test_failures_are_classified_transient_or_permanent(
    google, provider_api, status, reason, headers, kind, retry_after
):
    # given
    provider_api.add(responses.PATCH, EVENT_URL, status=status, json=google_error(status, reason), headers=headers)

    # when
    with pytest.raises(kind) as raised:
        google.update("primary", KEY, EVENT)

    # then
    assert raised.value.provider == "google" and raised.value.code == reason
    assert getattr(raised.value, "retry_after", None) == retry_after
    assert "ya29.static-token" not in str(raised.value)


def test_without_credentials_every_call_is_refused_for_good(google_settings, provider_api):
    google_settings.GOOGLE_CALENDAR_ACCESS_TOKEN = ""

    with pytest.raises(PermanentProviderError, match="GOOGLE_SERVICE_ACCOUNT_FILE"):
        calendar_provider_client("google").delete("primary", KEY)
    assert len(provider_api.calls) == 0


@pytest.fixture
def service_account_file(tmp_path):
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()
    path = tmp_path / "service-account.json"
    path.write_text(
        json.dumps(
            {
                "type": "service_account",
                "project_id": "booking-test",
                "private_key_id": "abc123",
                "private_key": pem,
                "client_email": "calendar@booking-test.iam.gserviceaccount.com",
                "client_id": "1234567890",
                "token_uri": TOKEN_URI,
            }
        )
    )
    return str(path)


def test_a_service_account_token_is_fetched_reused_and_refreshed_once_on_401(
    google_settings, provider_api, service_account_file
):
    # given
    google_settings.GOOGLE_CALENDAR_ACCESS_TOKEN = ""
    google_settings.GOOGLE_SERVICE_ACCOUNT_FILE = service_account_file
    google_settings.GOOGLE_CALENDAR_SUBJECT = "calendar-owner@example.com"
    provider_api.add(responses.POST, TOKEN_URI, json={"access_token": "ya29.first", "expires_in": 3600})
    provider_api.add(responses.POST, TOKEN_URI, json={"access_token": "ya29.second", "expires_in": 3600})
    provider_api.add(responses.PATCH, EVENT_URL, json={"id": KEY})
    provider_api.add(responses.PATCH, EVENT_URL, status=401, json=google_error(401, "authError"))
    provider_api.add(responses.PATCH, EVENT_URL, json={"id": KEY})
    google = calendar_provider_client("google")

    # when
    google.update("primary", KEY, EVENT)
    google.update("primary", KEY, EVENT)

    # then
    token_calls = [call for call in provider_api.calls if call.request.url == TOKEN_URI]
    patches = [call.request.headers["Authorization"] for call in provider_api.calls if call.request.method == "PATCH"]
    assert len(token_calls) == 2
    assert b"assertion=" in token_calls[0].request.body  # a signed JWT grant, as google-auth sends it
    assert patches == ["Bearer ya29.first", "Bearer ya29.first", "Bearer ya29.second"]


def test_a_refused_service_account_grant_is_permanent(google_settings, provider_api, service_account_file):
    google_settings.GOOGLE_CALENDAR_ACCESS_TOKEN = ""
    google_settings.GOOGLE_SERVICE_ACCOUNT_FILE = service_account_file
    provider_api.add(responses.POST, TOKEN_URI, status=400, json={"error": "invalid_grant"})

    with pytest.raises(PermanentProviderError):
        calendar_provider_client("google").delete("primary", KEY)
