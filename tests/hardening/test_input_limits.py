"""Input limits: a body over the size limit is refused with 413 before anything parses it (whatever its
Content-Length says, or without one), unknown fields are refused, and a start time given with any offset,
DST days included, is stored once, as the same instant, in UTC."""

import io
import json
import socket
from datetime import UTC, datetime, timedelta
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo

import pytest
from django.core.exceptions import RequestDataTooBig
from django.utils.dateparse import parse_datetime

from booking_project.api import StrictJSONParser
from booking_project.errors import PayloadTooLarge, api_exception_handler
from sessions_app.models import Session
from tests.conftest import BOOK_URL, api_client_for, assert_error, booking_body, funded_student, table_counts
from tests.factories import CounselorFactory, MentorFactory, future, token_for

# --- size -----------------------------------------------------------------------------------------------


def test_a_class_of_fifty_with_the_longest_topic_is_far_below_the_limit(counselor_api, counselor, mentor, settings):
    students = [funded_student(counselor, units=1) for _ in range(50)]
    body = booking_body(student=students[0], mentor=mentor, session_type="class_session", topic="t" * 200)
    body["studentIds"] = [str(s.id) for s in students]

    assert len(json.dumps(body)) * 10 < settings.API_MAX_BODY_BYTES
    response = counselor_api.post(BOOK_URL, body, format="json")

    assert response.status_code == 201, response.content
    assert len(response.json()["studentIds"]) == 50


def test_a_body_over_the_limit_is_413_before_it_is_parsed(counselor_api, student, mentor, settings):
    # given a body that would otherwise be a 400 for its topic: the size is refused before any field is read
    body = booking_body(student=student, mentor=mentor, topic="x" * settings.API_MAX_BODY_BYTES)
    before = table_counts()

    response = counselor_api.post(BOOK_URL, body, format="json")

    error = assert_error(response, 413, "PAYLOAD_TOO_LARGE")
    assert error["details"] == {"maxBytes": settings.API_MAX_BODY_BYTES}
    assert table_counts() == before


def test_the_limit_is_checked_before_authentication(counselor, settings):
    settings.API_MAX_BODY_BYTES = 1024
    anonymous = api_client_for(None)

    response = anonymous.post(BOOK_URL, data=b"{" + b" " * 2048 + b"}", content_type="application/json")

    assert_error(response, 413, "PAYLOAD_TOO_LARGE")


def test_a_stream_longer_than_its_content_length_is_never_read_past_the_limit(settings):
    # A server that hands the app more bytes than Content-Length declared still gets no more than the limit
    # parsed: the parser itself stops reading there.
    settings.API_MAX_BODY_BYTES = 1024
    stream = io.BytesIO(b'{"topic": "' + b"x" * 4096 + b'"}')

    with pytest.raises(PayloadTooLarge):
        StrictJSONParser().parse(stream, "application/json", {})
    assert stream.tell() == 1025


def test_a_request_django_finds_too_big_is_413_in_the_contracts_shape_not_500(client, settings):
    # Django's own cap on form bodies (the admin's login form here) answers in the error shape too.
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 1024

    response = client.post("/admin/login/", {"username": "x" * 4096, "password": "y"})

    assert_error(response, 413, "PAYLOAD_TOO_LARGE")


def test_request_data_too_big_raised_inside_an_api_view_is_413():
    response = api_exception_handler(RequestDataTooBig("too big"), {})

    assert response.status_code == 413
    assert response.data["error"]["code"] == "PAYLOAD_TOO_LARGE"


# --- bodies that lie about their size, sent raw to a live server ---------------------------------------------


