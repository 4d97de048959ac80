"""One real stack shared by the integration and browser tests: the Procfile's processes as deployed (`sandbox`,
`worker`, `notifier`, `beat`, each run as written by launcher.py, the launcher the benchmark uses too) and a Redis
server of their own (so a test may stop it), all on the test database with short clocks. Each test package's
conftest imports the fixtures, so each package starts and stops its own.

The tests book through the API in this process (its events go to that Redis) and watch rows, the sandbox
and HTTP bodies change as the worker provisions and the notifier notifies. Nothing runs eagerly; nothing is
mocked.
"""

import email
import email.policy
import json
import os
import re
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import requests

from launcher import Launcher, free_port, procfile_commands
from tests.conftest import TEST_BROKER_URL, celery_broker_switch

ROOT = Path(__file__).resolve().parents[1]

__all__ = ["STACK_SETTINGS", "Sandbox", "Stack", "free_port", "queue_consumers", "wait_for"]

# Short clocks so failures, retries, leases and sweeps play out in seconds.
STACK_SETTINGS = {
    "SAGA_MAX_ATTEMPTS": "3",
    "SAGA_CANCEL_MAX_ATTEMPTS": "3",
    "SAGA_RETRY_BACKOFF_SECONDS": "0.1",
    "SAGA_RETRY_BACKOFF_MAX_SECONDS": "0.4",
    "PROVIDER_TIMEOUT_SECONDS": "5",
    "SAGA_ATTEMPT_LEASE_SECONDS": "4",
    "SAGA_STUCK_AFTER_SECONDS": "2",
    # A lost create lands within the sandbox's latency; the lookup for it then runs a few seconds later.
    "SAGA_LEFTOVER_SETTLE_SECONDS": "3",
    "SAGA_SWEEP_INTERVAL_SECONDS": "1",
    # A session is started within a second of its start.
    "SESSION_CLOCK_INTERVAL_SECONDS": "1",
    "OUTBOX_RELAY_INTERVAL_SECONDS": "0.5",
    "OUTBOX_RELAY_GRACE_SECONDS": "0.5",
    "NOTIFICATION_MAX_ATTEMPTS": "3",
    "NOTIFICATION_RETRY_BACKOFF_SECONDS": "0.1",
    "NOTIFICATION_RETRY_BACKOFF_MAX_SECONDS": "0.4",
    "REMINDER_SEND_INTERVAL_SECONDS": "1",
    "IDEMPOTENCY_CLEANUP_INTERVAL_SECONDS": "1",
    # The sweep re-drives a notification delivery still undelivered this long after its last progress.
    "NOTIFICATION_STUCK_AFTER_SECONDS": "2",
    # Work waiting for a paused provider is looked at again by the sweep this often (its waits show in seconds).
    "PROVIDER_PAUSE_RECHECK_SECONDS": "1",
    # The Procfile's thread counts are sized for production's provider latency; the tests' providers answer at
    # once, and this machine has two cores and one PostgreSQL for everyone.
    "WORKER_CONCURRENCY": "8",
    "NOTIFIER_CONCURRENCY": "8",
    # The Procfile's sandbox line answers after 1 s like a real provider (bin/up); tests set latency per test,
    # and a reset goes back to this.
    "SANDBOX_LATENCY_MS": "0",
    # The providers' webhooks: the sandbox signs with these and the stack's web checks with them.
    "ZOOM_WEBHOOK_SECRET_TOKEN": "stack-zoom-webhook-secret",
    "FEISHU_EVENT_VERIFICATION_TOKEN": "stack-feishu-verification-token",
    "FEISHU_EVENT_ENCRYPT_KEY": "stack-feishu-encrypt-key",
}


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

    def injected(self) -> dict:
        """`{"failed": {op: n}, "answersLost": {op: n}, "byProvider": {...}}`: what the sandbox injected."""
        return requests.get(f"{self.url}/_sandbox/injected", timeout=5).json()

    def calendar_events(self, *, status: str | None = None, video_meetings: bool = False) -> list[dict]:
        """The participants' calendar events; with `video_meetings`, also the app calendar's events that are a
        Feishu meeting themselves (FEISHU_MEETING_VIA=calendar), which invite nobody."""
        events = requests.get(f"{self.url}/_sandbox/calendar-events", timeout=5).json()["events"]
        return [
            e
            for e in events
            if (status is None or e["status"] == status) and (video_meetings or not e.get("videoMeeting"))
        ]

    @staticmethod
    def meeting_id_of(meeting: dict) -> str:
        """The id our meetings table keeps for a sandbox meeting (a Feishu calendar meeting is addressed by its
        calendar and event)."""
        if meeting.get("source") == "calendar":
            from meetings_app.providers.feishu import calendar_meeting_id

            return calendar_meeting_id(meeting["calendarId"], meeting["eventId"])
        return str(meeting["id"])


