"""Per-counselor rate limits (API.md "Limits"), counted in Redis.

DRF's stock throttles keep a request history that they read, then write: two requests at the same instant
both see room for one more, so a counselor hammering the endpoint from several connections gets past the
limit. Here the count is one atomic Redis INCR per request in a fixed window, so no request beyond the
limit ever reaches the view.

Redis is not needed to answer (DESIGN.md): while it is unreachable each process counts on its own, so a
counselor gets the rate from each web process instead of from all of them together — a looser limit for the
length of the outage, never an error and never a wait.
"""

import threading
import time

from django.conf import settings
from django.core.cache import cache
from redis.exceptions import RedisError
from rest_framework.throttling import BaseThrottle

_PERIODS = {"s": 1, "sec": 1, "m": 60, "min": 60, "h": 3600, "hour": 3600, "d": 86400, "day": 86400}


def rate_parse(rate: str | None) -> tuple[int, int] | None:
    """ "30/min" → (30, 60). None or "none" turns the limit off."""
    if rate is None or rate.strip().lower() == "none":
        return None
    count, _, period = rate.partition("/")
    return int(count), _PERIODS[period.strip().lower()]


class WindowRateThrottle(BaseThrottle):
    """A limit of `setting_name` ("30/min") on the requests of one `subject` (a counselor, a source address), in
    a fixed window counted by `window_count`. Over it, DRF answers 429 with Retry-After = the window's rest."""

    scope: str
    setting_name: str

    def __init__(self) -> None:
        self.wait_seconds: float | None = None

    def subject(self, request) -> str | None:
        """Whose requests are counted together; None lets the request through uncounted."""
        raise NotImplementedError

    def allow_request(self, request, view) -> bool:
        limit = rate_parse(getattr(settings, self.setting_name))
        subject = self.subject(request) if limit is not None else None
        if subject is None:
            return True
        count, period = limit
        now = time.time()
        window = int(now // period)
        used = window_count(f"throttle:{self.scope}:{subject}:{window}", period=period)
        if used <= count:
            return True
        self.wait_seconds = (window + 1) * period - now
        return False

    def wait(self) -> float | None:
        return self.wait_seconds


class CounselorRateThrottle(WindowRateThrottle):
    def subject(self, request) -> str | None:
        user = request.user
        # Anonymous requests are refused before this, by authentication.
        return str(user.pk) if user is not None and user.is_authenticated else None


def window_count(key: str, *, period: int) -> int:
    """Requests counted so far under `key` (one fixed window), this one included: in Redis, shared by every
    process, or in this process alone while Redis is unreachable."""
    circuit = getattr(cache, "circuit", None)
    if circuit is not None and circuit.closed():
        name = cache.make_key(key)
        try:
            # One round trip, atomic: the window's key is made (with its expiry) if absent, then counted.
            with cache.redis_client().pipeline(transaction=True) as pipe:
                pipe.set(name, 0, ex=period + 1, nx=True)
                pipe.incr(name)
                return pipe.execute()[1]
        except RedisError as error:
            circuit.trip(error)
    return process_counts.incr(key, period=period)


class ProcessWindowCounts:
    """Fixed-window counters of this process alone, for while Redis is unreachable."""

    def __init__(self, *, max_keys: int = 10_000):
        self._lock = threading.Lock()
        self._counts: dict[str, tuple[int, float]] = {}  # key -> (count, when it may be forgotten)
        self._max_keys = max_keys

    def incr(self, key: str, *, period: int) -> int:
        now = time.monotonic()
        with self._lock:
            if len(self._counts) >= self._max_keys:
                # Keys name their window, so an old window's key is never counted again: forget it.
                self._counts = {k: v for k, v in self._counts.items() if v[1] > now}
            count, forget_at = self._counts.get(key, (0, now + period + 1))
            self._counts[key] = (count + 1, forget_at)
            return count + 1


process_counts = ProcessWindowCounts()


class BookThrottle(CounselorRateThrottle):
    scope = "book"
    setting_name = "THROTTLE_BOOK_RATE"


class ActionThrottle(CounselorRateThrottle):
    scope = "action"
    setting_name = "THROTTLE_ACTION_RATE"


class AvailabilityThrottle(CounselorRateThrottle):
    scope = "availability"
    setting_name = "THROTTLE_AVAILABILITY_RATE"


class SourceAddressThrottle(WindowRateThrottle):
    """A limit per source address, for requests nobody logs in for (the providers' webhooks)."""

    def subject(self, request) -> str | None:
        from accounts_app.login_throttle import client_address

        return client_address(request) or "-"


class ProviderEventsThrottle(SourceAddressThrottle):
    scope = "provider-events"
    setting_name = "THROTTLE_PROVIDER_EVENTS_RATE"
