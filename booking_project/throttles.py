"""Per-counselor rate limits (API.md "Limits"), counted in Redis.

DRF's stock throttles keep a request history that they read, then write: two requests at the same instant
both see room for one more, so a counselor hammering the endpoint from several connections gets past the
limit. Here the count is one atomic Redis INCR per request in a fixed window, so no request beyond the
limit ever reaches the view.
"""

import time

from django.conf import settings
from django.core.cache import cache
from rest_framework.throttling import BaseThrottle

_PERIODS = {"s": 1, "sec": 1, "m": 60, "min": 60, "h": 3600, "hour": 3600, "d": 86400, "day": 86400}


def rate_parse(rate: str | None) -> tuple[int, int] | None:
    """ "30/min" → (30, 60). None or "none" turns the limit off."""
    if rate is None or rate.strip().lower() == "none":
        return None
    count, _, period = rate.partition("/")
    return int(count), _PERIODS[period.strip().lower()]


class CounselorRateThrottle(BaseThrottle):
    scope: str
    setting_name: str

    def __init__(self) -> None:
        self.wait_seconds: float | None = None

    def allow_request(self, request, view) -> bool:
        limit = rate_parse(getattr(settings, self.setting_name))
        user = request.user
        if limit is None or user is None or not user.is_authenticated:
            return True  # anonymous requests are refused before this, by authentication
        count, period = limit
        now = time.time()
        window = int(now // period)
        key = f"throttle:{self.scope}:{user.pk}:{window}"
        # add() sets the key (with its expiry) only when absent; incr() is atomic in Redis.
        cache.add(key, 0, timeout=period + 1)
        try:
            used = cache.incr(key)
        except ValueError:  # the window's key expired between add() and incr()
            cache.add(key, 1, timeout=period + 1)
            used = 1
        if used <= count:
            return True
        self.wait_seconds = (window + 1) * period - now
        return False

    def wait(self) -> float | None:
        return self.wait_seconds


class BookThrottle(CounselorRateThrottle):
    scope = "book"
    setting_name = "THROTTLE_BOOK_RATE"


class ActionThrottle(CounselorRateThrottle):
    scope = "action"
    setting_name = "THROTTLE_ACTION_RATE"
