"""What every provider client shares: one HTTP session with a timeout on every request, one reading of every
failure into the four kinds of answer (`outcomes.py`), one access-token cache, one backoff.

The provider-specific parts (which body code means "rate limited", which answer means "token expired") stay in
each client; everything here is provider-neutral. `meetings_app` and `calendar_app` build on this module and
never import each other.
"""

from __future__ import annotations

import logging
import math
import random
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any
from urllib.parse import urlsplit

import requests
from requests.adapters import HTTPAdapter

from booking_project.providers.outcomes import (
    NotDoneError,
    OutcomeUnknownError,
    PermanentProviderError,
)

logger = logging.getLogger(__name__)

# The connection was never made: the provider cannot have seen the request.
NOT_SENT: tuple[type[Exception], ...] = (requests.exceptions.ConnectTimeout,)
# The request may have left: a read timeout, a reset, a body cut short. The provider may have done it.
ANSWER_LOST: tuple[type[Exception], ...] = (
    requests.Timeout,
    requests.ConnectionError,
    requests.exceptions.ChunkedEncodingError,
)
# A gateway's answer, not the provider's: the request may have been carried out behind it.
GATEWAY_STATUSES = frozenset({502, 503, 504})

# Provider text quoted in an error message is cut short: it is for a person reading a log, not a payload.
PROVIDER_MESSAGE_LIMIT = 200
REDACTED = "[redacted]"


def seconds_to_wait(value: str | None, *, now: datetime | None = None) -> float | None:
    """Seconds until the moment a rate-limit header names: a number of seconds, an HTTP-date or an ISO 8601
    date-time (how Zoom names the end of a daily limit). None when the header is absent or unreadable."""
    if value is None or not value.strip():
        return None
    text = value.strip()
    try:
        seconds = float(text)
    except ValueError:
        pass
    else:
        return max(0.0, seconds) if math.isfinite(seconds) else None
    moment = _moment(text)
    if moment is None:
        return None
    return max(0.0, (moment - (now or datetime.now(UTC))).total_seconds())


def _moment(text: str) -> datetime | None:
    try:
        moment = parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError):
        try:
            moment = datetime.fromisoformat(text)
        except ValueError:
            return None
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


