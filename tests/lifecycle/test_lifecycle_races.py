"""Counselors acting on sessions at the same instant, from threads with their own PostgreSQL connections:
the row lock on the session and the slots' exclusion constraint decide, never luck."""

from collections import Counter

import pytest

from calendar_app.models import CalendarSlot, SlotStatus
from holds_app.models import Hold, HoldStatus
from sessions_app.models import AuditEntry, MeetingOperation, OutboxEvent, Session, SessionStatus
from sessions_app.saga import saga_advance
from tests.conftest import BOOK_URL, api_client_for, booking_body, detail_url, funded_student, race_posts
from tests.factories import MentorFactory, future
from tests.saga.conftest import RESERVE_APPLY, feishu_reserve

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.race, pytest.mark.usefixtures("providers")]


@pytest.fixture
def scheduled(providers, counselor):
    providers.post(RESERVE_APPLY, json=feishu_reserve())

    def scheduled(*, mentor=None, hours: float = 48) -> Session:
        body = booking_body(
            student=funded_student(counselor), mentor=mentor or MentorFactory(), start=future(hours=hours)
        )
        session_id = api_client_for(counselor).post(BOOK_URL, body, format="json").json()["sessionId"]
        saga_advance(session_id=session_id)
        session = Session.objects.get(id=session_id)
        assert session.status == SessionStatus.SCHEDULED
        return session

    return scheduled


def test_eight_cancels_of_one_session_cancel_it_once(counselor, scheduled):
    session = scheduled()

    answers = race_posts([(counselor, f"{detail_url(session.id)}/cancel", None)] * 8)

    assert Counter(a.status_code for a in answers) == {200: 1, 409: 7}
    assert {a.json()["error"]["code"] for a in answers if a.status_code == 409} == {"INVALID_STATE"}
    assert MeetingOperation.objects.filter(session_id=session.id).count() == 1
    assert OutboxEvent.objects.filter(type__endswith="session.cancelled").count() == 1
    assert AuditEntry.objects.filter(session_id=session.id, action="cancelled").count() == 1
    assert Hold.objects.get(session_id=session.id).status == HoldStatus.RELEASED


def test_moves_racing_a_cancel_end_cancelled_with_every_slot_free(counselor, scheduled):
    session = scheduled()
    url = detail_url(session.id)
    calls = [(counselor, f"{url}/cancel", None)] + [
        (counselor, f"{url}/reschedule", {"scheduledStartTime": future(hours=60 + 2 * i).isoformat(), "duration": 60})
        for i in range(5)
    ]

    answers = race_posts(calls)

    assert answers[0].status_code == 200
    moved = [a for a in answers[1:] if a.status_code == 200]
    assert all(a.status_code == 409 for a in answers[1:] if a.status_code != 200)
    session.refresh_from_db()
    assert session.status == SessionStatus.CANCELLED
    assert set(CalendarSlot.objects.filter(id__in=session.slot_ids).values_list("status", flat=True)) == {
        SlotStatus.CANCELLED
    }
    # Every move that got in first left exactly one update operation behind it.
    assert MeetingOperation.objects.filter(session_id=session.id, kind="update").count() == len(moved)


def test_two_sessions_moved_into_one_free_hour_of_their_mentor_end_with_one_move(counselor, scheduled):
    mentor = MentorFactory()
    first, second = scheduled(mentor=mentor, hours=48), scheduled(mentor=mentor, hours=52)
    target = {"scheduledStartTime": future(hours=70).isoformat(), "duration": 60}

    answers = race_posts([(counselor, f"{detail_url(s.id)}/reschedule", target) for s in (first, second)])

    assert sorted(a.status_code for a in answers) == [200, 409]
    assert {a.json()["error"]["code"] for a in answers if a.status_code == 409} == {"SLOT_CONFLICT"}
    busy = CalendarSlot.objects.filter(user=mentor, status=SlotStatus.BOOKED).order_by("during")
    assert [s.start for s in busy] in ([future(hours=52), future(hours=70)], [future(hours=48), future(hours=70)])
