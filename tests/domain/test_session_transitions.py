"""The session state machine: every legal move works, every other move raises and changes nothing."""

import itertools
import uuid

import pytest

from booking_project.errors import InvalidState
from meetings_app.models import Meeting
from sessions_app.models import ALLOWED_TRANSITIONS, Session, SessionStatus
from sessions_app.transitions import session_transition
from tests.conftest import BOOK_URL, booking_body

ALL_MOVES = list(itertools.product(SessionStatus.values, SessionStatus.values))


@pytest.fixture
def booked_session(counselor_api, mentor, student) -> Session:
    response = counselor_api.post(BOOK_URL, booking_body(student=student, mentor=mentor), format="json")
    return Session.objects.get(id=response.json()["sessionId"])


def _meeting() -> Meeting:
    from django.utils import timezone

    return Meeting.objects.create(
        provider="zoom",
        provider_meeting_id=str(uuid.uuid4()),
        join_url="https://zoom.example/j/123",
        start_time=timezone.now(),
        duration_minutes=60,
        topic="t",
    )


def _put_in(session: Session, status: str) -> None:
    # Test set-up only: place the session in a status without walking the machine there.
    meeting = _meeting() if status in (SessionStatus.SCHEDULED, SessionStatus.IN_PROGRESS) else None
    Session.objects.filter(id=session.id).update(status=status, meeting=meeting)


def test_the_machine_is_the_one_of_the_design():
    assert {k: set(v) for k, v in ALLOWED_TRANSITIONS.items()} == {
        "PENDING_MEETING": {"SCHEDULED", "MEETING_FAILED", "CANCELLED"},
        "SCHEDULED": {"IN_PROGRESS", "COMPLETED", "CANCELLED"},
        "IN_PROGRESS": {"COMPLETED"},
        "MEETING_FAILED": {"PENDING_MEETING", "CANCELLED"},
        "COMPLETED": set(),
        "CANCELLED": set(),
    }


@pytest.mark.parametrize("current,target", [m for m in ALL_MOVES if m[1] in ALLOWED_TRANSITIONS[m[0]]])
def test_a_legal_move_changes_the_status(booked_session, current, target):
    _put_in(booked_session, current)
    extra = {"meeting": _meeting()} if target in (SessionStatus.SCHEDULED, SessionStatus.IN_PROGRESS) else {}

    moved = session_transition(session_id=booked_session.id, to=target, **extra)

    assert moved.status == target
    assert Session.objects.get(id=booked_session.id).status == target


@pytest.mark.parametrize("current,target", [m for m in ALL_MOVES if m[1] not in ALLOWED_TRANSITIONS[m[0]]])
def test_an_illegal_move_raises_invalid_state_and_changes_nothing(booked_session, current, target):
    _put_in(booked_session, current)

    with pytest.raises(InvalidState):
        session_transition(session_id=booked_session.id, to=target)

    assert Session.objects.get(id=booked_session.id).status == current


def test_a_stale_caller_loses_the_compare_and_set(booked_session):
    session_transition(session_id=booked_session.id, to=SessionStatus.CANCELLED)

    with pytest.raises(InvalidState):
        session_transition(
            session_id=booked_session.id, to=SessionStatus.MEETING_FAILED, expected=SessionStatus.PENDING_MEETING
        )

    assert Session.objects.get(id=booked_session.id).status == SessionStatus.CANCELLED


def test_the_database_refuses_a_scheduled_session_without_a_meeting(booked_session):
    from django.db import IntegrityError, transaction

    with pytest.raises(IntegrityError), transaction.atomic():
        Session.objects.filter(id=booked_session.id).update(status=SessionStatus.SCHEDULED)
