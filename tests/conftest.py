import os
import threading
from typing import Any

import pytest
from django.db import connection
from rest_framework.test import APIClient

from accounts_app.models import User
from sessions_app.types import SESSION_TYPES
from tests.factories import (
    CounselorFactory,
    EntitlementFactory,
    MentorFactory,
    future,
    student_for,
    token_for,
)

# Events that tests publish go to a Redis database of their own, which no demo worker consumes. Two checkouts
# testing at once on one machine give each its own (with TEST_DATABASE_NAME for PostgreSQL).
TEST_BROKER_URL = os.environ.get("TEST_BROKER_URL", "redis://127.0.0.1:6379/15")

BOOK_URL = "/api/counselor/sessions/book"
LIST_URL = "/api/counselor/sessions"


def detail_url(session_id) -> str:
    return f"/api/counselor/sessions/{session_id}"


def assert_error(response, status: int, code: str) -> dict:
    """The contract's error body {"error": {"code", "message", "details"}} with this status and code."""
    assert response.status_code == status, (response.status_code, response.content)
    assert response["Content-Type"].startswith("application/json")
    body = response.json()
    assert set(body) == {"error"}
    error = body["error"]
    assert set(error) == {"code", "message", "details"}
    assert error["code"] == code
    assert isinstance(error["message"], str) and error["message"]
    assert isinstance(error["details"], dict)
    return error


def api_client_for(user: User | None) -> APIClient:
    client = APIClient()
    if user is not None:
        client.credentials(HTTP_AUTHORIZATION=f"Token {token_for(user)}")
    return client


def funded_student(counselor: User, units: int = 10) -> User:
    student = student_for(counselor)
    for session_type in SESSION_TYPES.values():
        if session_type.billable:
            EntitlementFactory(student=student, session_type=session_type.name, units_bought=units)
    return student


def booking_body(
    *,
    student: User,
    mentor: User,
    session_type: str = "regular_mentoring",
    start=None,
    duration: int = 60,
    **extra: Any,
) -> dict[str, Any]:
    body = {
        "sessionType": session_type,
        "mentorId": str(mentor.id),
        "scheduledStartTime": (start or future()).isoformat(),
        "duration": duration,
        "meetingProvider": "feishu",
        "topic": "Resume review",
    }
    if session_type == "class_session":
        body["studentIds"] = [str(student.id)]
    else:
        body["studentId"] = str(student.id)
    body.update(extra)
    return body


def celery_broker_switch(url: str) -> None:
    """Point this process's publishing at another broker. Celery caches its connection and producer pools,
    so they are dropped too; the next publication opens new ones."""
    from kombu import pools

    from booking_project.celery import app

    # With the Django settings namespace, the CELERY_-prefixed key is the one Celery reads.
    app.conf.CELERY_BROKER_URL = url
    assert app.connection_for_write().as_uri().endswith(url.rsplit("@", 1)[-1].split("://", 1)[-1])
    pools.reset()  # kombu keeps producer pools per broker URL, process-wide
    app._pool = None
    app.amqp._producer_pool = None


@pytest.fixture(scope="session")
def django_db_setup(django_db_setup, django_db_blocker):
    """The test database lets Django empty the append-only audit tables between tests: their triggers refuse
    TRUNCATE unless the database says otherwise (sessions_app migration 0006), and Django's flush truncates.
    Connections opened before the setting (the pool's) are closed so that every later one has it."""
    from django.db import connections

    with django_db_blocker.unblock():
        with connection.cursor() as cursor:
            cursor.execute(
                f"ALTER DATABASE {connection.ops.quote_name(connection.settings_dict['NAME'])} "
                "SET booking.allow_audit_truncate = 'on'"
            )
        for each in connections.all():
            each.close()
            if getattr(each, "pool", None) is not None:
                each.close_pool()


@pytest.fixture(scope="session", autouse=True)
def celery_broker_of_tests():
    from booking_project.celery import app

    celery_broker_switch(TEST_BROKER_URL)
    yield
    with app.connection_for_write() as connection:
        connection.default_channel.client.flushdb()


@pytest.fixture(autouse=True)
def throttles_off(settings):
    """Rate limits are off unless a test turns them on: many tests book more than a counselor may per minute."""
    settings.THROTTLE_BOOK_RATE = "none"
    settings.THROTTLE_ACTION_RATE = "none"
    settings.THROTTLE_AVAILABILITY_RATE = "none"


@pytest.fixture(autouse=True)
def redis_circuits_closed():
    """Each test starts believing Redis is there: a test that stopped it must not leave this process skipping
    it for the next one (booking_project/redis_connections.py)."""
    from booking_project.redis_connections import redis_circuits_reset

    redis_circuits_reset()
    yield
    redis_circuits_reset()


@pytest.fixture(autouse=True)
def token_memory_empty():
    """Each test starts with no token remembered (booking_project/authentication.py)."""
    from booking_project.authentication import token_memory

    token_memory.clear()
    yield
    token_memory.clear()


@pytest.fixture
def counselor(db) -> User:
    return CounselorFactory()


@pytest.fixture
def other_counselor(db) -> User:
    return CounselorFactory()


@pytest.fixture
def mentor(db) -> User:
    return MentorFactory()


@pytest.fixture
def student(counselor) -> User:
    return funded_student(counselor)


@pytest.fixture
def counselor_api(counselor) -> APIClient:
    return api_client_for(counselor)


def table_counts() -> dict[str, int]:
    """Rows in every table the booking flow could write, for "nothing was written" assertions."""
    from django.apps import apps

    app_labels = {"accounts_app", "holds_app", "calendar_app", "meetings_app", "sessions_app", "notifications_app"}
    return {
        model._meta.label: model.objects.count() for model in apps.get_models() if model._meta.app_label in app_labels
    }


def race_posts(calls: list[tuple], headers: dict | None = None) -> list:
    """POST every (user, url, body) at once, each from its own thread and database connection, released
    together by a barrier; return the responses in order."""
    barrier = threading.Barrier(len(calls))
    answers: list = [None] * len(calls)

    def post(i: int) -> None:
        user, url, body = calls[i]
        client = api_client_for(user)
        try:
            barrier.wait()
            answers[i] = client.post(url, body, format="json", headers=headers or {})
        finally:
            connection.close()

    threads = [threading.Thread(target=post, args=(i,)) for i in range(len(calls))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    return answers
