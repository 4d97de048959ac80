"""Feishu Calendar and Google Calendar as `responses` plays them, with state (so a repeat create with the same
key is the same event, a delete is remembered), and a way to run the result handler's fan-out in-process."""

import json
import re
import uuid
from dataclasses import dataclass, field
from urllib.parse import parse_qs, unquote, urlsplit

import pytest
import responses

from calendar_app.providers import calendar_provider_clients_reset
from notifications_app import tasks
from sessions_app.models import Session
from sessions_app.outbox import outbox_event_add
from sessions_app.payloads import meeting_result_payload

FEISHU = "https://feishu.test"
GOOGLE = "https://google.test/calendar/v3"
FEISHU_CALENDAR = "feishu.cn_app@group.calendar.feishu.cn"


@dataclass
class FakeEvent:
    provider: str
    id: str
    start: int | str
    end: int | str
    url: str
    attendees: list = field(default_factory=list)
    status: str = "active"
    reminders: list = field(default_factory=list)  # minutes before the start


class FakeCalendars:
    """What the two providers hold. `down` names providers that answer 500 to every calendar call;
    `during_create` runs inside a create call (to race a cancel against it)."""

    def __init__(self, mock: responses.RequestsMock):
        self.events: dict[tuple[str, str], FakeEvent] = {}
        self.feishu_keys: dict[str, str] = {}
        self.down: set[str] = set()
        self.during_create = None
        # Called with (provider, operation) at the start of every calendar call the fake answers.
        self.before_each = None
        self.calls: list[tuple[str, str]] = []
        mock.post(
            f"{FEISHU}/open-apis/auth/v3/tenant_access_token/internal",
            json={"code": 0, "msg": "ok", "tenant_access_token": "t-1", "expire": 7200},
        )
        mock.post(
            f"{FEISHU}/open-apis/calendar/v4/calendars/primary",
            json={"code": 0, "msg": "ok", "data": {"calendars": [{"calendar": {"calendar_id": FEISHU_CALENDAR}}]}},
        )
        query = r"(\?.*)?$"
        events = rf"{re.escape(FEISHU)}/open-apis/calendar/v4/calendars/[^/]+/events"
        event = rf"{events}/[^/?]+"
        mock.add_callback(responses.POST, re.compile(f"{event}/attendees{query}"), callback=self._feishu_attendees)
        mock.add_callback(responses.POST, re.compile(f"{events}{query}"), callback=self._feishu_create)
        mock.add_callback(responses.PATCH, re.compile(f"{event}{query}"), callback=self._feishu_patch)
        mock.add_callback(responses.DELETE, re.compile(f"{event}{query}"), callback=self._feishu_delete)
        google_events = rf"{re.escape(GOOGLE)}/calendars/[^/]+/events"
        google_event = rf"{google_events}/[^/?]+"
        mock.add_callback(responses.POST, re.compile(f"{google_events}{query}"), callback=self._google_insert)
        mock.add_callback(responses.PATCH, re.compile(f"{google_event}{query}"), callback=self._google_patch)
        mock.add_callback(responses.DELETE, re.compile(f"{google_event}{query}"), callback=self._google_delete)

    def active(self, provider: str | None = None) -> list[FakeEvent]:
        return [e for e in self.events.values() if e.status == "active" and provider in (None, e.provider)]

    # --- Feishu ---

    def _feishu_down(self, operation: str):
        self.calls.append(("feishu", operation))
        if self.before_each:
            self.before_each("feishu", operation)
        if "feishu" in self.down:
            return 500, {}, json.dumps({"code": 190003, "msg": "internal service error"})
        return None

    def _feishu_create(self, request):
        if failure := self._feishu_down("create"):
            return failure
        key = parse_qs(urlsplit(request.url).query)["idempotency_key"][0]
        if self.during_create:
            self.during_create()
        if key not in self.feishu_keys:
            body = json.loads(request.body)
            event_id = f"{uuid.uuid4()}_0"
            self.feishu_keys[key] = event_id
            self.events[("feishu", event_id)] = FakeEvent(
                "feishu",
                event_id,
                int(body["start_time"]["timestamp"]),
                int(body["end_time"]["timestamp"]),
                body["vchat"]["meeting_url"],
                reminders=[reminder["minutes"] for reminder in body.get("reminders", [])],
            )
        return 200, {}, json.dumps({"code": 0, "msg": "ok", "data": {"event": {"event_id": self.feishu_keys[key]}}})

    def _feishu_event(self, request) -> FakeEvent | None:
        event_id = unquote(urlsplit(request.url).path.split("/events/")[1].split("/")[0])
        event = self.events.get(("feishu", event_id))
        return event if event is not None and event.status == "active" else None

    def _feishu_attendees(self, request):
        if failure := self._feishu_down("attendees"):
            return failure
        event = self._feishu_event(request)
        if event is None:
            return 404, {}, json.dumps({"code": 193001, "msg": "event not found"})
        for attendee in json.loads(request.body)["attendees"]:
            if attendee not in event.attendees:
                event.attendees.append(attendee)
        return 200, {}, json.dumps({"code": 0, "msg": "ok", "data": {"attendees": event.attendees}})

    def _feishu_patch(self, request):
        if failure := self._feishu_down("update"):
            return failure
        event = self._feishu_event(request)
        if event is None:
            return 404, {}, json.dumps({"code": 193001, "msg": "event not found"})
        body = json.loads(request.body)
        event.start, event.end = int(body["start_time"]["timestamp"]), int(body["end_time"]["timestamp"])
        event.url = body["vchat"]["meeting_url"]
        if "reminders" in body:
            event.reminders = [reminder["minutes"] for reminder in body["reminders"]]
        return 200, {}, json.dumps({"code": 0, "msg": "ok", "data": {"event": {"event_id": event.id}}})

    def _feishu_delete(self, request):
        if failure := self._feishu_down("delete"):
            return failure
        event = self._feishu_event(request)
        if event is None:
            return 404, {}, json.dumps({"code": 193001, "msg": "event not found"})
        event.status = "deleted"
        return 200, {}, json.dumps({"code": 0, "msg": "ok", "data": {}})

    # --- Google ---

    def _google_down(self, operation: str):
        self.calls.append(("google", operation))
        if self.before_each:
            self.before_each("google", operation)
        if "google" in self.down:
            error = {"code": 500, "message": "Backend Error", "errors": [{"reason": "backendError"}]}
            return 500, {}, json.dumps({"error": error})
        return None

    def _google_insert(self, request):
        if failure := self._google_down("create"):
            return failure
        if self.during_create:
            self.during_create()
        body = json.loads(request.body)
        if ("google", body["id"]) in self.events:
            error = {"code": 409, "message": "The requested identifier already exists.", "errors": [{"reason": "x"}]}
            return 409, {}, json.dumps({"error": error})
        self.events[("google", body["id"])] = FakeEvent(
            "google",
            body["id"],
            body["start"]["dateTime"],
            body["end"]["dateTime"],
            body["location"],
            [a["email"] for a in body["attendees"]],
            reminders=[override["minutes"] for override in body.get("reminders", {}).get("overrides", [])],
        )
        return 200, {}, json.dumps({"id": body["id"], "status": "confirmed"})

    def _google_event(self, request) -> FakeEvent | None:
        return self.events.get(("google", unquote(urlsplit(request.url).path.rsplit("/", 1)[1])))

    def _google_patch(self, request):
        if failure := self._google_down("update"):
            return failure
        event = self._google_event(request)
        if event is None or event.status != "active":
            return (404 if event is None else 410), {}, json.dumps({"error": {"code": 404, "errors": []}})
        body = json.loads(request.body)
        event.start, event.end, event.url = body["start"]["dateTime"], body["end"]["dateTime"], body["location"]
        if "reminders" in body:
            event.reminders = [override["minutes"] for override in body["reminders"].get("overrides", [])]
        return 200, {}, json.dumps({"id": event.id})

    def _google_delete(self, request):
        if failure := self._google_down("delete"):
            return failure
        event = self._google_event(request)
        if event is None or event.status != "active":
            return (404 if event is None else 410), {}, json.dumps({"error": {"code": 410, "errors": []}})
        event.status = "deleted"
        return 204, {}, ""


