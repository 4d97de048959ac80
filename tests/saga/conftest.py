"""The providers' HTTP APIs as `responses` answers them, for tests that drive the saga in-process."""

import pytest
import responses

from meetings_app.providers import meeting_provider_clients_reset
from sessions_app.models import MeetingSaga, Session
from tests.conftest import BOOK_URL, booking_body
from tests.factories import future

FEISHU = "https://feishu.test"
ZOOM_API = "https://zoom.test/v2"
ZOOM_OAUTH = "https://zoom.test/oauth/token"
RESERVE_APPLY = f"{FEISHU}/open-apis/vc/v1/reserves/apply"


def feishu_reserve(number: str = "123456789") -> dict:
    return {
        "code": 0,
        "msg": "success",
        "data": {"reserve": {"id": f"r{number}", "meeting_no": number, "url": f"https://vc.feishu.cn/j/{number}"}},
    }


@pytest.fixture
def providers(settings):
    settings.FEISHU_BASE_URL = FEISHU
    settings.FEISHU_APP_ID = "cli_test"
    settings.FEISHU_APP_SECRET = "feishu-secret"
    settings.ZOOM_API_BASE_URL = ZOOM_API
    settings.ZOOM_OAUTH_URL = ZOOM_OAUTH
    settings.ZOOM_ACCOUNT_ID = "acc"
    settings.ZOOM_CLIENT_ID = "cid"
    settings.ZOOM_CLIENT_SECRET = "zoom-secret"
    settings.SAGA_MAX_ATTEMPTS = 3
    # These tests speak the reservation API; tests/saga/test_unknown_outcomes.py covers Feishu's calendar way.
    settings.FEISHU_MEETING_VIA = "reservation"
    meeting_provider_clients_reset()
    with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
        mock.post(
            f"{FEISHU}/open-apis/auth/v3/tenant_access_token/internal",
            json={"code": 0, "msg": "ok", "tenant_access_token": "t-1", "expire": 7200},
        )
        mock.post(ZOOM_OAUTH, json={"access_token": "z-1", "token_type": "bearer", "expires_in": 3600})
        yield mock
    meeting_provider_clients_reset()


@pytest.fixture
def booked(counselor_api, student, mentor):
    """Books a session of `student` with `mentor` at a new hour each call, with the provider asked for."""
    starts = iter(range(30, 600, 3))

    def book(provider: str = "feishu") -> Session:
        body = booking_body(student=student, mentor=mentor, start=future(hours=next(starts)), meetingProvider=provider)
        response = counselor_api.post(BOOK_URL, body, format="json")
        assert response.status_code == 201, response.content
        return Session.objects.get(id=response.json()["sessionId"])

    return book


def saga_of(session: Session) -> MeetingSaga:
    return MeetingSaga.objects.get(session_id=session.id)
