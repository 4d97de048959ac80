"""Well-formed bookings naming people the counselor may not book: 404 NOT_FOUND (never 403), nothing written.

Also the shape of the domain's 409/422 answers.
"""

import uuid
from types import SimpleNamespace

import pytest

from accounts_app.models import Role
from tests.conftest import BOOK_URL, assert_error, booking_body, funded_student
from tests.conftest import table_counts as row_counts
from tests.factories import (
    CounselorFactory,
    MentorFactory,
    UserFactory,
    future,
    student_for,
)


def test_an_unknown_mentor_answers_404_naming_the_mentor(counselor_api, student):
    # given a mentor id nobody has
    ghost = uuid.uuid4()
    body = booking_body(student=student, mentor=SimpleNamespace(id=ghost))
    before = row_counts()

    # when the counselor books with it
    response = counselor_api.post(BOOK_URL, body, format="json")

    # then
    error = assert_error(response, 404, "NOT_FOUND")
    assert error["details"]["mentorId"] == str(ghost)
    assert row_counts() == before


@pytest.mark.parametrize("not_a_mentor", ["student", "counselor", "inactive mentor"])
def test_a_mentor_id_that_is_not_an_active_mentor_answers_404(counselor, counselor_api, student, not_a_mentor):
    # given an id of a real person who cannot mentor
    if not_a_mentor == "student":
        person = student_for(counselor)
    elif not_a_mentor == "counselor":
        person = CounselorFactory()
    else:
        person = MentorFactory(is_active=False)
    before = row_counts()

    response = counselor_api.post(BOOK_URL, booking_body(student=student, mentor=person), format="json")

    error = assert_error(response, 404, "NOT_FOUND")
    assert error["details"]["mentorId"] == str(person.id)
    assert row_counts() == before


def test_a_student_of_another_counselor_answers_404_like_an_unknown_one(counselor_api, other_counselor, mentor):
    # given a funded student assigned to someone else
    theirs = funded_student(other_counselor)
    before = row_counts()

    # when this counselor tries to book them
    response = counselor_api.post(BOOK_URL, booking_body(student=theirs, mentor=mentor), format="json")

    # then the student is reported as not found (not forbidden), and nothing was written
    error = assert_error(response, 404, "NOT_FOUND")
    assert error["details"]["studentIds"] == [str(theirs.id)]
    assert row_counts() == before


def test_an_unknown_student_answers_404_naming_it(counselor_api, mentor):
    ghost = uuid.uuid4()
    before = row_counts()

    response = counselor_api.post(
        BOOK_URL, booking_body(student=SimpleNamespace(id=ghost), mentor=mentor), format="json"
    )

    error = assert_error(response, 404, "NOT_FOUND")
    assert error["details"]["studentIds"] == [str(ghost)]
    assert row_counts() == before


def test_a_class_with_one_foreign_student_lists_only_that_one_and_books_nobody(
    counselor, counselor_api, other_counselor, mentor
):
    # given a class of two own students and one of another counselor
    mine = [student_for(counselor), student_for(counselor)]
    theirs = student_for(other_counselor)
    body = booking_body(student=mine[0], mentor=mentor, session_type="class_session")
    body["studentIds"] = [str(mine[0].id), str(theirs.id), str(mine[1].id)]
    before = row_counts()

    response = counselor_api.post(BOOK_URL, body, format="json")

    error = assert_error(response, 404, "NOT_FOUND")
    assert error["details"]["studentIds"] == [str(theirs.id)]
    assert row_counts() == before


def test_a_mentor_given_as_the_student_answers_404(counselor_api, mentor):
    # given another mentor's id in the student's place
    other_mentor = MentorFactory()
    before = row_counts()

    response = counselor_api.post(BOOK_URL, booking_body(student=other_mentor, mentor=mentor), format="json")

    error = assert_error(response, 404, "NOT_FOUND")
    assert error["details"]["studentIds"] == [str(other_mentor.id)]
    assert row_counts() == before


@pytest.mark.parametrize("whose", ["own id", "another counselor"])
def test_a_counselor_given_as_the_student_answers_404(counselor, counselor_api, mentor, whose):
    person = counselor if whose == "own id" else CounselorFactory()
    before = row_counts()

    response = counselor_api.post(BOOK_URL, booking_body(student=person, mentor=mentor), format="json")

    error = assert_error(response, 404, "NOT_FOUND")
    assert error["details"]["studentIds"] == [str(person.id)]
    assert row_counts() == before


def test_an_inactive_student_answers_404(counselor, counselor_api, mentor):
    gone = funded_student(counselor)
    gone.is_active = False
    gone.save(update_fields=["is_active"])
    before = row_counts()

    response = counselor_api.post(BOOK_URL, booking_body(student=gone, mentor=mentor), format="json")

    error = assert_error(response, 404, "NOT_FOUND")
    assert error["details"]["studentIds"] == [str(gone.id)]
    assert row_counts() == before


def test_a_student_without_a_profile_answers_404_not_500(counselor_api, mentor):
    # given a student account with no profile (e.g. added in the admin without touching the profile inline)
    orphan = UserFactory(role=Role.STUDENT, profile=None)
    before = row_counts()

    response = counselor_api.post(BOOK_URL, booking_body(student=orphan, mentor=mentor), format="json")

    error = assert_error(response, 404, "NOT_FOUND")
    assert error["details"]["studentIds"] == [str(orphan.id)]
    assert row_counts() == before


def test_a_busy_mentor_answers_409_slot_conflict_listing_who_is_busy_when(counselor, counselor_api, student, mentor):
    # given the mentor already booked 10:00-11:00 (two days ahead)
    start = future(hours=48)
    first = counselor_api.post(BOOK_URL, booking_body(student=student, mentor=mentor, start=start), format="json")
    assert first.status_code == 201, first.json()
    other_student = funded_student(counselor)
    before = row_counts()

    # when another student is booked with that mentor half an hour later
    response = counselor_api.post(
        BOOK_URL, booking_body(student=other_student, mentor=mentor, start=future(hours=48, minutes=30)), format="json"
    )

    # then the conflict names the mentor and the busy interval, and nothing more was written
    error = assert_error(response, 409, "SLOT_CONFLICT")
    conflicts = error["details"]["conflicts"]
    assert {"userId", "start", "end"} == set(conflicts[0])
    assert [c["userId"] for c in conflicts] == [str(mentor.id)]
    assert row_counts() == before


def test_a_student_with_no_free_unit_answers_409_insufficient_balance(counselor, counselor_api, mentor):
    # given a student who has bought nothing
    broke = student_for(counselor)
    before = row_counts()

    response = counselor_api.post(BOOK_URL, booking_body(student=broke, mentor=mentor), format="json")

    assert_error(response, 409, "INSUFFICIENT_BALANCE")
    assert row_counts() == before


def test_the_same_idempotency_key_with_another_body_answers_422(counselor_api, student, mentor):
    # given a booking made with a key
    first = counselor_api.post(
        BOOK_URL, booking_body(student=student, mentor=mentor), format="json", HTTP_IDEMPOTENCY_KEY="same-key"
    )
    assert first.status_code == 201, first.json()
    before = row_counts()

    # when the key is reused for a different booking
    response = counselor_api.post(
        BOOK_URL,
        booking_body(student=student, mentor=mentor, start=future(hours=72)),
        format="json",
        HTTP_IDEMPOTENCY_KEY="same-key",
    )

    assert_error(response, 422, "IDEMPOTENCY_KEY_REUSED")
    assert row_counts() == before
