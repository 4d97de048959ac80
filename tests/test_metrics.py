"""/metrics: what Prometheus reads moves when the system works, adds up across processes, and the alert rules
only name metrics that exist."""

import os
import re
import subprocess
import sys
import uuid
from datetime import timedelta
from pathlib import Path

import pytest
import yaml
from django.test import Client
from django.utils import timezone
from prometheus_client.parser import text_string_to_metric_families

from booking_project import metrics
from sessions_app.models import Session
from tests.conftest import BOOK_URL, booking_body

ROOT = Path(__file__).resolve().parents[1]
ALERTS = ROOT / "deploy" / "prometheus" / "alerts.yml"


def scrape(client: Client | None = None, **headers) -> dict[tuple[str, tuple], float]:
    response = (client or Client()).get("/metrics", **headers)
    assert response.status_code == 200, response.content
    assert response["Content-Type"].startswith("text/plain")
    return samples_of(response.content.decode())


def samples_of(text: str) -> dict[tuple[str, tuple], float]:
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def value(samples: dict, name: str, **labels) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


@pytest.mark.django_db
def test_a_booking_moves_the_latency_histogram_and_the_pending_sessions(counselor_api, student, mentor):
    before = scrape()

    response = counselor_api.post(BOOK_URL, booking_body(student=student, mentor=mentor), format="json")

    assert response.status_code == 201
    after = scrape()
    count = "booking_request_duration_seconds_count"
    assert value(after, count, status="201") == value(before, count, status="201") + 1
    assert value(after, "booking_request_duration_seconds_bucket", status="201", le="+Inf") == value(
        after, count, status="201"
    )
    assert value(after, "booking_sessions_pending_meeting") == value(before, "booking_sessions_pending_meeting") + 1
    late = {"threshold_seconds": "10"}
    assert value(after, "booking_sessions_pending_meeting_over_threshold", **late) == value(
        before, "booking_sessions_pending_meeting_over_threshold", **late
    )

    Session.objects.filter(id=response.json()["sessionId"]).update(created_at=timezone.now() - timedelta(minutes=1))

    aged = scrape()
    assert (
        value(aged, "booking_sessions_pending_meeting_over_threshold", **late)
        == value(before, "booking_sessions_pending_meeting_over_threshold", **late) + 1
    )


@pytest.mark.django_db
def test_a_refused_booking_is_timed_under_its_status(counselor_api, student, mentor):
    before = scrape()

    response = counselor_api.post(BOOK_URL, booking_body(student=student, mentor=mentor, duration=5), format="json")

    assert response.status_code == 400
    count = "booking_request_duration_seconds_count"
    assert value(scrape(), count, status="400") == value(before, count, status="400") + 1


@pytest.mark.django_db
def test_queue_depth_is_the_brokers_waiting_messages(settings):
    from booking_project.celery import app

    queue = f"metrics-test-{uuid.uuid4().hex[:8]}"
    previous = app.conf.task_default_queue
    app.conf.task_default_queue = queue
    try:
        assert value(scrape(), "booking_queue_depth", queue=queue) == 0
        with app.producer_or_acquire() as producer:
            for _ in range(3):
                producer.publish({"bench": True}, routing_key=queue, declare=[], serializer="json")

        assert value(scrape(), "booking_queue_depth", queue=queue) == 3
    finally:
        with app.connection_for_write() as connection:
            connection.default_channel.client.delete(queue)
        app.conf.task_default_queue = previous


@pytest.mark.django_db
def test_metrics_token_guards_the_endpoint(settings):
    settings.METRICS_TOKEN = "scrape-secret"

    assert Client().get("/metrics").status_code == 401
    assert Client().get("/metrics", HTTP_AUTHORIZATION="Bearer wrong").status_code == 401
    assert "booking_sessions_pending_meeting" in {name for name, _ in scrape(HTTP_AUTHORIZATION="Bearer scrape-secret")}


WRITER = """
import django, os, sys
django.setup()
from booking_project import metrics
for _ in range(int(sys.argv[1])):
    metrics.booking_observed(status=201, seconds=0.02)
metrics.provider_call_observed(provider="zoom", operation="create", error="PermanentProviderError", seconds=0.1)
"""

SCRAPER = """
import django
django.setup()
from django.test import Client
print(Client().get("/metrics").content.decode())
"""


