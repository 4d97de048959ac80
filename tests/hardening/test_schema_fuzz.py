"""Schemathesis fuzzes every operation of GET /api/schema/ against a live server (real PostgreSQL, real Redis),
as a counselor with a valid token, and fails on any 5xx, any answer the document does not describe (status
code, content type, body or headers).

Bounded so that it runs in CI in seconds: a fixed number of examples per operation, derandomized (the same
cases every run), no example database. Part of the generated bookings name the counselor's real students and
mentors at a free time, so the fuzzer reaches the 201 and 409 answers and not only 400 and 404.
"""

from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import pytest
import schemathesis
from django.utils import timezone
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from accounts_app.models import User
from sessions_app.models import MeetingSaga, SagaState, Session, SessionStatus
from sessions_app.saga import saga_advance
from tests.conftest import BOOK_URL, api_client_for, booking_body, funded_student
from tests.factories import CounselorFactory, MentorFactory, future, token_for

CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
    response_headers_conformance,
]
EXAMPLES_PER_OPERATION = 40
OFFSETS = ["Z", "+08:00", "-05:00", "+05:45", "+14:00", "-12:00"]


@dataclass(frozen=True)
class FuzzWorld:
    counselor: User
    token: str
    student_ids: list[str]
    mentor_ids: list[str]
    session_ids: list[str]

    @property
    def auth(self) -> dict[str, str]:
        return {"Authorization": f"Token {self.token}"}


@pytest.fixture
def fuzz_world(transactional_db) -> FuzzWorld:
    # Rate limits are off (tests/conftest.py), or most generated bookings would be 429s after the first few.
    counselor = CounselorFactory()
    students = [funded_student(counselor) for _ in range(3)]
    mentors = [MentorFactory() for _ in range(3)]
    api = api_client_for(counselor)
    booked = [
        api.post(
            BOOK_URL, booking_body(student=students[i], mentor=mentors[i], start=future(hours=24 + i)), format="json"
        )
        for i in range(3)
    ]
    assert [r.status_code for r in booked] == [201] * 3, [r.content for r in booked]
    session_ids = [r.json()["sessionId"] for r in booked]
    _fail_for_good(session_ids[0])  # a session that can be retried
    other = CounselorFactory()
    theirs = api_client_for(other).post(
        BOOK_URL, booking_body(student=funded_student(other), mentor=mentors[0], start=future(hours=72)), format="json"
    )
    assert theirs.status_code == 201, theirs.content
    return FuzzWorld(
        counselor=counselor,
        token=token_for(counselor),
        student_ids=[str(s.id) for s in students],
        mentor_ids=[str(m.id) for m in mentors],
        session_ids=[*session_ids, theirs.json()["sessionId"]],  # the last one is another counselor's: 404
    )


def _fail_for_good(session_id: str) -> None:
    """Provisioning gave up: the saga compensates and the session ends MEETING_FAILED."""
    MeetingSaga.objects.filter(session_id=session_id).update(
        state=SagaState.COMPENSATING, compensation_reason="The provider refused the meeting: fuzz setup."
    )
    saga_advance(session_id=session_id)
    assert Session.objects.get(id=session_id).status == SessionStatus.MEETING_FAILED


@pytest.fixture
def api_schema(live_server, fuzz_world):
    loaded = schemathesis.openapi.from_url(f"{live_server.url}/api/schema/?format=json", timeout=10)

    @loaded.hook
    def flatmap_body(context, body):
        if context.operation.path != BOOK_URL or not isinstance(body, dict):
            return st.just(body)
        return st.one_of(_bookable(body, fuzz_world), st.just(body))

    @loaded.hook
    def flatmap_path_parameters(context, path_parameters):
        if not isinstance(path_parameters, dict) or "session_id" not in path_parameters:
            return st.just(path_parameters)
        known = st.sampled_from(fuzz_world.session_ids).map(lambda sid: {**path_parameters, "session_id": sid})
        return st.one_of(st.just(path_parameters), known)

    return loaded


def _bookable(body: dict[str, Any], world: FuzzWorld) -> st.SearchStrategy:
    """The generated body with real people and a start inside the booking horizon, so it may well succeed."""

    def build(student: str, mentor: str, hours: int, offset: str) -> dict[str, Any]:
        start = (timezone.now() + timedelta(hours=hours)).replace(minute=0, second=0, microsecond=0)
        iso = start.isoformat().replace("+00:00", "Z")
        if offset != "Z":
            sign = 1 if offset[0] == "+" else -1
            shift = timedelta(hours=int(offset[1:3]), minutes=int(offset[4:6])) * sign
            iso = (start + shift).replace(tzinfo=None).isoformat() + offset
        people = {"studentIds": [student]} if "studentIds" in body else {"studentId": student}
        return {**body, **people, "mentorId": mentor, "scheduledStartTime": iso}

    return st.builds(
        build,
        st.sampled_from(world.student_ids),
        st.sampled_from(world.mentor_ids),
        st.integers(min_value=2, max_value=24 * 28),
        st.sampled_from(OFFSETS),
    )


schema = schemathesis.pytest.from_fixture("api_schema")


@settings(
    max_examples=EXAMPLES_PER_OPERATION,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much, HealthCheck.function_scoped_fixture],
)
@schema.parametrize()
def test_every_operation_answers_as_its_schema_says(case, fuzz_world):
    case.call_and_validate(headers=fuzz_world.auth, checks=CHECKS, timeout=10)
