"""The saga tests' `responses` providers serve the lifecycle tests too; `book` and `scheduled` make sessions."""

import pytest

from sessions_app.models import Session, SessionStatus
from sessions_app.saga import saga_advance
from tests.conftest import BOOK_URL, booking_body
from tests.factories import future
from tests.saga.conftest import RESERVE_APPLY, feishu_reserve, providers  # noqa: F401


@pytest.fixture
def book(counselor_api, student, mentor):
    def book(*, hours: float = 48, provider: str = "feishu", **fields) -> Session:
        body = booking_body(student=student, mentor=mentor, start=future(hours=hours), meetingProvider=provider)
        response = counselor_api.post(BOOK_URL, {**body, **fields}, format="json")
        assert response.status_code == 201, response.content
        return Session.objects.get(id=response.json()["sessionId"])

    return book


@pytest.fixture
def scheduled(providers, book):  # noqa: F811 - the imported fixture, by name
    """A booked session whose Feishu meeting has been made: SCHEDULED."""

    def scheduled(**kwargs) -> Session:
        providers.post(RESERVE_APPLY, json=feishu_reserve())
        session = book(**kwargs)
        saga_advance(session_id=session.id)
        session.refresh_from_db()
        assert session.status == SessionStatus.SCHEDULED
        return session

    return scheduled
