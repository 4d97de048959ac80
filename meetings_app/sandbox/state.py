"""What the fake providers hold and how the sandbox is set to behave: the requests and answers every module
passes around, the meetings and calendar events, the issued tokens, the config that `/_sandbox/config`
changes, the counters, and the fault-injection decisions. One lock guards all of it; provider handlers run
with it held, so each operation is atomic, and nobody sleeps holding it.

Two kinds of injected fault, decided in this order for every provider call except token fetches:
- fail before applying (`failNext`, then `failRate`): the provider's own error answer, nothing changes;
- lose the answer after applying (`applyThenFailNext`, then `applyThenFailRate`): the operation takes effect,
  then the caller gets `applyThenFailStatus` from a "gateway" (HTML, not the provider's JSON) after
  `applyThenDelayMs` more: with a delay past the caller's timeout, a timeout on work that was done.
`failProvider` limits both to one provider's calls.
"""

from __future__ import annotations

import json
import random
import threading
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.client import HTTPMessage
from typing import Any
from urllib.parse import parse_qs
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

# What /_sandbox/config's failNext counts and /_sandbox/requests reports ("token" is counted, never failed).
OPERATIONS = ("create", "update", "cancel", "calendar", "read")
COUNTED = (*OPERATIONS, "token")
PROVIDERS = ("feishu", "zoom", "google")

# The settings that lose answers after applying, and tokenLatencyMs, with their defaults. /_sandbox/config
# lists them only while one differs from its default, so a sandbox that uses none of them shows the config
# it always showed.
ANSWER_LOSS_DEFAULTS: dict[str, Any] = {
    "applyThenFailNext": dict.fromkeys(OPERATIONS, 0),
    "applyThenFailRate": 0.0,
    # null: applyThenFailRate loses answers of every operation; else of this one only (the bench loses creates').
    "applyThenFailOperation": None,
    "applyThenFailStatus": 504,
    "applyThenDelayMs": 0,
}
TOKEN_LATENCY_DEFAULT = 0


@dataclass
class Reply:
    status: int
    body: Any = None  # JSON-serialisable, sent as JSON; bytes are sent as they are; None sends an empty body
    headers: dict[str, str] = field(default_factory=dict)
    content_type: str = "application/json; charset=utf-8"  # of a body that is not None


@dataclass
class ProviderRequest:
    method: str
    path: str
    query: dict[str, str]
    headers: HTTPMessage
    raw_body: bytes

    def json_object(self) -> dict | None:
        """The body as a JSON object; {} when empty, None when it is not a JSON object."""
        if not self.raw_body.strip():
            return {}
        try:
            value = json.loads(self.raw_body)
        except (ValueError, UnicodeDecodeError):
            return None
        return value if isinstance(value, dict) else None

    def form(self) -> dict[str, str]:
        try:
            text = self.raw_body.decode()
        except UnicodeDecodeError:
            return {}
        return {key: values[0] for key, values in parse_qs(text).items()}

    def bearer_token(self) -> str | None:
        scheme, _, token = (self.headers.get("Authorization") or "").strip().partition(" ")
        token = token.strip()
        return token if scheme.lower() == "bearer" and token else None


@dataclass
class Meeting:
    provider: str  # "feishu" | "zoom"
    id: str
    resource: dict  # the provider's own representation, as its API returns it
    status: str = "active"
    # "calendar" for a Feishu video meeting that a calendar event made (vchat vc_type "vc"); None when the
    # meeting API made it (a Feishu reservation, a Zoom meeting).
    source: str | None = None


@dataclass
class CalendarEvent:
    provider: str  # "feishu" | "google"
    calendar_id: str
    id: str
    resource: dict
    meeting_id: str | None = None  # the Feishu video meeting this event made, if any