@pytest.fixture
def calendars(settings):
    settings.FEISHU_BASE_URL = FEISHU
    settings.FEISHU_APP_ID = "cli_test"
    settings.FEISHU_APP_SECRET = "secret"
    settings.FEISHU_CALENDAR_ID = ""
    settings.GOOGLE_CALENDAR_BASE_URL = GOOGLE
    settings.GOOGLE_CALENDAR_ID = "primary"
    settings.GOOGLE_CALENDAR_ACCESS_TOKEN = "ya29.test"
    settings.NOTIFICATION_MAX_ATTEMPTS = 3
    settings.REMINDER_OFFSETS_MINUTES = [24 * 60, 60]
    settings.SITE_URL = "https://booking.example.com"
    calendar_provider_clients_reset()
    with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
        yield FakeCalendars(mock)
    calendar_provider_clients_reset()


def result_event(session: Session, *, operation: str = "create", status: str = "success", reason: str = "") -> str:
    """Record the saga's (or the lifecycle's) result event for the session, as `meeting_result_payload` builds it
    and the saga records it (its delivery rows with it)."""
    event = outbox_event_add(
        type=f"{session.session_type}.session.meeting.operation.result",
        payload=meeting_result_payload(
            session=session, meeting=session.meeting, status=status, operation=operation, failure_reason=reason
        ),
    )
    return str(event.id)


@pytest.fixture
def in_process_tasks():
    """Tasks run inside the test's transaction: the worker's "close stale connections" hook would close it."""
    from celery.signals import task_postrun, task_prerun

    from booking_project.celery import _close_stale_database_connections as hook

    task_prerun.disconnect(hook)
    task_postrun.disconnect(hook)
    yield
    task_prerun.connect(hook)
    task_postrun.connect(hook)


@pytest.fixture
def deliver(monkeypatch, in_process_tasks):
    """Run the result handler, then every delivery courier it enqueued, in this process (each through Celery's
    `apply`, so a courier's retries run too, at once, one after the other). Returns the enqueued (task, kwargs)."""

    def run(event_id: str) -> list[tuple[str, dict]]:
        enqueued: list[tuple] = []
        task = tasks.deliver_notification
        monkeypatch.setattr(
            task, "apply_async", lambda kwargs, _task=task, **_: enqueued.append((_task, kwargs)), raising=False
        )
        result = tasks.notify_meeting_result.apply(kwargs={"event_id": event_id})
        assert result.successful(), result.traceback
        for task, kwargs in enqueued:
            outcome = task.apply(kwargs=kwargs)
            assert outcome.successful(), outcome.traceback
        return [(task.name, kwargs) for task, kwargs in enqueued]

    return run