@pytest.mark.django_db
def test_in_multiprocess_mode_a_scrape_adds_up_every_process(tmp_path):
    from django.db import connection

    database = connection.settings_dict
    env = {
        **os.environ,
        # The scraping process reads the scrape-time figures from the test database.
        "DATABASE_URL": f"postgres://{database['USER']}@{database['HOST']}:{database['PORT']}/{database['NAME']}",
        "PROMETHEUS_MULTIPROC_DIR": str(tmp_path),
        "DJANGO_SETTINGS_MODULE": "booking_project.settings",
        "LOG_LEVEL": "WARNING",
    }

    def python(code: str, *args: str) -> str:
        done = subprocess.run(
            [sys.executable, "-c", code, *args], env=env, cwd=ROOT, capture_output=True, text=True, timeout=60
        )
        assert done.returncode == 0, done.stderr[-2000:]
        return done.stdout

    python(WRITER, "2")  # say, a gunicorn worker
    python(WRITER, "3")  # another one, or the Celery worker

    samples = samples_of(python(SCRAPER))
    assert value(samples, "booking_request_duration_seconds_count", status="201") == 5
    assert value(samples, "booking_provider_call_errors_total", provider="zoom", operation="create",
                 error="PermanentProviderError") == 2  # fmt: skip
    assert "booking_sessions_pending_meeting" in {name for name, _ in samples}  # scrape-time figures are there too


def exposed_metric_names() -> set[str]:
    names = {
        metrics.PENDING_SESSIONS,
        metrics.PENDING_SESSIONS_OVER_THRESHOLD,
        metrics.QUEUE_DEPTH,
        metrics.NEEDS_PERSON,
    }
    for metric in (
        metrics.PROVIDER_WORK_UNEXPECTED_ERRORS,
        metrics.BOOKING_LATENCY,
        metrics.SAGA_DURATION,
        metrics.SAGA_OUTCOMES,
        metrics.PROVIDER_CALL_DURATION,
        metrics.PROVIDER_CALL_ERRORS,
    ):
        family = metric.describe()[0]
        suffixes = {"histogram": ("_bucket", "_sum", "_count"), "counter": ("_total",)}[family.type]
        names |= {family.name + suffix for suffix in suffixes}
    return names


def test_the_alert_rules_name_only_metrics_that_exist_and_cover_the_design():
    rules = [rule for group in yaml.safe_load(ALERTS.read_text())["groups"] for rule in group["rules"]]
    exposed = exposed_metric_names()

    for rule in rules:
        assert rule["alert"] and rule["expr"] and rule["for"], rule
        assert rule["annotations"]["summary"] and rule["labels"]["severity"], rule
        expr = rule["expr"]
        assert expr.count("(") == expr.count(")") and expr.count("[") == expr.count("]"), rule["alert"]
        used = set(re.findall(r"\bbooking_[a-z_]+", expr))
        assert used, rule["alert"]
        assert used <= exposed, (rule["alert"], used - exposed)

    exprs = " ".join(rule["expr"] for rule in rules)
    # DESIGN.md: alert when provisioning takes over 10 s; and one on the failure rate.
    assert re.search(r"booking_saga_duration_seconds_bucket.*\) > 10\b", exprs)
    assert 'booking_saga_outcomes_total{status="failed"}' in exprs
    # Issue 13: people see what gave up, of every kind.
    assert "booking_provider_work_needs_person" in exprs


def test_notifications_go_to_their_own_queue_and_provisioning_to_the_default_one():
    from booking_project.celery import app

    def queue_of(task: str) -> str:
        return app.amqp.router.route({}, task)["queue"].name

    assert queue_of("notifications.deliver") == "notifications"
    assert queue_of("notifications.send_due_reminders") == "notifications"
    assert queue_of("sessions.provision_meeting") == app.conf.task_default_queue
    assert queue_of("sessions.change_meeting") == app.conf.task_default_queue


def test_work_waiting_for_a_person_is_a_gauge_by_kind(counselor_api, student, mentor):
    # given: a booked session whose saga an operator must look at
    from sessions_app.models import MeetingSaga

    session_id = counselor_api.post(BOOK_URL, booking_body(student=student, mentor=mentor), format="json").json()[
        "sessionId"
    ]
    before = value(scrape(), "booking_provider_work_needs_person", kind="meeting_saga")
    MeetingSaga.objects.filter(session_id=session_id).update(
        requires_manual_intervention=True, manual_intervention_reason="a reservation may have been left behind"
    )

    # when / then
    assert value(scrape(), "booking_provider_work_needs_person", kind="meeting_saga") == before + 1
