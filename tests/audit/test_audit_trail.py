"""Every action a person takes on a session leaves exactly one audit row: who, when, via what, from what
to what. The table is append-only in the database itself."""

import pytest
from django.db import DatabaseError, transaction

from sessions_app.models import AuditEntry, MeetingSaga
from sessions_app.repairs import saga_resolve
from tests.conftest import BOOK_URL, booking_body, detail_url
from tests.factories import StaffFactory
from tests.saga.test_retry_and_queue import failed_session

pytestmark = pytest.mark.django_db


def test_a_booking_writes_one_audit_row(counselor_api, counselor, student, mentor):
    response = counselor_api.post(BOOK_URL, booking_body(student=student, mentor=mentor), format="json")

    [entry] = AuditEntry.objects.all()
    assert str(entry.session_id) == response.json()["sessionId"]
    assert entry.action == "booked" and entry.actor == counselor and entry.via == "api"
    assert entry.before == {}
    assert entry.after["status"] == "PENDING_MEETING"
    assert entry.after["scheduledAt"].startswith(response.json()["scheduledAt"][:16])
    assert entry.after["mentorId"] == str(mentor.id) and entry.after["studentIds"] == [str(student.id)]


def test_a_refused_booking_writes_none(counselor_api, student, mentor):
    body = booking_body(student=student, mentor=mentor)
    counselor_api.post(BOOK_URL, body, format="json")

    counselor_api.post(BOOK_URL, body, format="json")  # the same time again: 409

    assert AuditEntry.objects.count() == 1


def test_an_idempotent_replay_writes_none(counselor_api, student, mentor):
    body = booking_body(student=student, mentor=mentor)
    for _ in range(3):
        counselor_api.post(BOOK_URL, body, format="json", headers={"Idempotency-Key": "once"})

    assert AuditEntry.objects.count() == 1


def test_a_retry_writes_one_audit_row_from_failed_to_pending(counselor_api, counselor, student, mentor):
    session = failed_session(counselor_api, student, mentor)

    counselor_api.post(f"{detail_url(session.id)}/retry")

    entry = AuditEntry.objects.get(action="retried")
    assert entry.actor == counselor and entry.via == "api"
    assert entry.before["status"] == "MEETING_FAILED" and entry.after["status"] == "PENDING_MEETING"
    assert entry.before["slotIds"] != entry.after["slotIds"]


def test_resolving_a_manual_intervention_writes_one_audit_row(counselor_api, student, mentor):
    session = failed_session(counselor_api, student, mentor)
    MeetingSaga.objects.filter(session=session).update(
        requires_manual_intervention=True, manual_intervention_reason="meeting left behind"
    )
    operator = StaffFactory()

    saga_resolve(session_id=session.id, actor_id=operator.id, note="deleted it")
    saga_resolve(session_id=session.id, actor_id=operator.id, note="again")  # nothing left to resolve

    [entry] = AuditEntry.objects.filter(action="intervention_resolved")
    assert entry.actor == operator and entry.via == "admin"
    assert entry.before["reason"] == "meeting left behind" and entry.after["note"] == "deleted it"


@pytest.mark.parametrize(
    "statement", ["UPDATE sessions_app_auditentry SET via = 'x'", "DELETE FROM sessions_app_auditentry"]
)
def test_the_trail_cannot_be_rewritten(counselor_api, student, mentor, statement):
    counselor_api.post(BOOK_URL, booking_body(student=student, mentor=mentor), format="json")
    from django.db import connection

    with pytest.raises(DatabaseError, match="append-only"), transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(statement)

    assert AuditEntry.objects.get().via == "api"


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("statement", ["TRUNCATE sessions_app_auditentry", "TRUNCATE sessions_app_auditentry CASCADE"])
def test_the_trail_cannot_be_truncated(counselor_api, student, mentor, statement):
    counselor_api.post(BOOK_URL, booking_body(student=student, mentor=mentor), format="json")
    from django.db import connection

    with pytest.raises(DatabaseError, match="append-only"), transaction.atomic(), connection.cursor() as cursor:
        # As in production, where nothing sets it (only a test database lets Django's flush truncate the table).
        cursor.execute("SET LOCAL booking.allow_audit_truncate = ''")
        cursor.execute(statement)

    assert AuditEntry.objects.get().via == "api"


def test_the_session_admin_page_shows_its_trail(counselor_api, student, mentor, client):
    session_id = counselor_api.post(BOOK_URL, booking_body(student=student, mentor=mentor), format="json").json()[
        "sessionId"
    ]
    client.force_login(StaffFactory(is_superuser=True))

    page = client.get(f"/admin/sessions_app/session/{session_id}/change/").content.decode()

    assert "audit trail" in page.lower() and "Booked" in page and "PENDING_MEETING" in page
