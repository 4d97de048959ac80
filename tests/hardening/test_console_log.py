"""The demo console (LOG_FORMAT=console, as bin/up sets it): one readable line per business event, and the
periodic ticks and no-op chatter left out; production (LOG_FORMAT=json, the default) keeps every record as JSON.

The end-to-end cases start a fresh Python process, since the log format is read once per process."""

import json
import logging
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from booking_project.logging import ConsoleFormatter, ConsoleQuietFilter

PROJECT_DIR = Path(__file__).resolve().parents[2]
SESSION_ID = "3f2a1b2c-0d4e-4f5a-8b6c-7d8e9f0a1b2c"
TIME = r"\d\d:\d\d:\d\d"

# What the processes write: beat's tick, the worker's report of it, a booking, a provider call that failed.
EMIT = f"""
import logging, django
django.setup()
logging.getLogger("celery.beat").info("Scheduler: Sending due task %s (%s)", "outbox-relay", "sessions.outbox_relay")
logging.getLogger("celery.app.trace").info(
    "Task %(name)s[%(id)s] succeeded in %(runtime)ss: %(return_value)s",
    {{"name": "sessions.outbox_relay", "id": "{SESSION_ID}", "runtime": 0.004, "return_value": 0}},
)
logging.getLogger("sessions_app.services").info(
    "session.booked",
    extra={{"sessionId": "{SESSION_ID}", "eventId": "{SESSION_ID}", "sessionType": "regular_mentoring",
           "provider": "zoom", "durationMs": 12.5}},
)
logging.getLogger("sessions_app.saga").warning(
    "saga.attempt_failed",
    extra={{"sessionId": "{SESSION_ID}", "provider": "zoom", "error": "zoom create: HTTP 503", "retryable": True}},
)
"""


def run_with(log_format: str | None) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "LOG_FORMAT"}
    if log_format is not None:
        env["LOG_FORMAT"] = log_format
    env.update(DJANGO_SETTINGS_MODULE="booking_project.settings", PYTHONPATH=str(PROJECT_DIR))
    return subprocess.run(
        [sys.executable, "-c", EMIT], cwd=PROJECT_DIR, env=env, capture_output=True, text=True, timeout=60
    )


def record(name: str, message: str, level: int = logging.INFO, args=None, **fields) -> logging.LogRecord:
    made = logging.LogRecord(name, level, __file__, 1, message, args, None)
    made.__dict__.update(fields)
    return made


def test_the_console_shows_the_booking_and_the_failure_as_sentences_and_leaves_the_tick_out():
    finished = run_with("console")

    assert finished.returncode == 0, finished.stderr
    lines = [line for line in finished.stderr.splitlines() if line.strip()]
    assert len(lines) == 2, lines
    assert re.fullmatch(rf"{TIME} booked regular_mentoring 3f2a1b2c… with Zoom", lines[0])
    assert re.fullmatch(
        rf"{TIME} WARNING Zoom call for session 3f2a1b2c… failed: zoom create: HTTP 503 \(will retry\)", lines[1]
    )
    assert "Sending due task" not in finished.stderr and "succeeded in" not in finished.stderr


def test_production_keeps_every_record_as_one_json_object_per_line():
    finished = run_with(None)

    assert finished.returncode == 0, finished.stderr
    lines = [json.loads(line) for line in finished.stderr.splitlines() if line.strip()]
    events = [line["event"] for line in lines if line["logger"] != "axes.apps"]
    assert events[0] == "Scheduler: Sending due task outbox-relay (sessions.outbox_relay)"
    assert events[1].startswith("Task sessions.outbox_relay[") and "succeeded in" in events[1]
    assert events[2:] == ["session.booked", "saga.attempt_failed"]
    assert lines[-2]["sessionId"] == SESSION_ID and lines[-2]["sessionType"] == "regular_mentoring"


def test_an_unknown_log_format_stops_the_process_at_start():
    finished = run_with("xml")

    assert finished.returncode != 0
    assert "LOG_FORMAT must be json or console" in finished.stderr


