"""One JSON object per log line, carrying the `extra={...}` fields a caller passes, with secrets and
personal data taken out before the line is formatted. For the demo (LOG_FORMAT=console), one readable line per
business event instead, with the periodic chatter left out."""

import json
import logging
import re
from collections.abc import Callable
from datetime import date, datetime
from typing import Any
from uuid import UUID

from django.http import HttpRequest

_STANDARD_ATTRS = set(logging.makeLogRecord({}).__dict__) | {"message", "asctime"}

REDACTED = "[redacted]"
# Every logged string is cut to this many characters before it is redacted: a request line with an 8 kB path
# (or a megabyte of provider answer) is not worth keeping whole, and what redaction costs stays bounded.
MAX_TEXT_CHARS = 2048
# A traceback keeps its end, where the exception and its innermost frames are.
MAX_TRACEBACK_CHARS = 16384

# A field whose name holds one of these carries a credential or personal data, whatever its value.
_SENSITIVE_NAME = re.compile(r"password|passwd|secret|token|authorization|api_?key|cookie|e_?mail|phone", re.I)
_SENSITIVE_KEY = re.compile(r"password|passwd|secret|token|authorization|api_?key|cookie", re.I)
_SENSITIVE_WORDS = ("passw", "secret", "token", "authorization", "apikey", "api_key", "cookie")

# Each pattern below may only start where its kind of text starts (a look-behind refuses the middle of a run
# of the characters it is made of), so the engine walks each run once, not once per character of it: the cost
# is linear in the text's length. (Patterns free to start anywhere cost ~0.2 s on an 8 kB URL path.)
#
# `name=value`, `name: value`, `"name": "value"` in free text: any key, its name checked afterwards.
_KEY = re.compile(r"""(?<![\w.-])["']?(?P<key>[\w-]+)["']?\s*[:=]\s*""")
# What follows a sensitive key: a quoted string (to its end if it is never closed), a scheme and its
# credential ("Token 9944b0..."), or a bare word.
_VALUE = re.compile(r""""[^"]*"?|'[^']*'?|(?:bearer|token|basic)\s+[^\s,;&"'}]+|[^\s,;&"'}]+""", re.I)
# A credential after its scheme ("Bearer eyJ...", "Token 9944b0..."), but not prose like "token refreshed".
_SCHEME_CREDENTIAL = re.compile(
    r"\b(?P<scheme>bearer)\s+[A-Za-z0-9._~+/=-]{8,}"
    r"|\b(?P<scheme2>token|basic)\s+(?=[A-Za-z0-9._~+/=-]*\d)[A-Za-z0-9._~+/=-]{12,}",
    re.I,
)
_JWT = re.compile(r"(?<![\w-])eyJ[\w-]+\.[\w-]+\.[\w-]*")
_EMAIL_LOCAL = r"\w.!#$%&'*+/=?^`{|}~-"
_EMAIL = re.compile(rf"(?<![{_EMAIL_LOCAL}])[{_EMAIL_LOCAL}]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)+")


def redact_text(text: str, *, limit: int = MAX_TEXT_CHARS) -> str:
    """`text` cut to `limit` characters, with credentials and email addresses replaced by [redacted]."""
    if len(text) > limit:
        text = f"{text[:limit]}…[{len(text) - limit} more characters]"
    # Plain substring tests first (a few microseconds): most lines hold none of what a pattern looks for.
    folded = text.lower()
    if ("=" in text or ":" in text) and any(word in folded for word in _SENSITIVE_WORDS):
        text = _sensitive_values_redact(text)
    if "bearer" in folded or "token" in folded or "basic" in folded:
        text = _SCHEME_CREDENTIAL.sub(lambda m: f"{m.group('scheme') or m.group('scheme2')} {REDACTED}", text)
    if "eyJ" in text:
        text = _JWT.sub(REDACTED, text)
    if "@" in text:
        text = _EMAIL.sub(REDACTED, text)
    return text


def _sensitive_values_redact(text: str) -> str:
    parts: list[str] = []
    done = 0  # text[:done] is in parts already
    for match in _KEY.finditer(text):
        if match.start() < done or not _SENSITIVE_KEY.search(match.group("key")):
            continue  # inside a value already redacted, or an ordinary key
        value = _VALUE.match(text, match.end())
        if value is None:
            continue
        parts += [text[done : match.end()], REDACTED]
        done = value.end()
    return "".join(parts) + text[done:] if parts else text


def _traceback_redact(text: str) -> str:
    if len(text) > MAX_TRACEBACK_CHARS:
        text = f"[{len(text) - MAX_TRACEBACK_CHARS} characters before]…{text[-MAX_TRACEBACK_CHARS:]}"
    return redact_text(text, limit=MAX_TRACEBACK_CHARS + 64)


