"""One JSON object per log line, carrying the `extra={...}` fields a caller passes, with secrets and
personal data taken out before the line is formatted."""

import json
import logging
import re
from typing import Any

_STANDARD_ATTRS = set(logging.makeLogRecord({}).__dict__) | {"message", "asctime"}

REDACTED = "[redacted]"
# A field whose name holds one of these carries a credential or personal data, whatever its value.
_SENSITIVE_NAME = re.compile(r"password|passwd|secret|token|authorization|api_?key|cookie|e_?mail|phone", re.I)
# The same inside free text: `app_secret=...`, `"access_token": "..."`, `Authorization: Token ...`.
_SENSITIVE_PAIR = re.compile(
    r"""(?P<name>(?<![\w.-])["']?[\w-]*(?:password|passwd|secret|token|authorization|api_?key|cookie)[\w-]*["']?\s*[:=]\s*)"""
    r"""(?P<value>"[^"]*"|'[^']*'|(?:bearer|token|basic)\s+[^\s,;&"'}]+|[^\s,;&"'}]+)""",
    re.I,
)
# A credential after its scheme ("Bearer eyJ...", "Token 9944b0..."), but not prose like "token refreshed".
_SCHEME_CREDENTIAL = re.compile(
    r"\b(?P<scheme>bearer)\s+[A-Za-z0-9._~+/=-]{8,}|\b(?P<scheme2>token|basic)\s+(?=[^\s]*\d)[A-Za-z0-9._~+/=-]{12,}",
    re.I,
)
_JWT = re.compile(r"\beyJ[\w-]+\.[\w-]+\.[\w-]*")
_EMAIL = re.compile(r"[\w.!#$%&'*+/=?^`{|}~-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)+")


def redact_text(text: str) -> str:
    text = _SENSITIVE_PAIR.sub(lambda m: m.group("name") + REDACTED, text)
    text = _SCHEME_CREDENTIAL.sub(lambda m: f"{m.group('scheme') or m.group('scheme2')} {REDACTED}", text)
    text = _JWT.sub(REDACTED, text)
    return _EMAIL.sub(REDACTED, text)


def redact_value(value: Any, depth: int = 0) -> Any:
    """A copy of `value` with sensitive fields and strings redacted; the caller's objects are left as they are."""
    if depth > 8:
        return value
    if isinstance(value, str):
        return redact_text(value)
    if isinstance(value, dict):
        return {k: REDACTED if _SENSITIVE_NAME.search(str(k)) else redact_value(v, depth + 1) for k, v in value.items()}
    if isinstance(value, (list, tuple, set)):
        return [redact_value(v, depth + 1) for v in value]
    if isinstance(value, BaseException):
        return redact_text(str(value))
    return value


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
            record.exc_text = redact_text(record.exc_text)
        if record.stack_info:
            record.stack_info = redact_text(record.stack_info)
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
