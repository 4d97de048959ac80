"""Who may book, read and list sessions (API.md "Authentication"), and the shape of every refusal."""

import uuid

import pytest
from rest_framework.test import APIClient

from sessions_app.models import Session
from tests.conftest import (
    BOOK_URL,
    LIST_URL,
    api_client_for,
    assert_error,
    booking_body,
    detail_url,
    funded_student,
)
from tests.factories import StaffFactory, future, token_for


@pytest.fixture
def booked(counselor_api, student, mentor) -> dict:
    """A session booked by `counselor` for their `student`."""
    response = counselor_api.post(BOOK_URL, booking_body(student=student, mentor=mentor), format="json")
    assert response.status_code == 201, response.json()
    return response.json()


def _call(client: APIClient, action: str, booked: dict, student, mentor):
    if action == "book":
        # another time than `booked`, so that only the refusal (not a slot conflict) can stop it
        body = booking_body(student=student, mentor=mentor, start=future(hours=72))
        return client.post(BOOK_URL, body, format="json")
    if action == "read":
        return client.get(detail_url(booked["sessionId"]))
    return client.get(LIST_URL)


ACTIONS = ["book", "read", "list"]


@pytest.mark.parametrize("action", ACTIONS)
def test_no_credentials_answers_401_with_www_authenticate(booked, student, mentor, action):
    # given a client with no credentials
    sessions_before = Session.objects.count()

    # when it books, reads or lists
    response = _call(APIClient(), action, booked, student, mentor)

    # then 401 UNAUTHENTICATED, telling it how to authenticate, and nothing booked
    assert_error(response, 401, "UNAUTHENTICATED")
    assert response["WWW-Authenticate"].startswith("Token")
    assert Session.objects.count() == sessions_before


@pytest.mark.parametrize("action", ACTIONS)
@pytest.mark.parametrize(
    "authorization",
    ["Token not-a-real-token", "Token", "Token two words", "Bearer abc", "Basic Zm9vOmJhcg=="],
    ids=["unknown token", "empty token", "token with spaces", "bearer scheme", "basic scheme"],
)
def test_bad_credentials_answer_401(booked, student, mentor, action, authorization):
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=authorization)
    sessions_before = Session.objects.count()

    response = _call(client, action, booked, student, mentor)

    assert_error(response, 401, "UNAUTHENTICATED")
    assert "WWW-Authenticate" in response
    assert Session.objects.count() == sessions_before


def test_a_deactivated_counselors_token_answers_401(counselor, counselor_api, booked):
    counselor.is_active = False
    counselor.save(update_fields=["is_active"])

    response = counselor_api.get(detail_url(booked["sessionId"]))

    assert_error(response, 401, "UNAUTHENTICATED")


def test_an_unknown_session_answers_401_not_404_without_credentials(db):
    # an anonymous caller cannot tell an existing session from a missing one
    response = APIClient().get(detail_url(uuid.uuid4()))

    assert_error(response, 401, "UNAUTHENTICATED")


@pytest.mark.parametrize("action", ACTIONS)
@pytest.mark.parametrize("role", ["mentor", "student"])
def test_a_mentor_or_a_student_is_forbidden_with_403(booked, student, mentor, action, role):
    # given a valid token of someone who is not a counselor (the session's own mentor or student)
    client = api_client_for(mentor if role == "mentor" else student)
    sessions_before = Session.objects.count()

    response = _call(client, action, booked, student, mentor)

    assert_error(response, 403, "FORBIDDEN")
    assert Session.objects.count() == sessions_before


def test_staff_cannot_book_403(booked, student, mentor):
    response = api_client_for(StaffFactory()).post(
        BOOK_URL, booking_body(student=student, mentor=mentor), format="json"
    )

    assert_error(response, 403, "FORBIDDEN")