@pytest.mark.parametrize(
    "quiet",
    [
        record("celery.beat", "Scheduler: Sending due task %s (%s)", args=("saga-sweep", "sessions.saga_sweep")),
        record("celery.worker.strategy", "Task %s[%s] received", args=("sessions.outbox_relay", SESSION_ID)),
        record("gunicorn.access", '127.0.0.1 - - "GET /api/counselor/sessions HTTP/1.1" 200 512'),
        record("sessions_app.outbox", "outbox.published", eventId=SESSION_ID, eventType="x"),
        record("notifications_app.services", "notifications.reminders_sent", sent=0),
        record("meetings_app.services", "provider.call", provider="zoom", operation="create", outcome="ok"),
    ],
    ids=["beat-tick", "task-received", "page-poll", "plumbing", "nothing-sent", "call-done"],
)
def test_ticks_and_no_op_chatter_are_left_out_of_the_console(quiet):
    assert ConsoleQuietFilter().filter(quiet) is False


@pytest.mark.parametrize(
    "kept",
    [
        record("sessions_app.services", "session.booked", sessionId=SESSION_ID),
        record("sessions_app.services", "session.unheard_of", sessionId=SESSION_ID),
        record("notifications_app.services", "notifications.reminders_sent", sent=2),
        record("meetings_app.services", "provider.call", provider="zoom", outcome="TransientProviderError"),
        record("celery.app.trace", "Task %s raised unexpected: %r", logging.ERROR, ("x", ValueError("boom"))),
        record("celery.beat", "beat: Connection error: %r", logging.WARNING, (OSError("refused"),)),
    ],
    ids=["booked", "unknown-event", "reminders-sent", "call-failed", "task-crashed", "beat-warning"],
)
def test_business_events_and_every_warning_stay_on_the_console(kept):
    assert ConsoleQuietFilter().filter(kept) is True


def test_each_business_event_is_one_readable_line():
    formatter = ConsoleFormatter()
    lines = {
        event: formatter.format(record("x", event, **fields))
        for event, fields in {
            "session.scheduled": {"sessionId": SESSION_ID, "provider": "feishu", "sagaDurationMs": 1234.5},
            "saga.retry_scheduled": {"sessionId": SESSION_ID, "retryIn": 5.0},
            "saga.failed": {"sessionId": SESSION_ID, "reason": "Zoom refused the meeting."},
            "session.cancelled": {"sessionId": SESSION_ID, "operationId": SESSION_ID},
            "session.completed": {"sessionId": SESSION_ID, "via": "clock"},
            "session.started": {"sessionId": SESSION_ID, "via": "zoom_webhook"},
            "provider_event.recorded": {"provider": "zoom", "kind": "started", "meetingId": None, "eventKey": "k"},
        }.items()
    }

    assert [line.split(" ", 1)[1] for line in lines.values()] == [
        "session 3f2a1b2c… SCHEDULED at Feishu, 1.2 s after booking",
        "retry session 3f2a1b2c… in 5.0 s",
        "failed: session 3f2a1b2c… MEETING_FAILED: Zoom refused the meeting.",
        "session 3f2a1b2c… cancelled",
        "session 3f2a1b2c… COMPLETED (its time came)",
        "session 3f2a1b2c… IN_PROGRESS (Zoom said so)",
        "Zoom says a meeting started (not one of ours: nothing changes)",
    ]
    assert all("\n" not in line for line in lines.values())


def test_an_event_without_a_sentence_reads_as_its_name_and_fields_without_correlation_ids():
    line = ConsoleFormatter().format(
        record("x", "saga.leftover_found", sessionId=SESSION_ID, eventId=SESSION_ID, foundAt="2026-05-01T10:00:00Z")
    )

    assert re.fullmatch(rf"{TIME} saga.leftover_found session 3f2a1b2c… foundAt=2026-05-01T10:00:00Z", line)


def test_a_failure_keeps_its_traceback_under_its_line():
    try:
        raise ValueError("boom")
    except ValueError:
        failed = logging.LogRecord("x", logging.ERROR, __file__, 1, "saga.backfill_failed", None, sys.exc_info())

    first, *rest = ConsoleFormatter().format(failed).splitlines()

    assert re.fullmatch(rf"{TIME} ERROR saga.backfill_failed", first)
    assert rest[0] == "Traceback (most recent call last):" and rest[-1] == "ValueError: boom"
