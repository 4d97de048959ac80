"""The booking's rows written in one statement (booking_project.one_statement) are the rows the per-row services
write, column for column; the event's recorders still run in the booking's transaction; a deadlock is tried again."""

import uuid
from datetime import datetime, timedelta
from typing import Any

import pytest
from django.db import OperationalError, connection, transaction
from django.db.backends.postgresql.psycopg_any import DateTimeTZRange
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

import sessions_app.services as services
from booking_project.events import EVENT_TYPES, SESSION_CREATED
from calendar_app.models import CalendarSlot
from calendar_app.services import slots_book
from holds_app.models import Hold
from holds_app.services import holds_take
from sessions_app.apis import session_representation
from sessions_app.audit import audit_record, audit_state
from sessions_app.idempotency import IdempotentRequest, idempotency_remember
from sessions_app.models import (
    AuditAction,
    AuditEntry,
    IdempotencyRecord,
    MeetingSaga,
    OutboxEvent,
    Session,
    SessionStatus,
    SessionStudent,
)
from sessions_app.outbox import outbox_event_add
from sessions_app.payloads import session_created_payload
from sessions_app.saga import saga_start
from sessions_app.services import session_book
from sessions_app.types import session_type_get
from tests.conftest import BOOK_URL, assert_error, booking_body, funded_student, table_counts
from tests.factories import MentorFactory, future, student_for


def _book_row_by_row(*, counselor, session_type, student_ids, mentor_id, start, duration, request) -> Session:
    """The booking as it was written before it became one statement: each row through its own service."""
    session_type = session_type_get(session_type)
    end = start + timedelta(minutes=duration)
    with transaction.atomic():
        session_id = uuid.uuid4()
        if session_type.billable:
            holds_take(session_id=session_id, student_ids=student_ids, session_type=session_type.name)
        slots = slots_book(user_ids=[mentor_id, *student_ids], start=start, end=end, session_type=session_type.name)
        session = Session.objects.create(
            id=session_id,
            session_type=session_type.name,
            status=SessionStatus.PENDING_MEETING,
            counselor=counselor,
            mentor_id=mentor_id,
            scheduled_at=start,
            duration_minutes=duration,
            meeting_provider="feishu",
            topic="Resume review",
            slot_ids=[slot.id for slot in slots],
        )
        SessionStudent.objects.bulk_create(
            [SessionStudent(session=session, student_id=s, position=i) for i, s in enumerate(student_ids)]
        )
        session.student_ids = list(student_ids)
        event = outbox_event_add(type=session_type.created_event, payload=session_created_payload(session))
        saga_start(session=session, event=event)
        audit_record(
            session_id=session.id,
            action=AuditAction.BOOKED,
            actor=counselor,
            via="api",
            after={**audit_state(session), "mentorId": str(mentor_id), "studentIds": [str(s) for s in student_ids]},
        )
        idempotency_remember(counselor_id=counselor.id, request=request, session=session)
    return session


def _rows_of(session: Session, *, start: datetime, booked_at: datetime) -> dict[str, Any]:
    """Every row the booking wrote, every column, with what differs by nature between two bookings (generated
    ids, the time of writing, the booked time) replaced by what it stands for."""
    slots = list(CalendarSlot.objects.filter(id__in=session.slot_ids).values())
    holds = list(Hold.objects.filter(session_id=session.id).values())
    event = OutboxEvent.objects.get(id=MeetingSaga.objects.get(session_id=session.id).event_id)
    names: dict[str, str] = {str(session.id): "SESSION", str(event.id): "EVENT"}
    names |= {str(slot["id"]): f"SLOT-OF-{slot['user_id']}" for slot in slots}
    names |= {str(hold["id"]): f"HOLD-OF-{hold['entitlement_id']}" for hold in holds}
    end = start + timedelta(minutes=session.duration_minutes)
    for moment, name in ((start, "START"), (end, "END")):
        names |= {moment.isoformat(): name, moment.isoformat().replace("+00:00", "Z"): name}

    def same(value: Any) -> Any:
        if isinstance(value, dict):
            return {k: same(v) for k, v in value.items()}
        if isinstance(value, list):
            return [same(v) for v in value]
        if isinstance(value, uuid.UUID | str):
            return names.get(str(value), value)
        if isinstance(value, DateTimeTZRange):
            return (same(value.lower), same(value.upper), value.bounds)
        if isinstance(value, datetime):
            if abs(value - booked_at) < timedelta(minutes=1):
                return "NOW"
            return names.get(value.isoformat(), value)
        return value

    rows = {
        "session": Session.objects.filter(id=session.id).values().get(),
        "students": list(SessionStudent.objects.filter(session=session).values("student_id", "position")),
        "slots": sorted(slots, key=lambda slot: str(slot["user_id"])),
        "holds": holds,
        "event": OutboxEvent.objects.filter(id=event.id).values().get(),
        "saga": MeetingSaga.objects.filter(session_id=session.id).values().get(),
        "audit": list(AuditEntry.objects.filter(session_id=session.id).values().order_by("id")),
        "idempotency": list(IdempotencyRecord.objects.filter(session=session).values()),
    }
    for row in rows["audit"] + rows["idempotency"]:
        row.pop("id")  # serial numbers
    return same(rows)


