"""A worker thread waits seconds on a provider: its database connection goes back to the pool meanwhile, so
200 threads need only a few connections (docs/performance.md)."""

import uuid

import pytest
from django.db import connection
from django.utils import timezone

from meetings_app.models import Meeting
from meetings_app.providers.base import MeetingRequest, ProvidedMeeting
from meetings_app.services import MeetingManager

pytestmark = pytest.mark.skipif(
    not connection.settings_dict.get("OPTIONS", {}).get("pool"), reason="only with the connection pool"
)


class RecordingClient:
    """A provider that notes whether the calling thread still held a database connection."""

    def __init__(self):
        self.connection_held = []

    def create(self, request: MeetingRequest) -> ProvidedMeeting:
        self.connection_held.append(connection.connection is not None)
        return ProvidedMeeting(
            provider_meeting_id=f"r{uuid.uuid4().hex[:8]}", meeting_no="1", join_url="u", host_id="h"
        )


def meeting_request() -> MeetingRequest:
    return MeetingRequest(
        reference=str(uuid.uuid4()), topic="t", start_time=timezone.now(), duration_minutes=30, host_id="ou_1"
    )


@pytest.mark.django_db(transaction=True)
def test_the_connection_is_back_in_the_pool_during_a_provider_call_and_taken_again_after():
    client = RecordingClient()
    Meeting.objects.exists()  # this thread holds a connection, as a saga step does before its call
    assert connection.connection is not None

    meeting = MeetingManager(client_for=lambda name: client).create_meeting(
        provider="feishu", request=meeting_request()
    )

    assert client.connection_held == [False]
    assert Meeting.objects.filter(id=meeting.id).exists()  # stored right after the call, on a pooled connection


@pytest.mark.django_db
def test_inside_a_transaction_the_connection_stays():
    client = RecordingClient()
    Meeting.objects.exists()

    MeetingManager(client_for=lambda name: client).create_meeting(provider="feishu", request=meeting_request())

    assert client.connection_held == [True]
