"""Malformed or rule-breaking booking requests: 400 VALIDATION_ERROR naming the field, and nothing written."""

import json
from datetime import timedelta

import pytest
from django.conf import settings

from sessions_app.models import IdempotencyRecord, SessionStudent
from tests.conftest import BOOK_URL, LIST_URL, assert_error, booking_body
from tests.conftest import table_counts as row_counts
from tests.factories import future, student_for


def assert_validation_error(response, field: str | None) -> dict:
    """The contract's 400 body; `field` (when there is one) must be named in details."""
    error = assert_error(response, 400, "VALIDATION_ERROR")
    if field is not None:
        assert field in error["details"], error["details"]
        assert error["details"][field], error["details"]
    return error


def test_the_valid_baseline_body_books_and_writes_rows(counselor_api, student, mentor):
    # given the body every case below breaks in exactly one place
    before = row_counts()

    # when it is sent as is
    response = counselor_api.post(BOOK_URL, booking_body(student=student, mentor=mentor), format="json")

    # then it books, so the "nothing written" checks below are meaningful
    assert response.status_code == 201, response.json()
    after = row_counts()
    assert after["sessions_app.Session"] == before["sessions_app.Session"] + 1
    assert after["sessions_app.SessionStudent"] == before["sessions_app.SessionStudent"] + 1
    assert after["sessions_app.OutboxEvent"] == before["sessions_app.OutboxEvent"] + 1
    assert after["holds_app.Hold"] == before["holds_app.Hold"] + 1
    assert after["calendar_app.CalendarSlot"] == before["calendar_app.CalendarSlot"] + 2


# (case id, field named in details, change to the valid body). A callable value is computed at test time;
# _REMOVE drops the field.
_REMOVE = object()

FIELD_CASES = [
    ("past start time", "scheduledStartTime", {"scheduledStartTime": lambda: future(hours=-1).isoformat()}),
    (
        "start a minute ago",
        "scheduledStartTime",
        {"scheduledStartTime": lambda: future(hours=0, minutes=-1).isoformat()},
    ),
    (
        "start beyond the booking horizon",
        "scheduledStartTime",
        {"scheduledStartTime": lambda: future(hours=24 * (settings.BOOKING_HORIZON_DAYS + 1)).isoformat()},
    ),
    (
        "start without an offset",
        "scheduledStartTime",
        {"scheduledStartTime": lambda: future().replace(tzinfo=None).isoformat()},
    ),
    ("start without an offset, literal", "scheduledStartTime", {"scheduledStartTime": "2026-12-01T10:00:00"}),
    ("start that is not a time", "scheduledStartTime", {"scheduledStartTime": "tomorrow at ten"}),
    ("duration 0", "duration", {"duration": 0}),
    ("duration 10000", "duration", {"duration": 10000}),
    ("duration 14", "duration", {"duration": 14}),
    ("duration 241", "duration", {"duration": 241}),
    ("duration negative", "duration", {"duration": -60}),
    ("duration 'sixty'", "duration", {"duration": "sixty"}),
    ("duration 60.5", "duration", {"duration": 60.5}),
    ("duration null", "duration", {"duration": None}),
    ("duration true", "duration", {"duration": True}),
    ("unknown sessionType", "sessionType", {"sessionType": "tea_party"}),
    ("sessionType null", "sessionType", {"sessionType": None}),
    ("non-UUID studentId", "studentId", {"studentId": "not-a-uuid"}),
    ("non-UUID mentorId", "mentorId", {"mentorId": "12345"}),
    ("topic of 201 characters", "topic", {"topic": "x" * 201}),
    ("topic of 10 kB", "topic", {"topic": "x" * 10_000}),
    ("topic with a NUL character", "topic", {"topic": "Resume\u0000review"}),
    # A line break would end the email's Subject header: every email of the session would fail.
    ("topic with a line break", "topic", {"topic": "Resume review\nBcc: everyone@example.com"}),
    ("topic with a carriage return", "topic", {"topic": "Resume\rreview"}),
    ("topic with a tab", "topic", {"topic": "Resume\treview"}),
    ("topic with a next-line control", "topic", {"topic": "Resume\u0085review"}),
    ("topic with a line separator", "topic", {"topic": "Resume\u2028review"}),
    ("unknown extra field", "foo", {"foo": 1}),
    ("meetingProvider teams", "meetingProvider", {"meetingProvider": "teams"}),
    ("missing sessionType", "sessionType", {"sessionType": _REMOVE}),
    ("missing mentorId", "mentorId", {"mentorId": _REMOVE}),
    ("missing scheduledStartTime", "scheduledStartTime", {"scheduledStartTime": _REMOVE}),
    ("missing duration", "duration", {"duration": _REMOVE}),
    ("no student at all", "studentId", {"studentId": _REMOVE}),
]