def raw_post(live_server, headers: dict[str, str], body: bytes) -> tuple[int, dict]:
    """POST raw bytes to the live server and read its answer, whatever the framing of the body."""
    address = urlsplit(live_server.url)
    head = f"POST {BOOK_URL} HTTP/1.1\r\nHost: {address.hostname}\r\nConnection: close\r\n"
    head += "".join(f"{name}: {value}\r\n" for name, value in headers.items())
    with socket.create_connection((address.hostname, address.port), timeout=10) as conn:
        conn.sendall(head.encode() + b"\r\n")
        try:
            conn.sendall(body)
        except OSError:
            pass  # the server may answer and close before it has read the body: that is the point
        # Read the answer by its own Content-Length, not to the end of the stream: Django's development server
        # drains a declared body it did not read before it closes the connection.
        answer = b""
        while b"\r\n\r\n" not in answer:
            answer += conn.recv(65536)
        head, _, payload = answer.partition(b"\r\n\r\n")
        length = next(
            int(line.split(b":")[1]) for line in head.split(b"\r\n") if line.lower().startswith(b"content-length:")
        )
        while len(payload) < length:
            payload += conn.recv(65536)
    return int(head.split()[1]), json.loads(payload)


@pytest.fixture
def booking_world(transactional_db):
    counselor = CounselorFactory()
    student, mentor = funded_student(counselor), MentorFactory()
    body = json.dumps(booking_body(student=student, mentor=mentor)).encode()
    auth = {"Authorization": f"Token {token_for(counselor)}", "Content-Type": "application/json"}
    return auth, body


def test_a_content_length_over_the_limit_is_413_without_waiting_for_the_body(live_server, booking_world, settings):
    # given a client that declares a body over the limit but sends only a few bytes of it
    auth, body = booking_world
    before = table_counts()

    status, answer = raw_post(live_server, {**auth, "Content-Length": str(settings.API_MAX_BODY_BYTES + 1)}, body)

    # then the server answers at once: it never waits for (or reads) the rest
    assert status == 413 and answer["error"]["code"] == "PAYLOAD_TOO_LARGE"
    assert table_counts() == before


def test_a_content_length_under_the_real_size_only_lets_that_many_bytes_be_read(live_server, booking_world):
    # given a client that declares 40 bytes and sends a body far longer than the limit
    auth, body = booking_world
    before = table_counts()

    status, answer = raw_post(live_server, {**auth, "Content-Length": "40"}, body + b" " * (2 * 1024 * 1024))

    # then the 40 bytes read are truncated JSON: malformed, not parsed further, nothing booked
    assert status == 400 and answer["error"]["code"] == "VALIDATION_ERROR"
    assert table_counts() == before


def test_a_chunked_body_of_unknown_size_is_413(live_server, booking_world):
    # given a valid booking, sent chunked: no Content-Length, so its size cannot be known before reading it
    auth, body = booking_world
    chunked = f"{len(body):x}\r\n".encode() + body + b"\r\n0\r\n\r\n"
    before = table_counts()

    status, answer = raw_post(live_server, {**auth, "Transfer-Encoding": "chunked"}, chunked)

    assert status == 413 and answer["error"]["code"] == "PAYLOAD_TOO_LARGE"
    assert "Content-Length" in answer["error"]["message"]
    assert table_counts() == before


# --- unknown fields ------------------------------------------------------------------------------------------


def test_an_unknown_field_is_400_naming_it(counselor_api, student, mentor):
    before = table_counts()

    response = counselor_api.post(
        BOOK_URL, booking_body(student=student, mentor=mentor, priority="high"), format="json"
    )

    error = assert_error(response, 400, "VALIDATION_ERROR")
    assert error["details"] == {"priority": ["Unknown field."]}
    assert table_counts() == before


# --- time zones and daylight saving -------------------------------------------------------------------------


def _book_at(counselor_api, counselor, local_time: str) -> dict:
    """Books the given wall-clock-with-offset start for a fresh student and mentor; returns the answer."""
    # Zoom: a Feishu reservation may not end more than 30 days ahead, and these times are months away
    body = booking_body(student=funded_student(counselor), mentor=MentorFactory(), duration=15, meetingProvider="zoom")
    body["scheduledStartTime"] = local_time
    response = counselor_api.post(BOOK_URL, body, format="json")
    assert response.status_code == 201, (local_time, response.content)
    return response.json()


