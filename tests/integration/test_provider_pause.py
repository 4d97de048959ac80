"""A provider paused by an operator, through the real web, worker, beat and sandbox: a booking still answers at
once; its saga waits, re-driven by the sweep without spending an attempt or calling the provider; once resumed,
the session is scheduled."""

import pytest

from accounts_app.services import operator_make
from meetings_app.services import provider_pause, provider_resume
from sessions_app.models import MeetingSaga, SessionStatus
from tests.factories import StaffFactory
from tests.integration.conftest import wait_for
from tests.integration.test_provisioning_saga import book, session_settled

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]


def test_a_paused_zooms_session_waits_without_attempts_and_is_scheduled_after_resume(people, sandbox):
    operator = operator_make(user=StaffFactory())
    provider_pause(provider="zoom", actor=operator, reason="Zoom outage")

    booked = book(people, provider="zoom")  # 201 PENDING_MEETING at once (asserted by book)
    session_id = booked["sessionId"]

    # The sweep looks at the waiting saga again and again (each look marks it re-driven): three looks, and
    # still no attempt, no call to Zoom, no meeting.
    looks: set = set()

    def looked_at_three_times():
        saga = MeetingSaga.objects.select_related("session").get(session_id=session_id)
        assert saga.attempts == 0 and saga.session.status == SessionStatus.PENDING_MEETING, saga
        if saga.last_driven_at is not None:
            looks.add(saga.last_driven_at)
        return len(looks) >= 3

    wait_for(looked_at_three_times, timeout=30, what="the sweep to look at the paused saga three times")
    assert sandbox.meetings() == []
    assert not sandbox.requests_received().get("create")

    provider_resume(provider="zoom", actor=operator, reason="Zoom is back")

    session = session_settled(session_id, statuses={SessionStatus.SCHEDULED})
    assert session.meeting.provider == "zoom" and session.saga.attempts == 1
    assert [m["provider"] for m in sandbox.meetings(status="active")] == ["zoom"]