@pytest.mark.parametrize("change, field", [(c, f) for _, f, c in FIELD_CASES], ids=[i for i, _, _ in FIELD_CASES])
def test_a_bad_field_is_rejected_with_400_naming_it_and_books_nothing(counselor_api, student, mentor, change, field):
    # given a valid body broken in one field
    body = booking_body(student=student, mentor=mentor)
    for name, value in change.items():
        if value is _REMOVE:
            del body[name]
        else:
            body[name] = value() if callable(value) else value
    before = row_counts()

    # when the counselor books with it
    response = counselor_api.post(BOOK_URL, body, format="json")

    # then 400 names the field and nothing was written
    assert_validation_error(response, field)
    assert row_counts() == before


def test_a_non_uuid_element_of_studentIds_is_rejected_with_400(counselor_api, student, mentor):
    # given a class whose student list holds something that is not a UUID
    body = booking_body(student=student, mentor=mentor, session_type="class_session")
    body["studentIds"] = [str(student.id), "not-a-uuid"]
    before = row_counts()

    # when it is booked
    response = counselor_api.post(BOOK_URL, body, format="json")

    # then the message is plain text saying which item is wrong, not a Python repr
    error = assert_validation_error(response, "studentIds")
    messages = error["details"]["studentIds"]
    assert all(isinstance(m, str) for m in messages), messages
    assert not any("ErrorDetail" in m for m in messages), messages
    assert any("1" in m and "valid UUID" in m for m in messages), messages
    assert row_counts() == before


def test_a_class_of_51_students_is_rejected_with_400(counselor, counselor_api, mentor):
    # given 51 real students of this counselor (so the size, not an unknown id, is what is wrong)
    students = [student_for(counselor) for _ in range(51)]
    body = booking_body(student=students[0], mentor=mentor, session_type="class_session")
    body["studentIds"] = [str(s.id) for s in students]
    before = row_counts()

    # when the class is booked
    response = counselor_api.post(BOOK_URL, body, format="json")

    # then
    assert_validation_error(response, "studentIds")
    assert row_counts() == before


def test_a_class_of_50_students_books(counselor, counselor_api, mentor):
    # given the largest class the contract allows
    students = [student_for(counselor) for _ in range(50)]
    body = booking_body(student=students[0], mentor=mentor, session_type="class_session")
    body["studentIds"] = [str(s.id) for s in students]

    # when it is booked
    response = counselor_api.post(BOOK_URL, body, format="json")

    # then it is accepted (the limit is inclusive)
    assert response.status_code == 201, response.json()
    assert SessionStudent.objects.filter(session_id=response.json()["sessionId"]).count() == 50


def test_a_class_with_no_students_is_rejected_with_400(counselor_api, student, mentor):
    body = booking_body(student=student, mentor=mentor, session_type="class_session", studentIds=[])
    before = row_counts()

    response = counselor_api.post(BOOK_URL, body, format="json")

    assert_validation_error(response, "studentIds")
    assert row_counts() == before


def test_a_class_without_a_studentIds_field_is_rejected_with_400_naming_studentIds(counselor_api, student, mentor):
    body = booking_body(student=student, mentor=mentor, session_type="class_session")
    del body["studentIds"]
    before = row_counts()

    response = counselor_api.post(BOOK_URL, body, format="json")

    assert_validation_error(response, "studentIds")
    assert row_counts() == before


def test_a_single_student_type_given_two_students_is_rejected_with_400(counselor, counselor_api, student, mentor):
    # given a regular mentoring session listing two students
    second = student_for(counselor)
    body = booking_body(student=student, mentor=mentor)
    del body["studentId"]
    body["studentIds"] = [str(student.id), str(second.id)]
    before = row_counts()

    response = counselor_api.post(BOOK_URL, body, format="json")

    assert_validation_error(response, "studentIds")
    assert row_counts() == before


