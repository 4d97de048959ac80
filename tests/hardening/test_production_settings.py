"""Production settings (DJANGO_ENV=production): Django's deployment checks pass without a warning, secrets
come only from the environment, and DEBUG cannot be switched on.

Each case starts a fresh Python process, since settings are read once per process.
"""

import json
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
CONFIGURATION = (
    "DJANGO_ENV", "SECRET_KEY", "DEBUG", "ALLOWED_HOSTS", "CSRF_TRUSTED_ORIGINS", "SECURE_SSL_REDIRECT",
    "METRICS_TOKEN", "FEISHU_BASE_URL", "ZOOM_API_BASE_URL", "ZOOM_OAUTH_URL", "GOOGLE_CALENDAR_BASE_URL",
)  # fmt: skip
METRICS_TOKEN = secrets.token_urlsafe(24)
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
        "METRICS_TOKEN": METRICS_TOKEN,
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


def test_production_refuses_to_start_without_a_metrics_token():
    for token in (None, "short"):
        environment = production()
        if token is None:
            del environment["METRICS_TOKEN"]
        else:
            environment["METRICS_TOKEN"] = token

        result = run(["manage.py", "check"], **environment)

        assert result.returncode != 0
        assert "METRICS_TOKEN must be set (16 characters or more) when DJANGO_ENV=production" in result.stderr


@pytest.mark.parametrize("name", ["FEISHU_BASE_URL", "ZOOM_API_BASE_URL", "ZOOM_OAUTH_URL", "GOOGLE_CALENDAR_BASE_URL"])
def test_production_refuses_a_provider_base_url_in_clear_text(name):
    result = run(["manage.py", "check"], **production(**{name: "http://127.0.0.1:8090"}))

    assert result.returncode != 0
    assert f"{name} must be an https:// URL when DJANGO_ENV=production." in result.stderr


def test_outside_production_the_sandbox_may_be_reached_in_clear_text():
    result = run(["-c", "import django; django.setup()"], FEISHU_BASE_URL="http://127.0.0.1:8090")

    assert result.returncode == 0, result.stderr


@pytest.mark.parametrize(
    "command, why",
    [
        (["seed_demo"], "it makes people whose password is published"),
        (["run_provider_sandbox", "--port", "0"], "it answers as Feishu, Zoom and Google would"),
    ],
    ids=["seed_demo", "run_provider_sandbox"],
)
def test_the_demo_commands_refuse_to_run_in_production(command, why):
    result = run(["manage.py", *command], **production(DATABASE_URL="postgres://root@127.0.0.1:1/none"))

    assert result.returncode != 0
    assert f"{command[0]} refuses to run with DJANGO_ENV=production: {why}" in result.stderr


# What a production process answers: a fresh process with production's settings, on the test database, asked
# through Django's test client (over HTTPS, to the site's name).
ANSWERS = """
import django, json, sys; django.setup()
from django.test import Client
client = Client(HTTP_HOST="booking.example.com")
answers = [client.get(path, secure=True, **headers) for path, headers in json.loads(sys.argv[1])]
print(json.dumps([[answer.status_code, answer.content[:200].decode(errors="replace")] for answer in answers]))
"""


def production_answers(requests: list[tuple[str, dict]]) -> list[tuple[int, str]]:
    from django.db import connection

    database = connection.settings_dict["NAME"]
    result = run(
        ["-c", ANSWERS, json.dumps(requests)],
        **production(DATABASE_URL=f"postgres://root@127.0.0.1:5432/{database}", DB_POOL_MAX_SIZE="0"),
    )
    assert result.returncode == 0, result.stderr
    return [tuple(answer) for answer in json.loads(result.stdout.strip().splitlines()[-1])]


@pytest.mark.django_db(transaction=True)
def test_in_production_the_openapi_document_needs_a_login():
    from tests.factories import CounselorFactory, token_for

    token = token_for(CounselorFactory())

    (anonymous, bad, logged_in) = production_answers(
        [
            ("/api/schema/", {}),
            ("/api/schema/", {"HTTP_AUTHORIZATION": "Token not-a-token"}),
            ("/api/schema/", {"HTTP_AUTHORIZATION": f"Token {token}"}),
        ]
    )

    assert anonymous[0] == 401 and json.loads(anonymous[1])["error"]["code"] == "UNAUTHENTICATED"
    assert bad[0] == 401
    assert logged_in[0] == 200 and "openapi" in logged_in[1]


@pytest.mark.django_db(transaction=True)
def test_in_production_metrics_need_the_token_and_any_malformed_credential_is_401():
    answers = production_answers(
        [
            ("/metrics", {}),
            ("/metrics", {"HTTP_AUTHORIZATION": "Bearer wrong"}),
            ("/metrics", {"HTTP_AUTHORIZATION": "Bearer t\u00f6k\u00e9n"}),
            ("/metrics", {"HTTP_AUTHORIZATION": "Basic " + "\u00ff" * 40}),
            ("/metrics", {"HTTP_AUTHORIZATION": f"Token {METRICS_TOKEN}"}),
            ("/metrics", {"HTTP_AUTHORIZATION": "Bearer"}),
            ("/metrics", {"HTTP_AUTHORIZATION": f"Bearer {METRICS_TOKEN}"}),
        ]
    )

    *refused, allowed = answers
    assert [status for status, _ in refused] == [401] * 6
    assert all(json.loads(body)["error"]["code"] == "UNAUTHENTICATED" for _, body in refused)
    assert allowed[0] == 200 and allowed[1].startswith("# HELP")