def redact_value(value: Any, depth: int = 0) -> Any:
    """A copy of `value` with sensitive fields and strings redacted; the caller's objects are left as they are.
    Numbers, booleans, None, ids and times stay as they are; a request is its method and path; any other object
    is logged as its redacted text."""
    if value is None or isinstance(value, (bool, int, float, UUID, date, datetime)):
        return value
    if depth > 8:
        return REDACTED
    if isinstance(value, str):
        return redact_text(value)
    if isinstance(value, dict):
        return {k: REDACTED if _SENSITIVE_NAME.search(str(k)) else redact_value(v, depth + 1) for k, v in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        return [redact_value(v, depth + 1) for v in value]
    if isinstance(value, HttpRequest):
        # Django's request logger passes the request. Its method and path say which request it was; its
        # query string may carry a credential, and its repr costs more than all the redaction (it quotes the
        # whole URL again).
        return redact_text(f"{value.method} {value.path}")
    return redact_text(str(value))


class RedactingFilter(logging.Filter):
    """Takes credentials and personal data out of a record before any handler formats it: the values of
    fields named like a secret, token or email, and anything in the message, its arguments, extras or
    traceback that looks like a credential or an email address. Logs keep ids, which is all they need."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # arguments that do not fit the message: the handler reports it, without them
            message, record.args = str(record.msg), None
        record.msg, record.args = redact_text(message), None
        for key, value in list(record.__dict__.items()):
            if key in _STANDARD_ATTRS:
                continue
            record.__dict__[key] = REDACTED if _SENSITIVE_NAME.search(key) else redact_value(value)
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = _traceback_redact(record.exc_text)
        if record.stack_info:
            record.stack_info = _traceback_redact(record.stack_info)
        return True


class StructuredFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        line = {
            "ts": self.formatTime(record, "%Y-%m-%dT%H:%M:%S"),
            "level": record.levelname,
            "logger": record.name,
            "event": record.getMessage(),
        }
        line.update({k: v for k, v in record.__dict__.items() if k not in _STANDARD_ATTRS})
        if record.exc_text or record.exc_info:
            line["exc"] = record.exc_text or self.formatException(record.exc_info)
        return json.dumps(line, default=str)


# ---------------------------------------------------------------------------------------------------------
# The demo console (LOG_FORMAT=console): one short line per thing a person cares about, and quiet ticks.

# Records that every periodic tick writes, for a job that found nothing to do: beat sending its due tasks,
# the worker receiving them and reporting their success (and django-axes's banner, once per process at
# start). Warnings and errors from them are always kept.
QUIET_LOGGERS = ("celery.beat", "celery.worker.strategy", "celery.app.trace", "gunicorn.access", "axes.apps")
# Plumbing a person watching the demo does not need; the business line that follows says what happened.
QUIET_EVENTS = frozenset(
    {
        "outbox.published",
        "outbox.publish_deferred",
        "saga.attempt_started",
        "saga.busy",
        "saga.event_ignored",
        "meeting_operation.attempt_started",
        "meeting_operation.waiting_for_provisioning",
        "provider.token_refused",
        # The calendar, email and reminder lines say what was delivered.
        "notifications.recorded",
        # Each session the clock moved has its own line.
        "sessions.clock_moved",
        "notifications.delivered",
    }
)
# Periodic jobs' reports, quiet when the count they carry is zero (the job found nothing).
QUIET_WHEN_NOTHING = {
    "outbox.relayed": "published",
    "notifications.reminders_sent": "sent",
    "idempotency.records_expired": "deleted",
}


class ConsoleQuietFilter(logging.Filter):
    """For the demo console only: drops the periodic and no-op chatter below WARNING (see QUIET_LOGGERS,
    QUIET_EVENTS, QUIET_WHEN_NOTHING) and successful provider calls (the meeting or calendar line that follows
    tells of them). Anything at WARNING or above passes."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno >= logging.WARNING:
            return True
        if record.name in QUIET_LOGGERS or record.name.startswith(tuple(f"{name}." for name in QUIET_LOGGERS)):
            return False
        event = record.msg if isinstance(record.msg, str) else ""
        if event in QUIET_EVENTS:
            return False
        if event in QUIET_WHEN_NOTHING and not getattr(record, QUIET_WHEN_NOTHING[event], None):
            return False
        return not (event == "provider.call" and getattr(record, "outcome", None) == "ok")


PROVIDER_NAMES = {"zoom": "Zoom", "feishu": "Feishu", "google": "Google"}


def _moved_by(via: str | None) -> str:
    """Who moved a session: the clock, a provider's event, or a person (through the API, the page, the admin)."""
    if via == "clock":
        return "its time came"
    provider = (via or "").removesuffix("_webhook")
    if provider in PROVIDER_NAMES:
        return f"{PROVIDER_NAMES[provider]} said so"
    return f"by a person, via {via}" if via else "by a person"


def _short_id(value: Any) -> str:
    text = str(value or "")
    return f"{text[:8]}…" if len(text) > 8 else text


def _provider(value: Any) -> str:
    return PROVIDER_NAMES.get(str(value), str(value or "?"))


def _session(fields: dict) -> str:
    return f"session {_short_id(fields.get('sessionId'))}"


def _seconds(milliseconds: Any) -> str:
    return f"{float(milliseconds) / 1000:.1f} s" if isinstance(milliseconds, int | float) else "?"


# How each business event reads on the console, from the record's extra fields.
CONSOLE_LINES: dict[str, Callable[[dict], str]] = {
    "session.booked": lambda f: (
        f"booked {f.get('sessionType', 'session')} {_short_id(f.get('sessionId'))} with {_provider(f.get('provider'))}"
    ),
    "saga.meeting_created": lambda f: f"meeting created for {_session(f)} in {_seconds(f.get('durationMs'))}",
    "saga.meeting_adopted": lambda f: f"meeting found at the provider for {_session(f)} (made by an earlier try)",
    "session.scheduled": lambda f: (
        f"{_session(f)} SCHEDULED at {_provider(f.get('provider'))}, {_seconds(f.get('sagaDurationMs'))} after booking"
    ),
    "saga.attempt_failed": lambda f: (
        f"{_provider(f.get('provider'))} call for {_session(f)} failed: {f.get('error')}"
        + (" (will retry)" if f.get("retryable") else "")
    ),
    "saga.retry_scheduled": lambda f: f"retry {_session(f)} in {f.get('retryIn')} s",
    "saga.failed": lambda f: f"failed: {_session(f)} MEETING_FAILED: {f.get('reason')}",
    "saga.compensating": lambda f: f"undoing {_session(f)}: {f.get('reason')}",
    "saga.meeting_cancelled": lambda f: f"meeting cancelled at {_provider(f.get('provider'))} for {_session(f)}",
    "saga.manual_intervention": lambda f: f"an operator is needed for {_session(f)}: {f.get('reason')}",
    "session.retried": lambda f: f"{_session(f)} retried",
    "session.cancelled": lambda f: f"{_session(f)} cancelled",
    "session.rescheduled": lambda f: f"{_session(f)} rescheduled to {f.get('scheduledAt')}",
    "session.started": lambda f: f"{_session(f)} IN_PROGRESS ({_moved_by(f.get('via'))})",
    "session.completed": lambda f: f"{_session(f)} COMPLETED ({_moved_by(f.get('via'))})",
    "provider_event.recorded": lambda f: (
        f"{_provider(f.get('provider'))} says a meeting {f.get('kind')}"
        + ("" if f.get("meetingId") else " (not one of ours: nothing changes)")
    ),
    "provider_event.repeated": lambda f: f"{_provider(f.get('provider'))} sent an event again: ignored",
    "notifications.calendar_synced": lambda f: (
        f"calendar event {f.get('status')} at {_provider(f.get('provider'))} for {_session(f)}"
    ),
    "notifications.email_sent": lambda f: f"email ({f.get('kind')}) sent for {_session(f)}",
    "notifications.reminders_sent": lambda f: f"{f.get('sent')} reminder(s) sent",
}
# Fields a generic line leaves out: correlation ids a person does not read (the session's id is kept).
_UNREAD_FIELDS = re.compile(r".+Id$|.+Ids$")


class ConsoleFormatter(logging.Formatter):
    """One short readable line per record: the local time, WARNING/ERROR when it is one, then the business
    event as a sentence (CONSOLE_LINES) or, for any other event, its name and its fields; a traceback follows
    on its own lines. For people watching the demo; production logs stay JSON (StructuredFormatter)."""

    def format(self, record: logging.LogRecord) -> str:
        fields = {k: v for k, v in record.__dict__.items() if k not in _STANDARD_ATTRS}
        message = record.getMessage()
        render = CONSOLE_LINES.get(message)
        text = render(fields) if render is not None else self._generic(message, fields)
        level = f"{record.levelname} " if record.levelno >= logging.WARNING else ""
        line = f"{self.formatTime(record, '%H:%M:%S')} {level}{text}"
        if record.exc_text or record.exc_info:
            line += "\n" + (record.exc_text or self.formatException(record.exc_info))
        return line

    @staticmethod
    def _generic(message: str, fields: dict) -> str:
        parts = [message]
        if fields.get("sessionId"):
            parts.append(_session(fields))
        parts += [
            f"{key}={value}"
            for key, value in fields.items()
            if key != "sessionId" and not _UNREAD_FIELDS.fullmatch(key) and value not in (None, "")
        ]
        return " ".join(parts)