def queue_consumers() -> dict[str, str]:
    """Which Procfile line consumes each queue (its `--queues`): {"celery": "worker", "notifications": "notifier"}."""
    consumers = {}
    for line, command in procfile_commands().items():
        match = re.search(r"--queues[ =](\S+)", command)
        for queue in match.group(1).split(",") if match else []:
            consumers[queue] = line
    return consumers


class Stack(Launcher):
    """The launcher running the Procfile's `sandbox`, `worker`, `notifier` and `beat` lines and a Redis server of
    the stack's own, on the test database with short clocks.

    From the launcher: `start(line, name=..., env=...)`, `stop(*names)`, `kill(name)`, `running(name)`,
    `start_redis()`, `stop_redis()`, `log(name)`, `started_at[name]`, `stop_all()`. Added here: a `start_<line>()`
    for each line (`start_beat("beat-2")` runs a second beat), the notifier's emails, structured log lines.
    """

    def __init__(self, workdir: Path, database_name: str):
        self.workdir = workdir
        self.sandbox_port = free_port()
        # The sandbox sends the providers' events to the web line here (Procfile: --events-url), if it runs.
        self.web_port = free_port()
        self.redis_url = f"redis://127.0.0.1:{free_port()}/0"
        self.sandbox = Sandbox(f"http://127.0.0.1:{self.sandbox_port}")
        # The notifier's emails land here, one file per connection (Django's file-based backend).
        self.mail_dir = workdir / "mail"
        super().__init__(
            log_dir=workdir,
            env={
                **os.environ,
                **STACK_SETTINGS,
                "DJANGO_SETTINGS_MODULE": "booking_project.settings",
                "DATABASE_URL": f"postgres://root@127.0.0.1:5432/{database_name}",
                "REDIS_URL": self.redis_url,
                "SANDBOX_PORT": str(self.sandbox_port),
                "WEB_PORT": str(self.web_port),
                "BEAT_SCHEDULE_FILE": str(self._beat_schedule("beat")),
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
            },
        )

    # --- the Procfile's lines ---

    def start_sandbox(self) -> None:
        self.start("sandbox")

    def start_web(self) -> None:
        """The `web` line (gunicorn), small: one worker is plenty for the tests' webhooks."""
        self.start("web", env={"WEB_WORKERS": "1", "WEB_THREADS": "4"})

    @property
    def web_url(self) -> str:
        return f"http://127.0.0.1:{self.web_port}"

    def start_worker(self) -> None:
        """The `worker` line (the `celery` queue: sagas, meeting operations, relay, sweep), consuming on return."""
        self.start("worker")

    def start_notifier(self) -> None:
        """The `notifier` line (the `notifications` queue: calendar events, emails, reminders), consuming on
        return."""
        self.start("notifier")

    def start_beat(self, name: str = "beat") -> None:
        """The `beat` line. Another `name` runs a second beat beside the first (as a deployment might by mistake),
        with a schedule file of its own: both then send every periodic task."""
        self.start("beat", name=name, env={"BEAT_SCHEDULE_FILE": str(self._beat_schedule(name))})

    def _beat_schedule(self, name: str) -> Path:
        return self.workdir / f"{name}.schedule"

    # --- what the stack did ---

    def emails(self) -> list[email.message.EmailMessage]:
        """Every email the notifier has sent so far, parsed."""
        separator = b"\n" + b"-" * 79 + b"\n"
        messages = []
        for path in sorted(self.mail_dir.glob("*.log")) if self.mail_dir.exists() else []:
            for chunk in path.read_bytes().split(separator):
                if chunk.strip():
                    messages.append(email.message_from_bytes(chunk, policy=email.policy.default))
        return messages

    def log_events(self, name: str) -> list[dict]:
        """A process's structured log lines (one JSON object each), across its restarts."""
        events = []
        for line in self.log(name).splitlines():
            if line.startswith(b"{"):
                try:
                    events.append(json.loads(line))
                except ValueError:
                    continue
        return events


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
        stack.start_together("sandbox", "worker", "notifier", "beat")
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
    """Before the test database is flushed, let the worker and the notifier finish what the test set going
    (notifications run after the saga the test waited for): a TRUNCATE racing a task's transaction can deadlock.
    Idle means no message queued for a running consumer and none delivered to one but unacknowledged (tasks are
    acknowledged late, and retries waiting for their countdown count too). A killed consumer's messages stay
    unacknowledged until the visibility timeout: only those delivered since its queue's consumer started count."""
    yield
    if "stack" not in request.fixturenames:
        return
    stack = request.getfixturevalue("stack")
    if not stack.running("redis"):
        return
    import redis

    client = redis.Redis.from_url(stack.redis_url, socket_connect_timeout=1, socket_timeout=1)
    deadline = time.monotonic() + 15
    idle_in_a_row = 0
    try:
        while time.monotonic() < deadline and idle_in_a_row < 2:
            idle_in_a_row = 0 if _consumers_busy(client, stack) else idle_in_a_row + 1
            time.sleep(0.1)
    except redis.RedisError:
        pass
    finally:
        client.close()


