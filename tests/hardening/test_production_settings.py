"""Production settings (DJANGO_ENV=production): Django's deployment checks pass without a warning, secrets
come only from the environment, and DEBUG cannot be switched on.

Each case starts a fresh Python process, since settings are read once per process.
"""

import os
import secrets
import subprocess
import sys
from pathlib import Path

import pytest

PROJECT_DIR = Path(__file__).resolve().parents[2]
STRONG_SECRET_KEY = secrets.token_urlsafe(50)
DEVELOPMENT_SECRET_KEY = "dev-only-insecure-key-change-me-0123456789abcdefghijklmnop"
# The settings the process would otherwise inherit from this machine or this test run.
CONFIGURATION = ("DJANGO_ENV", "SECRET_KEY", "DEBUG", "ALLOWED_HOSTS", "CSRF_TRUSTED_ORIGINS", "SECURE_SSL_REDIRECT")
PRINT_SETTINGS = (
    "import django; django.setup(); from django.conf import settings as s; "
    "print(s.DEBUG, s.SESSION_COOKIE_SECURE, s.CSRF_COOKIE_SECURE, s.SECURE_HSTS_SECONDS, "
    "s.SECURE_SSL_REDIRECT, s.CSRF_TRUSTED_ORIGINS)"
)


def run(args: list[str], **environment: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in CONFIGURATION}
    env.update(DJANGO_SETTINGS_MODULE="booking_project.settings", **environment)
    return subprocess.run(
        [sys.executable, *args], cwd=PROJECT_DIR, env=env, capture_output=True, text=True, timeout=120
    )


def production(**overrides: str) -> dict[str, str]:
    return {
        "DJANGO_ENV": "production",
        "SECRET_KEY": STRONG_SECRET_KEY,
        "ALLOWED_HOSTS": "booking.example.com",
        "CSRF_TRUSTED_ORIGINS": "https://booking.example.com",
        **overrides,
    }


def test_the_deployment_checks_pass_without_a_warning_in_production():
    result = run(["manage.py", "check", "--deploy", "--fail-level", "WARNING"], **production())

    assert result.returncode == 0, result.stdout + result.stderr
    assert "WARNINGS" not in result.stdout + result.stderr
    assert "no issues" in result.stdout


def test_production_refuses_to_start_without_a_secret_key():
    environment = production()
    del environment["SECRET_KEY"]

    result = run(["manage.py", "check"], **environment)

    assert result.returncode != 0
    assert "SECRET_KEY must be set in the environment when DJANGO_ENV=production." in result.stderr


@pytest.mark.parametrize(
    "weak", [DEVELOPMENT_SECRET_KEY, "short-secret", "a" * 60], ids=["dev key", "short", "repeated"]
)
def test_production_refuses_the_development_key_or_a_weak_one(weak):
    result = run(["manage.py", "check"], **production(SECRET_KEY=weak))

    assert result.returncode != 0
    assert "SECRET_KEY must be a long random value" in result.stderr


def test_production_refuses_to_start_without_allowed_hosts():
    environment = production()
    del environment["ALLOWED_HOSTS"]

    result = run(["manage.py", "check"], **environment)

    assert result.returncode != 0
    assert "ALLOWED_HOSTS must name the site's host(s)" in result.stderr


def test_debug_stays_off_in_production_even_when_the_environment_asks_for_it():
    result = run(["-c", PRINT_SETTINGS], **production(DEBUG="true"))

    assert result.returncode == 0, result.stderr
    debug, session_secure, csrf_secure, hsts, ssl_redirect, trusted = result.stdout.split(maxsplit=5)
    assert debug == "False"
    assert (session_secure, csrf_secure, ssl_redirect) == ("True", "True", "True")
    assert int(hsts) >= 31536000
    assert trusted.strip() == "['https://booking.example.com']"


def test_debug_is_off_by_default_outside_production_too():
    result = run(["-c", PRINT_SETTINGS])

    assert result.returncode == 0, result.stderr
    assert result.stdout.split()[0] == "False"


def test_a_developer_may_turn_debug_on_outside_production():
    result = run(["-c", PRINT_SETTINGS], DEBUG="true")

    assert result.returncode == 0, result.stderr
    assert result.stdout.split()[0] == "True"