class ProviderHttp:
    """One `requests.Session` per client, a (connect, read) timeout on every request, and the error classes.

    Every error message built here passes through `redact`, which blanks the client's credentials and the
    access tokens it has recently held, so a provider that echoes a secret back cannot leak it into logs.
    """

    def __init__(self, *, provider: str, timeout_seconds: float, secrets: Iterable[str] = (), pool_size: int = 256):
        self.provider = provider
        self._timeout = (timeout_seconds, timeout_seconds)
        self._secrets = tuple(secret for secret in secrets if secret)
        # A token is a secret too; the last few are kept so one refused a moment ago is still blanked.
        self._tokens: deque[str] = deque(maxlen=4)
        self.session = requests.Session()
        # The worker runs many provider calls at once on threads (the Procfile: 200); the default pool of 10 would drop
        # connections under that load. No adapter-level retries: the caller decides what is worth retrying.
        adapter = HTTPAdapter(pool_connections=2, pool_maxsize=pool_size, max_retries=0)
        self.session.mount("https://", adapter)
        self.session.mount("http://", adapter)

    def remember_token(self, token: str) -> None:
        if token:
            self._tokens.append(token)

    def redact(self, text: str) -> str:
        for secret in (*self._secrets, *tuple(self._tokens)):
            text = text.replace(secret, REDACTED)
        return text

    def send(
        self, method: str, url: str, *, operation: str, timeout_seconds: float | None = None, **kwargs: Any
    ) -> requests.Response:
        """The provider's answer, whatever its status, except a gateway's 502/503/504 (OutcomeUnknownError). A
        request that got no answer raises NotDoneError when it never left (no connection) and
        OutcomeUnknownError when it may have; PermanentProviderError when it could not even be made.
        `timeout_seconds` replaces the client's timeout for this request (a read someone waits on)."""
        where = f"{method} {urlsplit(url).path}"
        timeout = self._timeout if timeout_seconds is None else (timeout_seconds, timeout_seconds)
        try:
            response = self.session.request(method, url, timeout=timeout, **kwargs)
        except ANSWER_LOST as error:
            # The exception's own text is left out: it can quote the URL, headers or connection details.
            if isinstance(error, NOT_SENT) or _never_connected(error):
                raise self.not_done(
                    f"{where} could not connect ({type(error).__name__})", operation=operation
                ) from error
            raise self.unknown(f"{where} got no answer ({type(error).__name__})", operation=operation) from error
        except requests.RequestException as error:
            raise self.permanent(f"{where} could not be sent ({type(error).__name__})", operation=operation) from error
        if response.status_code in GATEWAY_STATUSES and not self._provider_body(response):
            raise self.unknown(
                f"{describe(response)}: a gateway answered, the outcome is unknown",
                operation=operation,
                status=response.status_code,
            )
        return response

    def _provider_body(self, response: requests.Response) -> bool:
        """Whether the answer is the provider's own JSON error (which says what happened), not a gateway's page."""
        return self.json_object(response) is not None

    def unknown(self, message: str, *, operation: str, status: int | None = None) -> OutcomeUnknownError:
        return OutcomeUnknownError(
            self._message(message, operation=operation), provider=self.provider, operation=operation, status=status
        )

    def not_done(
        self,
        message: str,
        *,
        operation: str,
        status: int | None = None,
        code: Any = None,
        retry_after: float | None = None,
    ) -> NotDoneError:
        return NotDoneError(
            self._message(message, operation=operation),
            provider=self.provider,
            operation=operation,
            status=status,
            code=code,
            retry_after=retry_after,
        )

    def permanent(
        self, message: str, *, operation: str, status: int | None = None, code: Any = None
    ) -> PermanentProviderError:
        return PermanentProviderError(
            self._message(message, operation=operation),
            provider=self.provider,
            operation=operation,
            status=status,
            code=code,
        )

    def refused(
        self, response: requests.Response, *, operation: str, code: Any = None, detail: Any = None
    ) -> PermanentProviderError:
        """The error for an answer that says no for good."""
        return self.permanent(
            f"{describe(response)} refused{_code_text(code)}{_detail_text(detail)}",
            operation=operation,
            status=response.status_code,
            code=code,
        )

    def unavailable(
        self,
        response: requests.Response,
        *,
        operation: str,
        code: Any = None,
        detail: Any = None,
        retry_after: float | None = None,
    ) -> NotDoneError:
        """The error for an answer that says "not now": rate limited, or the provider's own error body saying it
        failed (not applied). A gateway's 502/503/504 never gets here: `send` calls that unknown."""
        return self.not_done(
            f"{describe(response)} unavailable{_code_text(code)}{_detail_text(detail)}",
            operation=operation,
            status=response.status_code,
            code=code,
            retry_after=retry_after,
        )

    def json_object(self, response: requests.Response) -> dict[str, Any] | None:
        """The body as a JSON object, or None when it is empty, not JSON, or JSON of another shape."""
        if not response.content:
            return None
        try:
            body = response.json()
        except ValueError:
            return None
        return body if isinstance(body, dict) else None

    def close(self) -> None:
        self.session.close()

    def _message(self, message: str, *, operation: str) -> str:
        return self.redact(f"{self.provider} {operation}: {message}")


def _never_connected(error: Exception) -> bool:
    """A refused or unresolvable connection: urllib3 says so with NewConnectionError or NameResolutionError."""
    from urllib3.exceptions import NameResolutionError, NewConnectionError

    reason = error.args[0] if error.args else None
    reason = getattr(reason, "reason", reason)
    return isinstance(reason, NewConnectionError | NameResolutionError)


def backoff_seconds(attempt: int, *, base: float, ceiling: float, retry_after: float | None = None) -> float:
    """The one backoff of every provider work: exponential (base * 2^(attempt-1), capped at `ceiling`) with
    jitter (half to all of it, so a crowd of retries spreads out), never shorter than the provider asked."""
    top = min(ceiling, base * 2 ** max(attempt - 1, 0))
    return max(random.uniform(top / 2, top), retry_after or 0.0)


def describe(response: requests.Response) -> str:
    """`HTTP 503 from POST /path`: where an answer came from, without query string or headers."""
    request = response.request
    path = urlsplit(request.url or "").path if request is not None else ""
    method = request.method if request is not None else ""
    return f"HTTP {response.status_code} from {method} {path}".rstrip()


def _code_text(code: Any) -> str:
    return "" if code is None else f" with code {code}"


def _detail_text(detail: Any) -> str:
    if not detail:
        return ""
    return f": {str(detail)[:PROVIDER_MESSAGE_LIMIT]}"


def header_seconds(headers: Mapping[str, str], *names: str) -> float | None:
    """Seconds to wait from the first of `names` that the answer carries and that can be read."""
    for name in names:
        seconds = seconds_to_wait(headers.get(name))
        if seconds is not None:
            return seconds
    return None


@dataclass(frozen=True)
class AccessToken:
    value: str
    refresh_at: float  # on the cache's clock