@dataclass(frozen=True)
class BusyTime:
    """A stretch a person is busy in their own calendar, set through POST /_sandbox/busy: their free/busy
    answers it besides the events the sandbox holds."""

    provider: str  # "feishu" | "google"
    user: str  # Feishu: an open_id; Google: a calendar id (an email)
    start: datetime
    end: datetime


@dataclass
class IssuedToken:
    provider: str  # "feishu" | "zoom"
    expired: bool = False


def control_error(status: int, code: str, message: str, *, details: dict | None = None) -> Reply:
    """An error of the sandbox's own (control API, unknown path), in the app's error shape (API.md "Errors")."""
    return Reply(status, {"error": {"code": code, "message": message, "details": details or {}}})


# ---------------------------------------------------------------------------------------------------------
# Time helpers


def utc_now() -> datetime:
    return datetime.now(UTC)


def iso_utc(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_datetime(value: Any, zone_name: str | None = None) -> datetime | None:
    """An aware datetime from an ISO-8601 string; a naive one is read in `zone_name` (UTC if unknown)."""
    if not isinstance(value, str) or not value:
        return None
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        return None
    if moment.tzinfo is None:
        try:
            zone = ZoneInfo(zone_name) if zone_name else UTC
        except (ZoneInfoNotFoundError, ValueError, OSError):  # unknown, malformed, a directory, too long
            zone = UTC
        moment = moment.replace(tzinfo=zone)
    return moment


def parse_rfc3339(value: Any) -> datetime | None:
    """An aware datetime from RFC 3339 text, which must carry its offset (free/busy windows, /_sandbox/busy)."""
    moment = parse_datetime(value)
    if moment is None or not isinstance(value, str) or datetime.fromisoformat(value).tzinfo is None:
        return None
    return moment


def busy_overlapping(
    intervals: list[tuple[datetime, datetime]], start: datetime, end: datetime
) -> list[tuple[datetime, datetime]]:
    """The intervals that overlap [start, end), sorted."""
    return sorted((first, last) for first, last in intervals if first < end and last > start)


def unix_seconds(value: Any) -> int | None:
    """Feishu sends timestamps as strings of digits; its SDK sends integers. Both are fine."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.strip().isdigit():
        return int(value.strip())
    return None


# ---------------------------------------------------------------------------------------------------------
# The state every provider holds, and the rules for touching it


class SandboxState:
    """Everything the fake providers hold, behind one lock. Handlers run with the lock held, so each
    operation is atomic; nobody sleeps while holding it."""

    def __init__(self, *, latency_ms: float = 0, fail_rate: float = 0.0, event_target: Any = None):
        self.lock = threading.Lock()
        # Where the providers' webhooks go and how they are signed (sandbox/events.py's EventTarget): startup
        # settings, kept across resets.
        self.event_target = event_target
        self.startup_config = {"latencyMs": latency_ms, "failRate": fail_rate, "failStatus": 500}
        self.random = random.Random()
        # Tokens survive /_sandbox/reset, so a client's cached token keeps working across tests;
        # `expireTokens` is the way to invalidate them.
        self.tokens: dict[str, IssuedToken] = {}
        # Ids stay unique for the sandbox's whole life: rows made before a reset may still name them.
        self.used_ids: set[str] = set()
        self._clear()

    def _clear(self) -> None:
        # failProvider (null, "feishu", "zoom" or "google"): injected failures hit that provider's calls only,
        # so one provider can be down while the others answer.
        self.config: dict[str, Any] = {
            **self.startup_config,
            "failNext": dict.fromkeys(OPERATIONS, 0),
            "failProvider": None,
            **ANSWER_LOSS_DEFAULTS,
            "applyThenFailNext": dict(ANSWER_LOSS_DEFAULTS["applyThenFailNext"]),
            "tokenLatencyMs": TOKEN_LATENCY_DEFAULT,
        }
        self.meetings: dict[tuple[str, str], Meeting] = {}  # insertion order is creation order
        self.events: dict[tuple[str, str, str], CalendarEvent] = {}
        self.feishu_event_keys: dict[tuple[str, str], str] = {}  # (calendar_id, idempotency_key) -> event_id
        # When each meeting really started and ended, by /_sandbox/meetings/{id}/start|end: {"started", "ended"}.
        self.meeting_runs: dict[tuple[str, str], dict[str, float]] = {}
        self.busy: list[BusyTime] = []  # set through /_sandbox/busy
        self.requests = dict.fromkeys(COUNTED, 0)
        # What was injected, per provider: "failed" before applying, "answersLost" after applying.
        self.injected = {
            provider: {"failed": dict.fromkeys(OPERATIONS, 0), "answersLost": dict.fromkeys(OPERATIONS, 0)}
            for provider in PROVIDERS
        }

    def reset(self) -> None:
        with self.lock:
            self._clear()

    def count(self, operation: str) -> None:
        with self.lock:
            self.requests[operation] += 1

    def latency_seconds(self, operation: str) -> float:
        """The wait before a provider call is applied: latencyMs, plus tokenLatencyMs for a token fetch."""
        with self.lock:
            extra = self.config["tokenLatencyMs"] if operation == "token" else 0
            return (self.config["latencyMs"] + extra) / 1000

    def should_fail(self, operation: str, provider: str) -> bool:
        """Whether this call fails before it is applied (failNext, then failRate). Call with the lock held."""
        if self._injects(provider, "failNext", "failRate", operation):
            self.injected[provider]["failed"][operation] += 1
            return True
        return False

    def should_lose_answer(self, operation: str, provider: str) -> bool:
        """Whether this applied call's answer is lost (applyThenFailNext, then applyThenFailRate). Call with
        the lock held, once the call has taken effect."""
        only = self.config["applyThenFailOperation"]
        rate_key = "applyThenFailRate" if only in (None, operation) else "_noRate"
        if self._injects(provider, "applyThenFailNext", rate_key, operation):
            self.injected[provider]["answersLost"][operation] += 1
            return True
        return False

    def _injects(self, provider: str, next_key: str, rate_key: str, operation: str) -> bool:
        if self.config["failProvider"] not in (None, provider):
            return False
        pending = self.config[next_key]
        if pending.get(operation, 0) > 0:
            pending[operation] -= 1
            return True
        return self.random.random() < self.config.get(rate_key, 0.0)

    def busy_set(self, provider: str, user: str) -> list[tuple[datetime, datetime]]:
        """The busy times set through the control API for this person. Call with the lock held."""
        return [(busy.start, busy.end) for busy in self.busy if busy.provider == provider and busy.user == user]

    def issue_token(self, provider: str, token: str) -> str:
        self.tokens[token] = IssuedToken(provider)
        return token

    def token_state(self, provider: str, token: str | None) -> str:
        """'valid', 'expired' or 'unknown' for this provider."""
        issued = self.tokens.get(token) if token else None
        if issued is None or issued.provider != provider:
            return "unknown"
        return "expired" if issued.expired else "valid"

    def expire_tokens(self) -> None:
        for issued in self.tokens.values():
            issued.expired = True

    def _new_number(self, kind: str, low: int, high: int) -> int:
        while True:
            number = self.random.randrange(low, high)
            if f"{kind}:{number}" not in self.used_ids:
                self.used_ids.add(f"{kind}:{number}")
                return number

    def new_meeting_no(self) -> str:
        return str(self._new_number("feishu-meeting-no", 100_000_000, 1_000_000_000))

    def new_zoom_id(self) -> int:
        return self._new_number("zoom", 80_000_000_000, 100_000_000_000)

    def new_feishu_reserve_id(self) -> str:
        return self.new_feishu_meeting_id()

    def new_feishu_meeting_id(self) -> str:
        # Reservations and meetings that events made share the ids of Feishu's meetings, and never collide.
        return str(self._new_number("feishu-meeting", 6_900_000_000_000_000_000, 7_400_000_000_000_000_000))
