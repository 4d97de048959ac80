"""Zoom's list of a host's meetings (`GET /users/{userId}/meetings`) as its docs describe it: `upcoming` only
the meetings still to start, `scheduled` (the default) every unexpired scheduled meeting, past start included
— what a re-driven saga needs once the session may have begun (PROVIDERS.md "Zoom")."""

import pytest
import requests

from tests.sandbox.provider_calls import create_zoom_meeting, iso_in, zoom_headers


def listed_agendas(sandbox, headers, **params) -> list[str]:
    response = requests.get(f"{sandbox.url}/v2/users/me/meetings", params=params, headers=headers, timeout=5)
    assert response.status_code == 200, response.text
    return [meeting["agenda"] for meeting in response.json()["meetings"]]


@pytest.fixture
def headers(sandbox):
    return zoom_headers(sandbox)


def test_zoom_accepts_a_meeting_whose_start_has_passed(sandbox, headers):
    start = iso_in(-1)

    created = create_zoom_meeting(sandbox, headers, start=start, agenda="session:begun")

    assert created.status_code == 201
    assert created.json()["start_time"] == start


def test_a_meeting_whose_start_has_passed_is_scheduled_but_not_upcoming(sandbox, headers):
    create_zoom_meeting(sandbox, headers, start=iso_in(-1), agenda="session:begun")
    create_zoom_meeting(sandbox, headers, start=iso_in(24), agenda="session:tomorrow")

    assert listed_agendas(sandbox, headers, type="scheduled") == ["session:begun", "session:tomorrow"]
    assert listed_agendas(sandbox, headers) == ["session:begun", "session:tomorrow"]  # scheduled is the default
    assert listed_agendas(sandbox, headers, type="upcoming") == ["session:tomorrow"]
    assert listed_agendas(sandbox, headers, type="upcoming_meetings") == ["session:tomorrow"]
    assert listed_agendas(sandbox, headers, type="previous_meetings") == ["session:begun"]


def test_a_meeting_that_started_a_minute_ago_is_no_longer_upcoming(sandbox, headers):
    # Its end (an hour away) has not passed: what counts for "upcoming" is the start.
    create_zoom_meeting(sandbox, headers, start=iso_in(-1 / 60), duration=60, agenda="session:now")

    assert listed_agendas(sandbox, headers, type="upcoming") == []
    assert listed_agendas(sandbox, headers, type="scheduled") == ["session:now"]


def test_a_scheduled_meeting_expires_30_days_after_its_date(sandbox, headers):
    create_zoom_meeting(sandbox, headers, start=iso_in(-24 * 31), agenda="session:expired")
    create_zoom_meeting(sandbox, headers, start=iso_in(-24 * 29), agenda="session:last-month")

    assert listed_agendas(sandbox, headers, type="scheduled") == ["session:last-month"]
    assert listed_agendas(sandbox, headers, type="previous_meetings") == ["session:last-month"]


def test_deleted_and_instant_meetings_are_never_listed(sandbox, headers):
    deleted = create_zoom_meeting(sandbox, headers, start=iso_in(-1), agenda="session:deleted").json()
    create_zoom_meeting(sandbox, headers, type=1, agenda="instant")
    requests.delete(f"{sandbox.url}/v2/meetings/{deleted['id']}", headers=headers, timeout=5)

    for listing in ("scheduled", "upcoming", "previous_meetings"):
        assert listed_agendas(sandbox, headers, type=listing) == [], listing
