"""The mentor's own calendar counts in what is offered (issue 16 item 3): busy there is not offered; a calendar
that does not answer in time is reported in `calendarsSkipped` and the answer still comes."""

import pytest
import requests
import responses

from tests.availability.conftest import at, availability, local_day, starts_of
from tests.calendar_busy.conftest import calendar_busy_settings, provider_api  # noqa: F401 - fixtures
from tests.calendar_busy.test_mentor_calendar_busy import GOOGLE_FREEBUSY_URL, google_answers, google_mentor

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("calendar_busy_settings")]


def test_a_time_busy_in_the_mentors_own_calendar_is_not_offered(counselor_api, student, provider_api):  # noqa: F811
    mentor = google_mentor()
    day = local_day()
    google_answers(provider_api, mentor.email, (at(day, 10), at(day, 11, 30)))

    response = availability(counselor_api, mentor=mentor, students=[student], day=day)

    offered = set(starts_of(response))
    assert at(day, 9) in offered and at(day, 11, 30) in offered
    assert not offered & {at(day, 9, 15), at(day, 10), at(day, 10, 45), at(day, 11, 15)}
    assert response.json()["calendarsChecked"] == [f"google:{mentor.email}"]
    assert response.json()["calendarsSkipped"] == []


def test_a_mentors_calendar_that_times_out_is_reported_not_fatal(counselor_api, student, provider_api):  # noqa: F811
    mentor = google_mentor()
    provider_api.add(responses.POST, GOOGLE_FREEBUSY_URL, body=requests.exceptions.ReadTimeout("slow"))

    response = availability(counselor_api, mentor=mentor, students=[student], day=local_day())

    assert response.status_code == 200
    assert len(response.json()["slots"]) == 24 * 4, "offered as if free: the calendar could not say otherwise"
    assert response.json()["calendarsChecked"] == []
    assert response.json()["calendarsSkipped"] == [f"google:{mentor.email}"]
