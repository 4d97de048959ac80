"""One real stack shared by the integration and browser tests: a Redis server of their own (so a test may
stop it), the provider sandbox, a Celery worker and Celery beat as separate processes, all on the test
database. Each test package's conftest imports the fixtures, so each package starts and stops its own.

The tests book through the API in this process (its events go to that Redis) and watch rows, the sandbox
and HTTP bodies change as the worker provisions. Nothing runs eagerly; nothing is mocked.
"""

import email
import email.policy
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import requests

from tests.conftest import TEST_BROKER_URL, celery_broker_switch

ROOT = Path(__file__).resolve().parents[1]

# Short clocks so failures, retries, leases and sweeps play out in seconds.
STACK_SETTINGS = {
    "SAGA_MAX_ATTEMPTS": "3",
    "SAGA_CANCEL_MAX_ATTEMPTS": "3",
    "SAGA_RETRY_BACKOFF_SECONDS": "0.1",
    "SAGA_RETRY_BACKOFF_MAX_SECONDS": "0.4",
    "PROVIDER_TIMEOUT_SECONDS": "5",
    "SAGA_ATTEMPT_LEASE_SECONDS": "4",
    "SAGA_STUCK_AFTER_SECONDS": "2",
    "SAGA_SWEEP_INTERVAL_SECONDS": "1",
    "OUTBOX_RELAY_INTERVAL_SECONDS": "0.5",
    "OUTBOX_RELAY_GRACE_SECONDS": "0.5",
    "NOTIFICATION_MAX_ATTEMPTS": "3",
    "NOTIFICATION_RETRY_BACKOFF_SECONDS": "0.1",
    "NOTIFICATION_RETRY_BACKOFF_MAX_SECONDS": "0.4",
    "REMINDER_SEND_INTERVAL_SECONDS": "1",
    # The sweep re-drives a notification delivery still undelivered this long after its last progress.
    "NOTIFICATION_STUCK_AFTER_SECONDS": "2",
}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(predicate: Callable[[], Any], *, timeout: float = 20.0, interval: float = 0.1, what: str = "") -> Any:
    """Poll until `predicate()` is truthy; return its value. Fails the test with `what` on timeout."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout} s waiting for {what or predicate}")
        time.sleep(interval)


class Sandbox:
    def __init__(self, url: str):
        self.url = url

    def configure(self, **config: Any) -> dict:
        response = requests.post(f"{self.url}/_sandbox/config", json=config, timeout=5)
        response.raise_for_status()
        return response.json()

    def reset(self) -> None:
        requests.post(f"{self.url}/_sandbox/reset", timeout=5).raise_for_status()

    def meetings(self, *, status: str | None = None) -> list[dict]:
        meetings = requests.get(f"{self.url}/_sandbox/meetings", timeout=5).json()["meetings"]
        return [m for m in meetings if status is None or m["status"] == status]

    def requests_received(self) -> dict:
        return requests.get(f"{self.url}/_sandbox/requests", timeout=5).json()

    def calendar_events(self, *, status: str | None = None) -> list[dict]:
        events = requests.get(f"{self.url}/_sandbox/calendar-events", timeout=5).json()["events"]
        return [e for e in events if status is None or e["status"] == status]


class Stack:
    def __init__(self, workdir: Path, database_name: str):
        self.workdir = workdir
        self.redis_port = free_port()
        self.sandbox_port = free_port()
        self.redis_url = f"redis://127.0.0.1:{self.redis_port}/0"
        self.sandbox = Sandbox(f"http://127.0.0.1:{self.sandbox_port}")
        # The worker's emails land here, one file per connection (Django's file-based backend).
        self.mail_dir = workdir / "mail"
        self.env = {
            **os.environ,
            **STACK_SETTINGS,
            "DJANGO_SETTINGS_MODULE": "booking_project.settings",
            "DATABASE_URL": f"postgres://root@127.0.0.1:5432/{database_name}",
            "REDIS_URL": self.redis_url,
            "FEISHU_BASE_URL": self.sandbox.url,
            "FEISHU_APP_ID": "cli_sandbox",
            "FEISHU_APP_SECRET": "sandbox-secret",
            "ZOOM_API_BASE_URL": f"{self.sandbox.url}/v2",
            "ZOOM_OAUTH_URL": f"{self.sandbox.url}/oauth/token",
            "ZOOM_ACCOUNT_ID": "sandbox-account",
            "ZOOM_CLIENT_ID": "sandbox-client",
            "ZOOM_CLIENT_SECRET": "sandbox-secret",
            "GOOGLE_CALENDAR_BASE_URL": f"{self.sandbox.url}/calendar/v3",
            "GOOGLE_CALENDAR_ACCESS_TOKEN": "ya29.sandbox-token",
            "EMAIL_BACKEND": "django.core.mail.backends.filebased.EmailBackend",
            "EMAIL_FILE_PATH": str(self.mail_dir),
            "PYTHONUNBUFFERED": "1",
        }
        self.processes: dict[str, subprocess.Popen] = {}

    # --- processes ---

    def _start(self, name: str, args: list[str]) -> subprocess.Popen:
        log = open(self.workdir / f"{name}.log", "ab")  # noqa: SIM115 - the process owns it until it stops
        process = subprocess.Popen(
            args, cwd=ROOT, env=self.env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
        self.processes[name] = process
        return process

    def start_redis(self) -> None:
        self._start(
            "redis",
            [shutil.which("redis-server") or "redis-server", "--port", str(self.redis_port), "--bind", "127.0.0.1",
             "--save", "", "--appendonly", "no"],
        )  # fmt: skip
        wait_for(lambda: _answers(self.redis_port), timeout=10, what="redis to listen")

    def stop_redis(self) -> None:
        self.stop("redis")

    def start_sandbox(self) -> None:
        self._start("sandbox", [sys.executable, "manage.py", "run_provider_sandbox", "--port", str(self.sandbox_port)])
        wait_for(lambda: _answers(self.sandbox_port), timeout=20, what="the sandbox to listen")

    def start_worker(self) -> None:
        self.worker_started_at = time.time()
        self._start(
            "worker",
            [sys.executable, "-m", "celery", "-A", "booking_project", "worker", "--queues", "celery,notifications",
             "--pool", "threads", "--concurrency", "8", "--loglevel", "INFO", "--without-gossip", "--without-mingle",
             "--hostname", f"test-worker-{time.monotonic_ns()}@%h"],
        )  # fmt: skip
        wait_for(lambda: b"ready." in self.log("worker"), timeout=30, what="the worker to be ready")

    def start_beat(self) -> None:
        self._start(
            "beat",
            [sys.executable, "-m", "celery", "-A", "booking_project", "beat", "--loglevel", "INFO",
             "--schedule", str(self.workdir / "celerybeat-schedule")],
        )  # fmt: skip

    def kill(self, name: str) -> None:
        """SIGKILL, no goodbye: what an OOM killer or a pulled plug does."""
        process = self.processes.pop(name)
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=10)

    def stop(self, name: str) -> None:
        process = self.processes.pop(name, None)
        if process is None or process.poll() is not None:
            return
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=10)

    def stop_all(self) -> None:
        for name in ["beat", "worker", "sandbox", "redis"]:
            self.stop(name)

    def emails(self) -> list[email.message.EmailMessage]:
        """Every email the worker has sent so far, parsed."""
        separator = b"\n" + b"-" * 79 + b"\n"
        messages = []
        for path in sorted(self.mail_dir.glob("*.log")) if self.mail_dir.exists() else []:
            for chunk in path.read_bytes().split(separator):
                if chunk.strip():
                    messages.append(email.message_from_bytes(chunk, policy=email.policy.default))
        return messages

    def log(self, name: str) -> bytes:
        path = self.workdir / f"{name}.log"
        return path.read_bytes() if path.exists() else b""

    def log_events(self, name: str) -> list[dict]:
        """The worker's structured log lines (one JSON object each)."""
        events = []
        for line in self.log(name).splitlines():
            if line.startswith(b"{"):
                try:
                    events.append(json.loads(line))
                except ValueError:
                    continue
        return events