def _consumers_busy(client, stack: Stack) -> bool:
    """A task other than beat's short periodic ones waits in a running consumer's queue, or runs there (or waits
    to retry)."""
    from django.conf import settings

    periodic = {entry["task"] for entry in settings.CELERY_BEAT_SCHEDULE.values()}
    # queue -> when its consumer (worker, notifier) last started; a queue nobody consumes now is left alone
    live = {queue: stack.started_at[line] for queue, line in queue_consumers().items() if stack.running(line)}
    if not live:
        return False
    pending = [json.loads(raw) for queue in live for raw in client.lrange(queue, 0, -1)]
    # An unacknowledged message is stored as [message, exchange, routing key]; a queue's routing key is its name.
    for tag, delivered_at in client.zrangebyscore("unacked_index", min(live.values()), "+inf", withscores=True):
        raw = client.hget("unacked", tag)
        if raw is None:
            continue
        message, _exchange, routing_key = json.loads(raw)
        if delivered_at >= live.get(routing_key, float("inf")):
            pending.append(message)
    return any(message.get("headers", {}).get("task") not in periodic for message in pending)


@pytest.fixture(autouse=True)
def _dump_stack_logs_on_failure(request):
    yield
    report = getattr(request.node, "rep_call", None)
    if report is not None and report.failed and "stack" in request.fixturenames:
        stack = request.getfixturevalue("stack")
        # The whole logs are kept where a person can read them after the run (the stack's own folder goes).
        kept = ROOT / "var" / "test-logs" / re.sub(r"[^A-Za-z0-9_.-]+", "_", request.node.nodeid)
        kept.mkdir(parents=True, exist_ok=True)
        for name in [name for name in stack.started_at if name != "redis"]:
            (kept / f"{name}.log").write_bytes(stack.log(name))
            if name != "sandbox":
                tail = stack.log(name).decode(errors="replace")[-4000:]
                print(f"\n----- {name} log (tail; all of it in {kept}) -----\n{tail}")


@pytest.hookimpl(tryfirst=True, hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    setattr(item, f"rep_{report.when}", report)