def test_another_counselor_gets_404_for_the_session_and_does_not_list_it(other_counselor, booked):
    # given a session booked by the first counselor
    other = api_client_for(other_counselor)

    # when another counselor reads it by id, and lists their sessions
    read = other.get(detail_url(booked["sessionId"]))
    listed = other.get(LIST_URL)

    # then it answers exactly like a session that does not exist, and their list is empty
    assert_error(read, 404, "NOT_FOUND")
    assert read.json() == api_client_for(other_counselor).get(detail_url(uuid.uuid4())).json()
    assert listed.status_code == 200
    assert listed.json()["count"] == 0
    assert booked["sessionId"] not in [s["sessionId"] for s in listed.json()["results"]]


def test_the_owner_reads_and_lists_their_session(counselor_api, booked):
    read = counselor_api.get(detail_url(booked["sessionId"]))
    listed = counselor_api.get(LIST_URL)

    assert read.status_code == 200
    assert read.json()["sessionId"] == booked["sessionId"]
    assert [s["sessionId"] for s in listed.json()["results"]] == [booked["sessionId"]]


@pytest.mark.parametrize("raw_id", ["not-a-uuid", "123", "00000000-0000-0000-0000-00000000000g", "%20"], ids=repr)
def test_a_malformed_session_id_answers_404_in_the_error_shape(counselor_api, raw_id):
    response = counselor_api.get(detail_url(raw_id))

    assert_error(response, 404, "NOT_FOUND")


@pytest.mark.parametrize("path", ["/api/nothing-here", "/api/counselor/sessions/book/extra/", "/api/"])
def test_an_unknown_url_under_api_answers_404_json(counselor_api, path):
    response = counselor_api.get(path)

    assert_error(response, 404, "NOT_FOUND")


def test_staff_read_and_list_any_counselors_session(booked):
    staff = api_client_for(StaffFactory())

    read = staff.get(detail_url(booked["sessionId"]))
    listed = staff.get(LIST_URL)

    assert read.status_code == 200, read.json()
    assert read.json()["sessionId"] == booked["sessionId"]
    assert booked["sessionId"] in [s["sessionId"] for s in listed.json()["results"]]


def test_a_session_logged_in_counselor_reads_and_lists(counselor, booked):
    # given the web UI's Django session login
    client = APIClient()
    client.force_login(counselor)

    read = client.get(detail_url(booked["sessionId"]))
    listed = client.get(LIST_URL)

    assert read.status_code == 200, read.json()
    assert read.json()["sessionId"] == booked["sessionId"]
    assert listed.status_code == 200
    assert listed.json()["count"] == 1


def test_a_session_logged_in_mentor_is_forbidden_403(booked, mentor):
    client = APIClient()
    client.force_login(mentor)

    assert_error(client.get(LIST_URL), 403, "FORBIDDEN")


def test_a_session_authenticated_booking_without_csrf_token_is_refused_403(counselor, student, mentor):
    # given a browser session with CSRF checks on, as in production
    client = APIClient(enforce_csrf_checks=True)
    client.force_login(counselor)

    # when it books without a CSRF token
    response = client.post(BOOK_URL, booking_body(student=student, mentor=mentor), format="json")

    # then it is refused in the error shape and nothing was booked
    error = assert_error(response, 403, "FORBIDDEN")
    assert "CSRF" in error["message"]
    assert Session.objects.count() == 0


def test_a_session_authenticated_booking_with_a_csrf_token_books(counselor, student, mentor):
    # given a browser session that has received its CSRF cookie (from any Django page, here the admin login)
    client = APIClient(enforce_csrf_checks=True)
    client.force_login(counselor)
    client.get("/admin/login/")
    token = client.cookies["csrftoken"].value

    # when it books sending the token back in the header
    response = client.post(
        BOOK_URL, booking_body(student=student, mentor=mentor), format="json", HTTP_X_CSRFTOKEN=token
    )

    # then
    assert response.status_code == 201, response.json()
    assert Session.objects.filter(id=response.json()["sessionId"], counselor=counselor).exists()


def test_a_token_client_needs_no_csrf_token(counselor, student, mentor):
    # given an API client authenticating by token, with CSRF checks on
    client = APIClient(enforce_csrf_checks=True)
    client.credentials(HTTP_AUTHORIZATION=f"Token {token_for(counselor)}")

    response = client.post(BOOK_URL, booking_body(student=student, mentor=mentor), format="json")

    assert response.status_code == 201, response.json()