def _assert_stored_in_utc(answer: dict, instant: datetime) -> None:
    assert answer["scheduledAt"].endswith("Z"), answer["scheduledAt"]
    assert parse_datetime(answer["scheduledAt"]) == instant
    stored = Session.objects.get(id=answer["sessionId"]).scheduled_at
    assert stored == instant and stored.utcoffset() == timedelta(0)


@pytest.mark.parametrize("offset", ["+08:00", "-05:00", "+05:45", "+14:00", "-12:00", "Z", "+00:00"])
def test_a_start_with_any_offset_is_stored_as_the_same_instant_in_utc(counselor_api, counselor, offset):
    instant = future(hours=72)
    zone = UTC if offset == "Z" else datetime.strptime(offset, "%z").tzinfo
    local_time = instant.astimezone(zone).replace(tzinfo=None).isoformat() + offset

    answer = _book_at(counselor_api, counselor, local_time)

    _assert_stored_in_utc(answer, instant)


def _next_transitions(zone: ZoneInfo, after: datetime, count: int = 2) -> list[datetime]:
    """The next `count` instants (UTC, on the hour) at which the zone's UTC offset changes."""
    found, moment = [], after.replace(minute=0, second=0, microsecond=0)
    while len(found) < count:
        following = moment + timedelta(hours=1)
        if moment.astimezone(zone).utcoffset() != following.astimezone(zone).utcoffset():
            found.append(following)
        moment = following
    return found


@pytest.mark.parametrize("zone_name", ["America/New_York", "Europe/Berlin"])
def test_starts_on_both_daylight_saving_days_are_stored_as_the_right_instants(
    counselor_api, counselor, settings, zone_name
):
    # given the zone's next two changes of offset (spring forward and fall back), inside a horizon made long
    # enough to reach them
    settings.BOOKING_HORIZON_DAYS = 400
    zone = ZoneInfo(zone_name)
    for change in _next_transitions(zone, datetime.now(UTC) + timedelta(days=1)):
        # when sessions start half an hour before and half an hour after the change, each given as the wall
        # clock of that moment with the offset then in force (at fall back, the same wall clock twice)
        for instant in (change - timedelta(minutes=30), change + timedelta(minutes=30)):
            local_time = instant.astimezone(zone).isoformat()

            answer = _book_at(counselor_api, counselor, local_time)

            # then each is stored once, as exactly that instant, in UTC
            _assert_stored_in_utc(answer, instant)


def test_fall_back_wall_clock_twice_gives_two_instants_an_hour_apart(counselor_api, counselor, settings):
    settings.BOOKING_HORIZON_DAYS = 400
    zone = ZoneInfo("America/New_York")
    fall_back = next(
        t
        for t in _next_transitions(zone, datetime.now(UTC) + timedelta(days=1))
        if t.astimezone(zone).dst() == timedelta(0)
    )
    first, second = fall_back - timedelta(minutes=30), fall_back + timedelta(minutes=30)
    assert first.astimezone(zone).strftime("%H:%M") == second.astimezone(zone).strftime("%H:%M") == "01:30"

    answers = [_book_at(counselor_api, counselor, t.astimezone(zone).isoformat()) for t in (first, second)]

    assert [parse_datetime(a["scheduledAt"]) for a in answers] == [first, second]


def test_a_start_without_an_offset_is_400(counselor_api, student, mentor):
    naive = future(hours=72).replace(tzinfo=None).isoformat()
    before = table_counts()

    response = counselor_api.post(
        BOOK_URL, booking_body(student=student, mentor=mentor, scheduledStartTime=naive), format="json"
    )

    error = assert_error(response, 400, "VALIDATION_ERROR")
    assert "offset" in " ".join(error["details"]["scheduledStartTime"])
    assert table_counts() == before
