"""`manage.py seed_demo --json` (API.md "Demo data"): the printed shape, idempotence, and that the data books."""

import io
import json
import uuid

import pytest
from django.core.management import call_command
from rest_framework.test import APIClient

from accounts_app.models import Role, User
from holds_app.models import Entitlement
from tests.conftest import BOOK_URL
from tests.factories import future

pytestmark = pytest.mark.django_db

BILLABLE = {"regular_mentoring", "gap_analysis", "ai_career"}


def seed() -> dict:
    buf = io.StringIO()
    call_command("seed_demo", "--json", stdout=buf)
    return json.loads(buf.getvalue())


def _is_uuid(value) -> bool:
    try:
        return str(uuid.UUID(value)) == value
    except (TypeError, ValueError, AttributeError):
        return False


def test_seed_demo_json_prints_exactly_the_documented_shape():
    # when the demo data is seeded with --json
    demo = seed()

    # then the output is exactly the shape of API.md "Demo data"
    assert set(demo) == {"counselor", "otherCounselor", "mentors", "students"}
    for key in ("counselor", "otherCounselor"):
        assert set(demo[key]) == {"id", "token"}
        assert _is_uuid(demo[key]["id"])
        assert isinstance(demo[key]["token"], str) and demo[key]["token"]
    assert demo["counselor"]["id"] != demo["otherCounselor"]["id"]
    assert demo["counselor"]["token"] != demo["otherCounselor"]["token"]

    assert len(demo["mentors"]) >= 3
    for mentor in demo["mentors"]:
        assert set(mentor) == {"id"}
        assert _is_uuid(mentor["id"])

    assert len(demo["students"]) >= 3
    for student in demo["students"]:
        assert set(student) == {"id", "balances"}
        assert _is_uuid(student["id"])
        assert student["balances"] == {name: 10 for name in BILLABLE}


def test_seed_demo_json_prints_only_json():
    buf = io.StringIO()
    call_command("seed_demo", "--json", stdout=buf)

    json.loads(buf.getvalue())  # nothing but the document: no banner before or after


def test_the_printed_people_exist_with_their_roles_and_the_students_belong_to_the_counselor():
    demo = seed()

    counselor = User.objects.get(id=demo["counselor"]["id"])
    assert counselor.role == Role.COUNSELOR
    assert User.objects.get(id=demo["otherCounselor"]["id"]).role == Role.COUNSELOR
    assert {u.role for u in User.objects.filter(id__in=[m["id"] for m in demo["mentors"]])} == {Role.MENTOR}
    students = User.objects.select_related("profile").filter(id__in=[s["id"] for s in demo["students"]])
    assert len(students) == len(demo["students"])
    for student in students:
        assert student.role == Role.STUDENT
        assert student.profile.counselor_id == counselor.id


def test_seeding_twice_gives_the_same_ids_and_tokens_and_creates_nobody_new():
    # given the demo already seeded
    first = seed()
    users, entitlements = User.objects.count(), Entitlement.objects.count()

    # when it is seeded again
    second = seed()

    # then the same output, and no new people or entitlements
    assert second == first
    assert User.objects.count() == users
    assert Entitlement.objects.count() == entitlements


def test_seeding_again_after_a_booking_keeps_reporting_the_true_balance():
    # given a booking spent one regular_mentoring unit of the first student
    demo = seed()
    student, mentor = demo["students"][0], demo["mentors"][0]
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {demo['counselor']['token']}")
    response = client.post(BOOK_URL, _body(student["id"], mentor["id"]), format="json")
    assert response.status_code == 201, response.json()

    # when the demo is seeded again
    again = seed()

    # then the balance shows the held unit (no top-up beyond the 10 bought)
    balances = {s["id"]: s["balances"] for s in again["students"]}
    assert balances[student["id"]]["regular_mentoring"] == 9
    assert balances[student["id"]]["gap_analysis"] == 10


def test_the_printed_counselor_token_books_a_printed_student_with_a_printed_mentor():
    # given the demo data
    demo = seed()
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {demo['counselor']['token']}")
    student_id, mentor_id = demo["students"][1]["id"], demo["mentors"][1]["id"]

    # when the counselor books through the API
    response = client.post(BOOK_URL, _body(student_id, mentor_id), format="json")

    # then
    assert response.status_code == 201, response.json()
    session = response.json()
    assert session["studentId"] == student_id
    assert session["mentorId"] == mentor_id
    assert session["counselorId"] == demo["counselor"]["id"]


def test_the_other_counselor_cannot_book_the_first_counselors_demo_students():
    demo = seed()
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {demo['otherCounselor']['token']}")

    response = client.post(BOOK_URL, _body(demo["students"][0]["id"], demo["mentors"][0]["id"]), format="json")

    assert response.status_code == 404
    assert response.json()["error"]["code"] == "NOT_FOUND"


def _body(student_id: str, mentor_id: str) -> dict:
    return {
        "sessionType": "regular_mentoring",
        "studentId": student_id,
        "mentorId": mentor_id,
        "scheduledStartTime": future().isoformat(),
        "duration": 60,
    }