# What a provider says when handing out a token: the token and how many seconds it lives.
TokenFetch = Callable[[str], tuple[str, float]]


class AccessTokenCache:
    """One access token shared by every thread of a client.

    The token is reused until `refresh_margin_seconds` before it expires, and dropped when the provider refuses
    it (`discard`; only if it is still the cached one, so many threads refused at once cause one refresh). When
    it must be fetched, one thread fetches while the threads that need it wait for that fetch; no lock is held
    across the network call, so a stalled token endpoint holds up only the callers of this token, and a caller
    holding a valid token never waits. A waiter gives up after `wait_seconds` (the fetch's own timeouts bound
    it anyway) with NotDoneError: its request never left.
    """

    def __init__(
        self,
        *,
        fetch: TokenFetch,
        refresh_margin_seconds: float,
        clock: Callable[[], float] = time.monotonic,
        wait_seconds: float = 60.0,
    ):
        self._fetch = fetch
        self._refresh_margin = refresh_margin_seconds
        self._clock = clock
        self._wait_seconds = wait_seconds
        self._lock = threading.Lock()
        self._token: AccessToken | None = None
        self._fetching: threading.Event | None = None

    def token(self, *, operation: str) -> str:
        while True:
            with self._lock:
                if self._token is not None and self._clock() < self._token.refresh_at:
                    return self._token.value
                fetch_done = self._fetching
                leader = fetch_done is None
                if leader:
                    fetch_done = self._fetching = threading.Event()
            if not leader:
                if not fetch_done.wait(self._wait_seconds):
                    raise NotDoneError(
                        f"no access token after waiting {self._wait_seconds:g} s for its fetch",
                        provider="token",
                        operation=operation,
                    )
                continue  # fetched (or failed: then this thread may lead the next fetch)
            try:
                started = self._clock()
                value, lifetime = self._fetch(operation)
                # A token shorter-lived than the margin (a sandbox's) is still reused for half its life rather
                # than fetched again for every call.
                usable_for = max(lifetime - self._refresh_margin, lifetime / 2)
                with self._lock:
                    self._token = AccessToken(value=value, refresh_at=started + usable_for)
                return value
            finally:
                with self._lock:
                    self._fetching = None
                fetch_done.set()

    def discard(self, token: str) -> None:
        with self._lock:
            if self._token is not None and self._token.value == token:
                self._token = None


def send_with_token(
    http: ProviderHttp,
    tokens: AccessTokenCache,
    method: str,
    url: str,
    *,
    operation: str,
    token_refused: Callable[[requests.Response], bool],
    headers: Mapping[str, str] | None = None,
    **kwargs: Any,
) -> requests.Response:
    """Send with `Authorization: Bearer <token>`. When the provider says the token is invalid or expired, fetch
    a new one once and send once more; a second refusal is the caller's to classify."""
    token = tokens.token(operation=operation)
    response = http.send(method, url, operation=operation, headers={**(headers or {}), **_bearer(token)}, **kwargs)
    if not token_refused(response):
        return response
    logger.info("provider.token_refused", extra={"provider": http.provider, "operation": operation})
    tokens.discard(token)
    token = tokens.token(operation=operation)
    return http.send(method, url, operation=operation, headers={**(headers or {}), **_bearer(token)}, **kwargs)


def _bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


class ClientRegistry:
    """One shared client per provider per process, made from settings on first use. Sharing a client shares
    its access token and connection pool between every worker thread. Changing a setting the clients read
    (tests do) makes the next call build them again."""

    def __init__(self, *, kind: str, classes: Mapping[str, Any], settings_read: Iterable[str]):
        self._kind = kind
        self._classes = dict(classes)
        self._settings_read = frozenset(settings_read)
        self._clients: dict[str, Any] = {}
        self._lock = threading.Lock()
        from django.core.signals import setting_changed

        setting_changed.connect(self._forget_on_setting_change, weak=False)

    def client(self, name: str) -> Any:
        """The client of provider `name`. ValueError for a provider we do not speak to."""
        with self._lock:
            client = self._clients.get(name)
            if client is None:
                client_class = self._classes.get(name)
                if client_class is None:
                    known = ", ".join(sorted(self._classes))
                    raise ValueError(f"Unknown {self._kind} {name!r}; known: {known}")
                client = self._clients[name] = client_class.from_settings()
            return client

    def reset(self) -> None:
        """Forget every client (and so its token); the next call builds one from the current settings."""
        with self._lock:
            forgotten = list(self._clients.values())
            self._clients.clear()
        for client in forgotten:
            client.close()

    def _forget_on_setting_change(self, *, setting: str, **kwargs: Any) -> None:
        if setting in self._settings_read:
            self.reset()
