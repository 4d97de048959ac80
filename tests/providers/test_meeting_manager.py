"""MeetingManager: the provider call, then the meetings table; cancelling what is gone is a no-op."""

import uuid
from datetime import UTC, datetime

import pytest

from meetings_app.models import Meeting, MeetingStatus
from meetings_app.providers.base import MeetingRequest, TransientProviderError
from meetings_app.services import MeetingManager

pytestmark = pytest.mark.django_db

ZOOM_API = "https://zoom.test/v2"
ZOOM_OAUTH = "https://zoom.test/oauth/token"
REFERENCE = str(uuid.uuid4())
REQUEST = MeetingRequest(
    reference=REFERENCE,
    topic="Mock interview",
    start_time=datetime(2026, 12, 3, 2, 0, tzinfo=UTC),
    duration_minutes=45,
    host_id="mentor@example.com",
)


@pytest.fixture(autouse=True)
def zoom(settings, provider_api):
    settings.ZOOM_API_BASE_URL = ZOOM_API
    settings.ZOOM_OAUTH_URL = ZOOM_OAUTH
    settings.ZOOM_ACCOUNT_ID, settings.ZOOM_CLIENT_ID, settings.ZOOM_CLIENT_SECRET = "acc", "cid", "zoom-secret"
    provider_api.post(ZOOM_OAUTH, json={"access_token": "z-1", "token_type": "bearer", "expires_in": 3600})
    return provider_api


def created(zoom, meeting_id: int = 8123) -> Meeting:
    zoom.post(
        f"{ZOOM_API}/users/mentor@example.com/meetings",
        status=201,
        json={"id": meeting_id, "join_url": f"https://zoom.us/j/{meeting_id}", "topic": REQUEST.topic},
    )
    return MeetingManager().create_meeting(provider="zoom", request=REQUEST)


def test_create_stores_what_the_provider_made(zoom):
    meeting = created(zoom)

    stored = Meeting.objects.get()
    assert stored == meeting
    assert (stored.provider, stored.provider_meeting_id, stored.meeting_no) == ("zoom", "8123", "8123")
    assert stored.join_url == "https://zoom.us/j/8123" and stored.status == MeetingStatus.ACTIVE
    assert stored.reference == REFERENCE and stored.host_id == "mentor@example.com"
    assert stored.start_time == REQUEST.start_time and stored.duration_minutes == 45


def test_a_failed_create_stores_nothing(zoom):
    zoom.post(f"{ZOOM_API}/users/mentor@example.com/meetings", status=503)

    with pytest.raises(TransientProviderError):
        MeetingManager().create_meeting(provider="zoom", request=REQUEST)

    assert not Meeting.objects.exists()


def test_update_moves_the_meeting_at_the_provider_and_in_the_table(zoom):
    meeting = created(zoom)
    patch = zoom.patch(f"{ZOOM_API}/meetings/8123", status=204)
    moved = MeetingRequest(
        reference=REFERENCE,
        topic="Mock interview (moved)",
        start_time=datetime(2026, 12, 4, 9, 30, tzinfo=UTC),
        duration_minutes=60,
        host_id="mentor@example.com",
    )

    updated = MeetingManager().update_meeting(meeting_id=meeting.id, request=moved)

    assert patch.call_count == 1
    assert (updated.start_time, updated.duration_minutes, updated.topic) == (moved.start_time, 60, moved.topic)


def test_cancel_cancels_at_the_provider_and_marks_the_row(zoom):
    meeting = created(zoom)
    delete = zoom.delete(f"{ZOOM_API}/meetings/8123", status=204)

    cancelled = MeetingManager().cancel_meeting(meeting_id=meeting.id)

    assert delete.call_count == 1
    assert cancelled.status == MeetingStatus.CANCELLED and cancelled.cancelled_at is not None


def test_cancelling_a_meeting_the_provider_no_longer_knows_marks_it_cancelled(zoom):
    meeting = created(zoom)
    zoom.delete(f"{ZOOM_API}/meetings/8123", status=404, json={"code": 3001, "message": "Meeting does not exist."})

    assert MeetingManager().cancel_meeting(meeting_id=meeting.id).status == MeetingStatus.CANCELLED


def test_cancelling_twice_or_an_unknown_meeting_calls_nobody(zoom):
    meeting = created(zoom)
    delete = zoom.delete(f"{ZOOM_API}/meetings/8123", status=204)
    MeetingManager().cancel_meeting(meeting_id=meeting.id)

    again = MeetingManager().cancel_meeting(meeting_id=meeting.id)
    unknown = MeetingManager().cancel_meeting(meeting_id=uuid.uuid4())

    assert delete.call_count == 1
    assert again.status == MeetingStatus.CANCELLED and unknown is None


def test_find_prefers_our_own_table_then_asks_the_provider(zoom):
    listing = zoom.get(
        f"{ZOOM_API}/users/mentor@example.com/meetings",
        json={"meetings": [{"id": 77, "agenda": f"Booking session {REFERENCE}", "join_url": "https://zoom.us/j/77"}]},
    )

    found_at_provider = MeetingManager().find_meeting(provider="zoom", request=REQUEST)
    found_again = MeetingManager().find_meeting(provider="zoom", request=REQUEST)

    assert found_at_provider.provider_meeting_id == "77" and found_at_provider.reference == REFERENCE
    assert found_again == found_at_provider
    assert listing.call_count == 1  # the second time our table knew it