@pytest.mark.parametrize("method", ["get", "put", "patch", "delete"])
def test_a_wrong_method_on_the_book_url_answers_405_in_the_error_shape(counselor_api, method):
    response = getattr(counselor_api, method)(BOOK_URL)

    assert_error(response, 405, "METHOD_NOT_ALLOWED")
    assert "POST" in response["Allow"]


def test_a_post_to_the_detail_url_answers_405(counselor_api, booked):
    response = counselor_api.post(detail_url(booked["sessionId"]), {}, format="json")

    assert_error(response, 405, "METHOD_NOT_ALLOWED")


def test_another_counselor_booking_this_counselors_student_answers_404(other_counselor, student, mentor):
    # the other counselor cannot book this counselor's student: 404, nothing written
    response = api_client_for(other_counselor).post(
        BOOK_URL, booking_body(student=student, mentor=mentor), format="json"
    )

    assert_error(response, 404, "NOT_FOUND")
    assert Session.objects.count() == 0


def test_the_list_of_each_counselor_holds_only_their_own_sessions(counselor, other_counselor, booked, mentor):
    # given the other counselor books their own student too
    theirs = funded_student(other_counselor)
    other = api_client_for(other_counselor)
    made = other.post(BOOK_URL, booking_body(student=theirs, mentor=mentor, start=future(hours=96)), format="json")
    assert made.status_code == 201, made.json()

    mine = api_client_for(counselor).get(LIST_URL).json()["results"]
    their_list = other.get(LIST_URL).json()["results"]

    assert [s["sessionId"] for s in mine] == [booked["sessionId"]]
    assert [s["sessionId"] for s in their_list] == [made.json()["sessionId"]]


# --- ownership: the booking counselor acts; a counselor assigned a student later only reads ----------------


@pytest.fixture
def class_with_a_reassigned_student(counselor_api, counselor, other_counselor, mentor) -> dict:
    """A class booked by `counselor` for two of their students; one student then moves to `other_counselor`."""
    students = [funded_student(counselor), funded_student(counselor)]
    body = booking_body(student=students[0], mentor=mentor, session_type="class_session")
    body["studentIds"] = [str(s.id) for s in students]
    response = counselor_api.post(BOOK_URL, body, format="json")
    assert response.status_code == 201, response.json()
    students[1].profile.counselor = other_counselor
    students[1].profile.save()
    return response.json()


@pytest.mark.parametrize("action", ["cancel", "retry", "reschedule", "complete"])
def test_a_counselor_assigned_one_student_of_a_class_cannot_act_on_it(
    other_counselor, class_with_a_reassigned_student, action
):
    session_id = class_with_a_reassigned_student["sessionId"]
    body = {"scheduledStartTime": future(hours=100).isoformat(), "duration": 60} if action == "reschedule" else {}

    response = api_client_for(other_counselor).post(f"{detail_url(session_id)}/{action}", body, format="json")

    assert_error(response, 404, "NOT_FOUND")
    assert Session.objects.get(id=session_id).status == "PENDING_MEETING"


def test_a_counselor_assigned_one_student_of_a_class_reads_and_lists_it(
    other_counselor, class_with_a_reassigned_student
):
    session_id = class_with_a_reassigned_student["sessionId"]
    other = api_client_for(other_counselor)

    assert other.get(detail_url(session_id)).json()["counselorId"] == class_with_a_reassigned_student["counselorId"]
    assert [s["sessionId"] for s in other.get(LIST_URL).json()["results"]] == [session_id]


def test_the_booking_counselor_keeps_a_class_whose_students_all_moved(
    counselor_api, other_counselor, class_with_a_reassigned_student
):
    session_id = class_with_a_reassigned_student["sessionId"]
    for student in Session.objects.get(id=session_id).students.all():
        student.profile.counselor = other_counselor
        student.profile.save()

    assert counselor_api.get(detail_url(session_id)).status_code == 200
    assert [s["sessionId"] for s in counselor_api.get(LIST_URL).json()["results"]] == [session_id]
    assert counselor_api.post(f"{detail_url(session_id)}/cancel").json()["status"] == "CANCELLED"