def _answers(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False


# Package scope: the stack runs while this package's tests run, and is gone before other tests (which book
# and publish too) start.
@pytest.fixture(scope="package")
def stack(django_db_setup, django_db_blocker, tmp_path_factory):
    from django.db import connection

    with django_db_blocker.unblock():
        database_name = connection.settings_dict["NAME"]
    workdir = tmp_path_factory.mktemp("stack")
    stack = Stack(workdir, database_name)
    try:
        stack.start_redis()
        stack.start_sandbox()
        stack.start_worker()
        stack.start_beat()
        # This process books, so its events must reach the stack's Redis.
        celery_broker_switch(stack.redis_url)
        yield stack
    finally:
        celery_broker_switch(TEST_BROKER_URL)
        stack.stop_all()
        if os.environ.get("KEEP_STACK_LOGS"):
            print(f"stack logs kept in {workdir}")


@pytest.fixture
def sandbox(stack, settings) -> Sandbox:
    stack.sandbox.reset()
    # In-process provider calls (the admin's actions) go to the same sandbox as the worker's.
    for key in ("FEISHU_BASE_URL", "ZOOM_API_BASE_URL", "ZOOM_OAUTH_URL", "FEISHU_APP_ID", "FEISHU_APP_SECRET",
                "ZOOM_ACCOUNT_ID", "ZOOM_CLIENT_ID", "ZOOM_CLIENT_SECRET"):  # fmt: skip
        setattr(settings, key, stack.env[key])
    yield stack.sandbox
    stack.sandbox.reset()


@pytest.fixture(autouse=True)
def _worker_idle_after_test(request):
    """Before the test database is flushed, let the worker finish what the test set going (notifications run
    after the saga the test waited for): a TRUNCATE racing a task's transaction can deadlock. Idle means no
    message queued and none delivered to the running worker but unacknowledged (tasks are acknowledged late,
    and retries waiting for their countdown count too). A killed worker's messages stay unacknowledged until the
    visibility timeout: only those delivered since the worker started count."""
    yield
    if "stack" not in request.fixturenames:
        return
    stack = request.getfixturevalue("stack")
    if "redis" not in stack.processes or "worker" not in stack.processes:
        return
    import redis

    client = redis.Redis.from_url(stack.redis_url, socket_connect_timeout=1, socket_timeout=1)
    deadline = time.monotonic() + 15
    idle_in_a_row = 0
    try:
        while time.monotonic() < deadline and idle_in_a_row < 2:
            idle_in_a_row = 0 if _worker_busy(client, since=stack.worker_started_at) else idle_in_a_row + 1
            time.sleep(0.1)
    except redis.RedisError:
        pass
    finally:
        client.close()


def _worker_busy(client, *, since: float) -> bool:
    """A task other than beat's short periodic ones waits in the queue or runs (or waits to retry)."""
    from django.conf import settings

    periodic = {entry["task"] for entry in settings.CELERY_BEAT_SCHEDULE.values()}
    tags = client.zrangebyscore("unacked_index", since, "+inf")
    messages = [
        *client.lrange("celery", 0, -1),
        *client.lrange("notifications", 0, -1),
        *(client.hmget("unacked", tags) if tags else []),
    ]
    for raw in messages:
        if raw is None:
            continue
        body = json.loads(raw)
        message = body[0] if isinstance(body, list) else body
        if message.get("headers", {}).get("task") not in periodic:
            return True
    return False


@pytest.fixture(autouse=True)
def _dump_stack_logs_on_failure(request):
    yield
    report = getattr(request.node, "rep_call", None)
    if report is not None and report.failed and "stack" in request.fixturenames:
        stack = request.getfixturevalue("stack")
        for name in ("worker", "beat"):
            tail = stack.log(name).decode(errors="replace")[-4000:]
            print(f"\n----- {name} log (tail) -----\n{tail}")


@pytest.hookimpl(tryfirst=True, hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    setattr(item, f"rep_{report.when}", report)