def test_studentId_and_a_different_studentIds_together_are_rejected_with_400(counselor, counselor_api, student, mentor):
    second = student_for(counselor)
    body = booking_body(student=student, mentor=mentor, studentIds=[str(second.id)])
    before = row_counts()

    response = counselor_api.post(BOOK_URL, body, format="json")

    assert_validation_error(response, "studentId")
    assert row_counts() == before


def test_a_student_listed_twice_in_a_class_is_rejected_with_400(counselor_api, student, mentor):
    body = booking_body(student=student, mentor=mentor, session_type="class_session")
    body["studentIds"] = [str(student.id), str(student.id)]
    before = row_counts()

    response = counselor_api.post(BOOK_URL, body, format="json")

    assert_validation_error(response, "studentIds")
    assert row_counts() == before


@pytest.mark.parametrize("session_type", ["regular_mentoring", "class_session"])
def test_the_mentor_listed_as_a_student_is_rejected_with_400(counselor_api, student, mentor, session_type):
    # given the mentor's own id among the students
    body = booking_body(student=student, mentor=mentor, session_type=session_type)
    if session_type == "class_session":
        body["studentIds"] = [str(student.id), str(mentor.id)]
    else:
        body["studentId"] = str(mentor.id)
    before = row_counts()

    response = counselor_api.post(BOOK_URL, body, format="json")

    assert_validation_error(response, "mentorId")
    assert row_counts() == before


@pytest.mark.parametrize(
    "payload, content_type",
    [
        (b'{"sessionType": "regular_mentoring", ', "application/json"),
        (b"not json at all", "application/json"),
        (b"\xff\xfe\x00garbage", "application/json"),
        (b"", "application/json"),
        (b"sessionType=regular_mentoring&duration=60", "application/x-www-form-urlencoded"),
        (b"sessionType: regular_mentoring", "text/plain"),
        (json.dumps([{"sessionType": "regular_mentoring"}]).encode(), "application/json"),
        (json.dumps("regular_mentoring").encode(), "application/json"),
        (b"42", "application/json"),
        (b"null", "application/json"),
        (b"[" * 20_000 + b"]" * 20_000, "application/json"),
        (b'{"a":' * 5_000 + b"1" + b"}" * 5_000, "application/json"),
        (b'{"duration": NaN}', "application/json"),
    ],
    ids=[
        "truncated JSON",
        "not JSON",
        "undecodable bytes",
        "empty body",
        "form-encoded",
        "text/plain",
        "JSON list",
        "JSON string",
        "JSON number",
        "JSON null",
        "list nested 20000 deep",
        "object nested 5000 deep",
        "NaN",
    ],
)
def test_a_body_that_is_not_a_json_object_is_rejected_with_400(counselor_api, student, mentor, payload, content_type):
    before = row_counts()

    # when the raw bytes are posted
    response = counselor_api.post(BOOK_URL, data=payload, content_type=content_type)

    # then it is malformed input in the contract's shape, not a 415 or a 500
    assert_validation_error(response, None)
    assert row_counts() == before


@pytest.mark.parametrize("field", ["topic", "sessionType", "studentId", "mentorId", "scheduledStartTime"])
def test_a_lone_surrogate_escape_in_a_string_is_rejected_with_400(counselor_api, student, mentor, field):
    # given a valid body where one string holds "\\ud800": legal JSON syntax, but not Unicode text
    body = booking_body(student=student, mentor=mentor)
    body[field] = "Resume \ud800 review"
    payload = json.dumps(body).encode()  # ensure_ascii escapes the surrogate as \\ud800
    assert b"\\ud800" in payload
    before = row_counts()

    response = counselor_api.post(BOOK_URL, data=payload, content_type="application/json")

    # then it is malformed input, not a 500 when the app echoes, fingerprints or stores it
    assert_validation_error(response, None)
    assert row_counts() == before


def test_a_lone_surrogate_escape_in_a_field_name_is_rejected_with_400(counselor_api, student, mentor):
    body = booking_body(student=student, mentor=mentor)
    body["\ud800"] = 1
    before = row_counts()

    response = counselor_api.post(BOOK_URL, data=json.dumps(body).encode(), content_type="application/json")

    assert_validation_error(response, None)
    assert row_counts() == before


