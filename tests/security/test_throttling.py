"""Per-counselor rate limits: a counselor hammering an endpoint gets 429 after the limit, in the contract's
shape with Retry-After, and nothing beyond the limit is booked."""

from datetime import timedelta

import pytest

from booking_project.throttles import rate_parse
from sessions_app.models import Session
from tests.booking.test_races import race
from tests.conftest import BOOK_URL, api_client_for, assert_error, booking_body, detail_url, funded_student
from tests.factories import CounselorFactory, MentorFactory, future


@pytest.mark.race
@pytest.mark.django_db(transaction=True)
def test_a_counselor_hammering_book_gets_429_after_the_limit_and_nothing_more_is_booked(settings):
    # a day's window, so the test cannot straddle two windows
    settings.THROTTLE_BOOK_RATE = "5/day"
    counselor = CounselorFactory()
    student = funded_student(counselor, units=50)
    mentor = MentorFactory()
    start = future()
    bodies = [booking_body(student=student, mentor=mentor, start=start + timedelta(hours=i)) for i in range(20)]

    responses = race(bodies, counselor)

    statuses = sorted(r.status_code for r in responses)
    assert statuses == [201] * 5 + [429] * 15
    assert Session.objects.filter(counselor=counselor).count() == 5
    for response in responses:
        if response.status_code == 429:
            error = assert_error(response, 429, "THROTTLED")
            assert int(response["Retry-After"]) >= 1
            assert error["details"]["retryAfterSeconds"] == int(response["Retry-After"])


@pytest.mark.django_db
def test_the_limit_is_per_counselor(settings, mentor):
    settings.THROTTLE_BOOK_RATE = "1/day"
    first, second = CounselorFactory(), CounselorFactory()
    for counselor, hours in ((first, 30), (second, 40)):
        body = booking_body(student=funded_student(counselor), mentor=mentor, start=future(hours=hours))
        assert api_client_for(counselor).post(BOOK_URL, body, format="json").status_code == 201

    again = booking_body(student=funded_student(first), mentor=mentor, start=future(hours=50))
    assert_error(api_client_for(first).post(BOOK_URL, again, format="json"), 429, "THROTTLED")


@pytest.mark.django_db
def test_actions_have_their_own_limit(settings, counselor_api, student, mentor):
    settings.THROTTLE_ACTION_RATE = "2/day"
    session_id = counselor_api.post(BOOK_URL, booking_body(student=student, mentor=mentor), format="json").json()[
        "sessionId"
    ]
    retry = f"{detail_url(session_id)}/retry"

    first, second, third = (counselor_api.post(retry) for _ in range(3))

    assert_error(first, 409, "INVALID_STATE")
    assert_error(second, 409, "INVALID_STATE")
    assert_error(third, 429, "THROTTLED")
    # reading is not an action: still answered
    assert counselor_api.get(detail_url(session_id)).status_code == 200


@pytest.mark.django_db
def test_none_turns_a_limit_off(settings, counselor_api, counselor, mentor):
    settings.THROTTLE_BOOK_RATE = "none"
    student = funded_student(counselor, units=40)
    for i in range(35):  # more than the default 30/min
        body = booking_body(student=student, mentor=mentor, start=future(hours=30 + i))
        assert counselor_api.post(BOOK_URL, body, format="json").status_code == 201


@pytest.mark.django_db
def test_an_anonymous_request_is_401_not_throttled(settings, client):
    settings.THROTTLE_BOOK_RATE = "1/day"
    for _ in range(3):
        assert_error(client.post(BOOK_URL, {}, content_type="application/json"), 401, "UNAUTHENTICATED")


@pytest.mark.parametrize(
    "rate, parsed",
    [
        ("30/min", (30, 60)),
        ("60/m", (60, 60)),
        ("5/s", (5, 1)),
        ("100/hour", (100, 3600)),
        ("none", None),
        (None, None),
    ],
)
def test_rates_read_like_drf_rates(rate, parsed):
    assert rate_parse(rate) == parsed
