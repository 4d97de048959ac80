"""The four things an answer from someone else's system can be (DESIGN.md "One way to call the outside world").

- **done**: the call returns normally;
- **refused** (`PermanentProviderError`): a 4xx or a business error that repeating will not change;
- **not done** (`NotDoneError`): the request never left, or the provider says it did not apply it (429, its
  own 5xx error body): safe to repeat;
- **unknown** (`OutcomeUnknownError`): the request left and no trustworthy answer came back (a read timeout, a
  connection reset, a 502/503/504 from a gateway). The provider may have done it. *Unknown is not failed*:
  whoever repeats a create after an unknown outcome must first look for what may exist.

Every client classifies each answer exactly once, here; the work engine decides what to do with the kind.
`TransientProviderError` (worth another attempt) is the parent of the last two, and `PermanentProviderError`
is the refused kind, under the names the code has always used.
"""

from __future__ import annotations

REFUSED = "refused"
NOT_DONE = "not_done"
UNKNOWN = "unknown"


class ProviderError(Exception):
    """A provider call did not end in "done". `provider` and `operation` say which; the message never carries
    a secret. `kind` is one of REFUSED, NOT_DONE, UNKNOWN."""

    kind: str = REFUSED

    def __init__(self, message: str, *, provider: str, operation: str, status: int | None = None, code=None):
        super().__init__(message)
        self.provider = provider
        self.operation = operation
        self.status = status
        self.code = code


class TransientProviderError(ProviderError):
    """Worth another attempt. `retry_after` (seconds) is set when the provider said how long to wait."""

    kind = NOT_DONE

    def __init__(self, message: str, *, retry_after: float | None = None, **kwargs):
        super().__init__(message, **kwargs)
        self.retry_after = retry_after


class NotDoneError(TransientProviderError):
    """The provider did not do it (never reached, or said so): repeating is safe."""

    kind = NOT_DONE


class OutcomeUnknownError(TransientProviderError):
    """The request left and no trustworthy answer came back: the provider may have done it. Repeating an
    idempotent call (a move, a cancel, a create with our own id or idempotency key) is safe; repeating any
    other create must first look for what the lost call may have made."""

    kind = UNKNOWN


class PermanentProviderError(ProviderError):
    """Refused: retrying cannot help (a 4xx, a business error, a request we cannot even build)."""

    kind = REFUSED