@pytest.mark.parametrize("session_type, class_size", [("regular_mentoring", 1), ("class_session", 3)])
def test_the_one_statement_writes_the_rows_the_services_write_one_by_one(counselor, session_type, class_size):
    students = [funded_student(counselor) for _ in range(class_size)]
    mentor = MentorFactory()
    student_ids = [s.id for s in students]
    old_start, new_start = future(hours=30), future(hours=60)

    def request(key: str) -> IdempotentRequest:
        return IdempotentRequest(key=key, fingerprint="f" * 64, render=session_representation)

    booked_at = timezone.now()
    old = _book_row_by_row(
        counselor=counselor,
        session_type=session_type,
        student_ids=student_ids,
        mentor_id=mentor.id,
        start=old_start,
        duration=60,
        request=request("old"),
    )
    new = session_book(
        counselor=counselor,
        session_type=session_type_get(session_type),
        student_ids=student_ids,
        mentor_id=mentor.id,
        start=new_start,
        duration_minutes=60,
        meeting_provider="feishu",
        topic="Resume review",
        idempotency=request("new"),
    ).session

    old_rows = _rows_of(old, start=old_start, booked_at=booked_at)
    new_rows = _rows_of(new, start=new_start, booked_at=booked_at)
    for rows in (old_rows, new_rows):
        assert rows["idempotency"][0].pop("key") in ("old", "new")
        assert len(rows["slots"]) == class_size + 1 and len(rows["students"]) == class_size
        assert len(rows["holds"]) == (class_size if session_type_get(session_type).billable else 0)
    assert new_rows == old_rows
    # what the caller gets back is what the rows say, and counts as saved
    assert session_representation(new) == session_representation(Session.objects.get(id=new.id))
    assert not new._state.adding and not new.saga._state.adding


def test_a_recorder_of_session_created_runs_in_the_booking_transaction(counselor_api, mentor, student):
    seen = []

    def recorder(event):
        # the event's row, and the session it announces, are there to read, uncommitted
        assert connection.in_atomic_block
        seen.append((event.id, OutboxEvent.objects.filter(id=event.id).exists(), Session.objects.count()))
        raise RuntimeError("the recorder failed: the booking must not stand")

    created = [t for t in EVENT_TYPES.values() if t.kind == SESSION_CREATED]
    for event_type in created:
        event_type.recorders.append(recorder)
    before = table_counts()
    try:
        with pytest.raises(RuntimeError):
            counselor_api.post(BOOK_URL, booking_body(student=student, mentor=mentor), format="json")
    finally:
        for event_type in created:
            event_type.recorders.remove(recorder)
    assert [(exists, sessions) for _, exists, sessions in seen] == [(True, 1)]
    assert table_counts() == before  # it rolled back with the recorder


class _Deadlock(Exception):
    sqlstate = "40P01"


def test_a_booking_aborted_by_a_deadlock_is_written_again(counselor_api, mentor, student, monkeypatch):
    real, calls = services.parts_run, []

    def deadlocked_once(*args, **kwargs):
        calls.append(1)
        if len(calls) == 1:
            raise OperationalError("deadlock detected") from _Deadlock()
        return real(*args, **kwargs)

    monkeypatch.setattr(services, "parts_run", deadlocked_once)
    response = counselor_api.post(BOOK_URL, booking_body(student=student, mentor=mentor), format="json")

    assert response.status_code == 201, response.json()
    assert len(calls) == 2
    assert Session.objects.count() == 1 and Hold.objects.count() == 1 and CalendarSlot.objects.count() == 2


def test_no_free_unit_and_a_busy_mentor_is_insufficient_balance_as_before(counselor_api, counselor, mentor):
    start = future(hours=30)
    busy = counselor_api.post(
        BOOK_URL, booking_body(student=funded_student(counselor), mentor=mentor, start=start), format="json"
    )
    assert busy.status_code == 201
    unfunded = student_for(counselor)
    before = table_counts()

    response = counselor_api.post(BOOK_URL, booking_body(student=unfunded, mentor=mentor, start=start), format="json")

    error = assert_error(response, 409, "INSUFFICIENT_BALANCE")
    assert error["details"]["available"] == 0
    assert table_counts() == before


@pytest.mark.parametrize("session_type, class_size, statements", [("regular_mentoring", 1, 4), ("class_session", 3, 3)])
def test_a_booking_is_a_handful_of_statements(counselor, session_type, class_size, statements):
    """Outside a test a booking sends: the people, the entitlements' lock (billable types only) and the one
    statement of its rows (the token is the API's). Here its transaction is a savepoint of the test's (2 more)."""
    students, mentor = [funded_student(counselor) for _ in range(class_size)], MentorFactory()
    with CaptureQueriesContext(connection) as queries:
        session_book(
            counselor=counselor,
            session_type=session_type_get(session_type),
            student_ids=[s.id for s in students],
            mentor_id=mentor.id,
            start=future(hours=30),
            duration_minutes=60,
            meeting_provider="feishu",
        )
    sent = [q["sql"] for q in queries.captured_queries if "SAVEPOINT" not in q["sql"]]
    assert len(sent) == statements - 1, sent
    assert sum(sql.startswith("WITH ") for sql in sent) == 1