def test_a_multipart_form_is_rejected_with_400(counselor_api, student, mentor):
    before = row_counts()

    response = counselor_api.post(BOOK_URL, booking_body(student=student, mentor=mentor), format="multipart")

    assert_validation_error(response, None)
    assert row_counts() == before


@pytest.mark.parametrize("key", ["k" * 256, ""], ids=["256 characters", "empty"])
def test_an_idempotency_key_outside_1_to_255_characters_is_rejected_with_400(counselor_api, student, mentor, key):
    before = row_counts()

    response = counselor_api.post(
        BOOK_URL, booking_body(student=student, mentor=mentor), format="json", HTTP_IDEMPOTENCY_KEY=key
    )

    assert_validation_error(response, "Idempotency-Key")
    assert row_counts() == before


def test_an_idempotency_key_of_255_characters_is_accepted(counselor_api, student, mentor):
    response = counselor_api.post(
        BOOK_URL, booking_body(student=student, mentor=mentor), format="json", HTTP_IDEMPOTENCY_KEY="k" * 255
    )

    assert response.status_code == 201, response.json()
    assert IdempotencyRecord.objects.filter(key="k" * 255).count() == 1


def test_a_validation_error_with_an_idempotency_key_is_not_remembered(counselor_api, student, mentor):
    # given a bad body sent with a key
    bad = counselor_api.post(
        BOOK_URL, booking_body(student=student, mentor=mentor, duration=0), format="json", HTTP_IDEMPOTENCY_KEY="k-1"
    )
    assert_validation_error(bad, "duration")
    assert IdempotencyRecord.objects.count() == 0

    # when the fixed body is retried with the same key
    fixed = counselor_api.post(
        BOOK_URL, booking_body(student=student, mentor=mentor), format="json", HTTP_IDEMPOTENCY_KEY="k-1"
    )

    # then it books (not 422)
    assert fixed.status_code == 201, fixed.json()


def test_a_start_just_inside_the_horizon_books_and_one_beyond_it_is_rejected(counselor_api, student, mentor):
    # a minute of slack each side keeps the test independent of how long the request takes
    inside = future(hours=24 * settings.BOOKING_HORIZON_DAYS, minutes=-1)
    outside = future(hours=24 * settings.BOOKING_HORIZON_DAYS, minutes=+2)

    ok = counselor_api.post(
        BOOK_URL, booking_body(student=student, mentor=mentor, start=inside, meetingProvider="zoom"), format="json"
    )
    too_far = counselor_api.post(
        BOOK_URL,
        booking_body(student=student, mentor=mentor, start=outside + timedelta(hours=5), meetingProvider="zoom"),
        format="json",
    )

    assert ok.status_code == 201, ok.json()
    assert_validation_error(too_far, "scheduledStartTime")


def test_a_feishu_meeting_must_end_within_feishus_thirty_days(counselor_api, student, mentor):
    # Feishu refuses a reservation that ends more than 30 days ahead: refused at booking, not minutes later
    ends_in_time = future(hours=24 * 30, minutes=-62)
    ends_too_late = future(hours=24 * 30, minutes=-30)

    ok = counselor_api.post(
        BOOK_URL, booking_body(student=student, mentor=mentor, start=ends_in_time, duration=60), format="json"
    )
    too_late = counselor_api.post(
        BOOK_URL, booking_body(student=student, mentor=mentor, start=ends_too_late, duration=60), format="json"
    )

    assert ok.status_code == 201, ok.json()
    assert "Feishu" in assert_validation_error(too_late, "scheduledStartTime")["details"]["scheduledStartTime"][0]


@pytest.mark.parametrize(
    "query, field",
    [
        ("status=BOGUS", "status"),
        ("sessionType=nope", "sessionType"),
        ("from=not-a-date", "from"),
        ("to=not-a-date", "to"),
        ("from=2026-12-01T10:00:00", "from"),
        ("pageSize=0", "pageSize"),
        ("pageSize=101", "pageSize"),
        ("pageSize=abc", "pageSize"),
        ("page=0", "page"),
    ],
)
def test_a_bad_list_filter_is_rejected_with_400(counselor_api, query, field):
    response = counselor_api.get(f"{LIST_URL}?{query}")

    assert_validation_error(response, field)
