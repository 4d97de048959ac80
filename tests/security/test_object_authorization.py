"""Every endpoint that takes a session id answers another counselor's session with 404 (never 403, so ids
cannot be probed) and changes nothing. The endpoints are read off the URL configuration, so an endpoint
added later is covered without touching this file."""

import pytest
from django.urls import URLPattern, get_resolver

from sessions_app.models import Session
from tests.conftest import BOOK_URL, api_client_for, assert_error, booking_body, table_counts

pytestmark = pytest.mark.django_db


def session_endpoints() -> list[tuple[str, str]]:
    """(method, route) of every view whose route carries a session id."""
    found = []
    for pattern in get_resolver().url_patterns:
        if not isinstance(pattern, URLPattern) or "<str:session_id>" not in str(pattern.pattern):
            continue
        view = pattern.callback.view_class
        for method in ("get", "post", "put", "patch", "delete"):
            if hasattr(view, method):
                found.append((method, str(pattern.pattern)))
    return found


ENDPOINTS = session_endpoints()


def test_the_session_endpoints_are_found():
    routes = {route for _, route in ENDPOINTS}
    assert "api/counselor/sessions/<str:session_id>" in routes
    assert "api/counselor/sessions/<str:session_id>/retry" in routes


@pytest.mark.parametrize("method, route", ENDPOINTS, ids=[f"{m} {r}" for m, r in ENDPOINTS])
def test_another_counselors_session_is_not_found_and_unchanged(
    method, route, counselor_api, student, mentor, other_counselor
):
    session_id = counselor_api.post(BOOK_URL, booking_body(student=student, mentor=mentor), format="json").json()[
        "sessionId"
    ]
    before, status_before = table_counts(), Session.objects.get(id=session_id).status
    url = "/" + route.replace("<str:session_id>", session_id)
    body = {"scheduledStartTime": "2030-01-01T10:00:00+08:00", "duration": 60} if method != "get" else None

    response = getattr(api_client_for(other_counselor), method)(url, body, format="json")

    assert_error(response, 404, "NOT_FOUND")
    assert table_counts() == before
    assert Session.objects.get(id=session_id).status == status_before
