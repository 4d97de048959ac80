"""A token found is remembered briefly in the process (TOKEN_AUTH_CACHE_SECONDS): requests then look nothing
up, and a revoked token or a deactivated user is refused once that time is up."""

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from rest_framework.authtoken.models import Token

from booking_project.authentication import token_memory
from tests.conftest import LIST_URL, api_client_for, assert_error

pytestmark = pytest.mark.django_db


class Clock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock(monkeypatch, settings):
    settings.TOKEN_AUTH_CACHE_SECONDS = 10
    clock = Clock()
    monkeypatch.setattr(token_memory, "clock", clock)
    return clock


def revoke_elsewhere(token_key: str) -> None:
    """The token deleted by another process: this one hears no signal about it."""
    with connection.cursor() as cursor:
        cursor.execute("DELETE FROM authtoken_token WHERE key = %s", [token_key])


def test_a_remembered_token_costs_no_query(counselor, counselor_api, clock):
    with CaptureQueriesContext(connection) as first:
        assert counselor_api.get(LIST_URL).status_code == 200
    with CaptureQueriesContext(connection) as again:
        assert counselor_api.get(LIST_URL).status_code == 200

    assert any("authtoken_token" in q["sql"] for q in first.captured_queries)
    assert not any("authtoken_token" in q["sql"] for q in again.captured_queries)
    assert len(again) == len(first) - 1


def test_a_token_revoked_in_another_process_is_refused_once_its_time_is_up(counselor, counselor_api, clock):
    assert counselor_api.get(LIST_URL).status_code == 200
    revoke_elsewhere(Token.objects.get(user=counselor).key)

    clock.now += 9.9
    assert counselor_api.get(LIST_URL).status_code == 200  # still remembered: within TOKEN_AUTH_CACHE_SECONDS
    clock.now += 0.2
    response = counselor_api.get(LIST_URL)

    assert_error(response, 401, "UNAUTHENTICATED")
    assert response["WWW-Authenticate"] == 'Token realm="api"'


def test_a_user_deactivated_in_another_process_is_refused_once_its_time_is_up(counselor, counselor_api, clock):
    assert counselor_api.get(LIST_URL).status_code == 200
    type(counselor).objects.filter(id=counselor.id).update(is_active=False)  # no signal: as from elsewhere

    clock.now += 10.1
    response = counselor_api.get(LIST_URL)

    assert_error(response, 401, "UNAUTHENTICATED")
    assert response["WWW-Authenticate"] == 'Token realm="api"'


def test_revocation_in_this_process_takes_effect_at_once(counselor, counselor_api, other_counselor, clock):
    other_api = api_client_for(other_counselor)
    assert counselor_api.get(LIST_URL).status_code == 200
    assert other_api.get(LIST_URL).status_code == 200

    Token.objects.filter(user=counselor).delete()
    other_counselor.is_active = False
    other_counselor.save(update_fields=["is_active"])

    assert_error(counselor_api.get(LIST_URL), 401, "UNAUTHENTICATED")
    assert_error(other_api.get(LIST_URL), 401, "UNAUTHENTICATED")


def test_an_unknown_token_is_refused_as_before_and_never_remembered(counselor, clock, client):
    response = client.get(LIST_URL, HTTP_AUTHORIZATION="Token not-a-token")

    error = assert_error(response, 401, "UNAUTHENTICATED")
    assert response["WWW-Authenticate"] == 'Token realm="api"'
    assert token_memory.get("not-a-token") is None
    assert error["message"] == "Invalid token."
    # and a token made afterwards with that key works at once
    Token.objects.filter(user=counselor).delete()
    Token.objects.create(user=counselor, key="a" * 40)
    assert client.get(LIST_URL, HTTP_AUTHORIZATION=f"Token {'a' * 40}").status_code == 200


def test_what_one_request_loads_onto_its_user_is_not_shared(counselor, counselor_api, clock):
    assert counselor_api.get(LIST_URL).status_code == 200
    key = Token.objects.get(user=counselor).key
    from booking_project.authentication import RememberingTokenAuthentication

    first, _ = RememberingTokenAuthentication().authenticate_credentials(key)
    first.first_name = "changed by one request"
    second, _ = RememberingTokenAuthentication().authenticate_credentials(key)

    assert second is not first and second.first_name != "changed by one request"


def test_with_zero_seconds_every_request_looks_the_token_up(counselor, counselor_api, settings):
    settings.TOKEN_AUTH_CACHE_SECONDS = 0
    assert counselor_api.get(LIST_URL).status_code == 200
    revoke_elsewhere(Token.objects.get(user=counselor).key)

    assert_error(counselor_api.get(LIST_URL), 401, "UNAUTHENTICATED")
