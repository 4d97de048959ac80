"""Login throttling (django-axes) on the counselor login page and the admin's: repeated failures for one
username, or from one address, are refused for LOGIN_LOCKOUT_MINUTES with a message saying so (429,
Retry-After); a success resets the count."""

from datetime import timedelta

import pytest
from axes.models import AccessAttempt
from django.test import Client, RequestFactory
from django.utils import timezone

from accounts_app.login_throttle import client_address
from tests.factories import CounselorFactory, StaffFactory

pytestmark = pytest.mark.django_db

PASSWORD = "a-long-test-password-2026"
COUNSELOR_LOGIN = "/accounts/login/"
ADMIN_LOGIN = "/admin/login/"
REFUSED = "Too many failed logins for this account or from this address. Try again in 15 minutes."


def person(factory=CounselorFactory):
    user = factory()
    user.set_password(PASSWORD)
    user.save(update_fields=["password"])
    return user


def log_in(url: str, username: str, password: str, *, address: str = "10.0.0.1", **headers):
    return Client().post(url, {"username": username, "password": password}, REMOTE_ADDR=address, **headers)


@pytest.mark.parametrize("url", [COUNSELOR_LOGIN, ADMIN_LOGIN], ids=["counselor login", "admin login"])
def test_five_failures_for_one_user_lock_that_user_out_even_with_the_right_password(url):
    user = person(StaffFactory if url == ADMIN_LOGIN else CounselorFactory)

    # given five wrong passwords, each from another address
    failures = [log_in(url, user.username, "wrong", address=f"10.0.1.{n}") for n in range(5)]

    # then four were ordinary failed logins, the fifth locked the user out, and the next attempt, right password
    # and all, is refused
    assert [r.status_code for r in failures] == [200] * 4 + [429]
    refused = log_in(url, user.username, PASSWORD, address="10.0.2.1")
    assert refused.status_code == 429
    assert REFUSED in refused.content.decode()
    assert int(refused["Retry-After"]) == 15 * 60
    assert "_auth_user_id" not in refused.wsgi_request.session


def test_five_failures_from_one_address_lock_that_address_out_for_every_user():
    users = [person() for _ in range(6)]
    answers = [log_in(COUNSELOR_LOGIN, user.username, "wrong", address="10.0.3.3") for user in users[:5]]
    assert [a.status_code for a in answers] == [200] * 4 + [429]

    # a sixth user, right password, from that address: refused
    assert log_in(COUNSELOR_LOGIN, users[5].username, PASSWORD, address="10.0.3.3").status_code == 429
    # the same user from elsewhere: fine (each username failed once only)
    assert log_in(COUNSELOR_LOGIN, users[5].username, PASSWORD, address="10.0.3.4").status_code == 302


def test_the_lockout_ends_after_the_cool_off():
    user = person()
    for _ in range(5):
        log_in(COUNSELOR_LOGIN, user.username, "wrong")
    assert log_in(COUNSELOR_LOGIN, user.username, PASSWORD).status_code == 429

    AccessAttempt.objects.update(attempt_time=timezone.now() - timedelta(minutes=16))

    assert log_in(COUNSELOR_LOGIN, user.username, PASSWORD).status_code == 302


def test_a_success_resets_the_count():
    user = person()
    for _ in range(4):
        log_in(COUNSELOR_LOGIN, user.username, "wrong")
    assert log_in(COUNSELOR_LOGIN, user.username, PASSWORD).status_code == 302

    for _ in range(4):
        assert log_in(COUNSELOR_LOGIN, user.username, "wrong").status_code == 200
    assert log_in(COUNSELOR_LOGIN, user.username, PASSWORD).status_code == 302


def test_the_counselor_page_says_it_in_the_counselors_language():
    user = person()
    for _ in range(5):
        log_in(COUNSELOR_LOGIN, user.username, "wrong")

    refused = log_in(COUNSELOR_LOGIN, user.username, PASSWORD, HTTP_ACCEPT_LANGUAGE="zh-hans")

    assert refused.status_code == 429
    assert "登录失败次数过多" in refused.content.decode()
    assert 'id="login-error"' in refused.content.decode()


def test_the_limit_and_the_lockout_come_from_the_settings(settings):
    settings.AXES_FAILURE_LIMIT = 2
    settings.AXES_COOLOFF_TIME = timedelta(minutes=1)
    user = person()
    for _ in range(2):
        log_in(COUNSELOR_LOGIN, user.username, "wrong")

    refused = log_in(COUNSELOR_LOGIN, user.username, PASSWORD)

    assert refused.status_code == 429
    assert "Try again in 1 minute." in refused.content.decode() and refused["Retry-After"] == "60"


@pytest.mark.parametrize(
    "proxies, forwarded, expected",
    [
        (0, "203.0.113.9", "10.9.9.9"),  # no proxy trusted: the header is anyone's to write
        (1, "203.0.113.9", "203.0.113.9"),
        (1, "6.6.6.6, 203.0.113.9", "203.0.113.9"),  # the client wrote the left part
        (2, "6.6.6.6, 203.0.113.9, 10.0.0.2", "203.0.113.9"),
        (2, "203.0.113.9", "10.9.9.9"),  # fewer entries than proxies: not from behind them
    ],
)
def test_the_address_is_the_one_the_outermost_trusted_proxy_saw(settings, proxies, forwarded, expected):
    settings.LOGIN_TRUSTED_PROXY_COUNT = proxies
    request = RequestFactory().post(COUNSELOR_LOGIN, REMOTE_ADDR="10.9.9.9", HTTP_X_FORWARDED_FOR=forwarded)

    assert client_address(request) == expected
