"""Feishu's (Lark's) open platform as one app sees it, shared by the meeting client (`meetings_app`) and the
calendar client (`calendar_app`): the tenant access token and the reading of every answer.

Feishu answers `{"code": 0, "msg": ..., "data": {...}}`; a `code` other than 0 is an error even with HTTP 200.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Collection
from typing import Any
from urllib.parse import quote

import requests
from django.conf import settings

from booking_project.providers.http import AccessTokenCache, ProviderHttp, describe, header_seconds, send_with_token

TOKEN_PATH = "/open-apis/auth/v3/tenant_access_token/internal"
CALENDARS_PATH = "/open-apis/calendar/v4/calendars"
PRIMARY_CALENDAR_PATH = f"{CALENDARS_PATH}/primary"

RATE_LIMITED = 99991400
TOKEN_INVALID = 99991661
TOKEN_EXPIRED = 99991663

# Feishu hands out a new tenant token once less than 30 minutes remain; asking 5 minutes ahead leaves room
# for a slow call without ever sending a token that expires in flight.
TOKEN_REFRESH_MARGIN_SECONDS = 5 * 60


class FeishuOpenApi:
    """Feishu's open platform as one app sees it: the tenant access token (cached, refreshed before expiry and
    once more when Feishu says it expired) and the reading of every answer into data or a classified error.
    The meeting client (`vc/v1/reserves`) and the calendar client (`calendar/v4`) both speak through it."""

    def __init__(
        self,
        *,
        provider: str,
        base_url: str,
        app_id: str,
        app_secret: str,
        timeout_seconds: float,
        clock: Callable[[], float] = time.monotonic,
    ):
        self.base_url = base_url.rstrip("/")
        self._app_id = app_id
        self._app_secret = app_secret
        self.http = ProviderHttp(provider=provider, timeout_seconds=timeout_seconds, secrets=(app_secret,))
        self._tokens = AccessTokenCache(
            fetch=self._fetch_tenant_token, refresh_margin_seconds=TOKEN_REFRESH_MARGIN_SECONDS, clock=clock
        )
        self._calendar_lock = threading.Lock()
        self._calendar_id = ""

    @classmethod
    def from_settings(cls, *, provider: str, clock: Callable[[], float] = time.monotonic) -> FeishuOpenApi:
        return cls(
            provider=provider,
            base_url=settings.FEISHU_BASE_URL,
            app_id=settings.FEISHU_APP_ID,
            app_secret=settings.FEISHU_APP_SECRET,
            timeout_seconds=settings.PROVIDER_TIMEOUT_SECONDS,
            clock=clock,
        )

    def call(self, method: str, path: str, *, operation: str, done_codes: Collection[int] = (), **kwargs: Any) -> Any:
        """The `data` of Feishu's answer; any other answer raised as transient or permanent. A `code` in
        `done_codes` (e.g. "not found" on delete) counts as success."""
        response = send_with_token(
            self.http,
            self._tokens,
            method,
            f"{self.base_url}{path}",
            operation=operation,
            token_refused=self._token_refused,
            **kwargs,
        )
        return self._answer(response, operation=operation, done_codes=done_codes).get("data")

    def close(self) -> None:
        self.http.close()

    def _fetch_tenant_token(self, operation: str) -> tuple[str, float]:
        response = self.http.send(
            "POST",
            f"{self.base_url}{TOKEN_PATH}",
            operation=operation,
            json={"app_id": self._app_id, "app_secret": self._app_secret},
        )
        body = self._answer(response, operation=operation)
        token, lifetime = body.get("tenant_access_token"), body.get("expire")
        if not isinstance(token, str) or not token or not isinstance(lifetime, int | float) or lifetime <= 0:
            raise self.http.permanent("the tenant token answer carries no token and expire", operation=operation)
        self.http.remember_token(token)
        return token, float(lifetime)

    def _token_refused(self, response: requests.Response) -> bool:
        body = self.http.json_object(response)
        return body is not None and body.get("code") in (TOKEN_INVALID, TOKEN_EXPIRED)

    def _answer(self, response: requests.Response, *, operation: str, done_codes: Collection[int] = ()) -> dict:
        """The body of a successful answer; every other answer raised as transient or permanent."""
        body = self.http.json_object(response)
        code = body.get("code") if body is not None else None
        detail = body.get("msg") if body is not None else None
        if code is not None and code in done_codes:
            return body
        if response.status_code == 429 or code == RATE_LIMITED:
            retry_after = header_seconds(response.headers, "X-Ogw-Ratelimit-Reset", "Retry-After")
            raise self.http.unavailable(
                response, operation=operation, code=code, detail=detail, retry_after=retry_after
            )
        if response.status_code >= 500:
            raise self.http.unavailable(response, operation=operation, code=code, detail=detail)
        if response.status_code >= 400 or (body is not None and code != 0):
            raise self.http.refused(response, operation=operation, code=code, detail=detail)
        if body is None:
            raise self.http.permanent(f"{describe(response)} is not a JSON object", operation=operation)
        return body

    def prepare(self, *, operation: str) -> None:
        """Have a token ready (fetched now if need be), so the call that follows waits only on its own answer."""
        self._tokens.token(operation=operation)

    def app_calendar_id(self, *, configured: str = "", operation: str) -> str:
        """The configured calendar, else the app's own primary calendar (asked once per process)."""
        if configured:
            return configured
        with self._calendar_lock:
            if self._calendar_id:
                return self._calendar_id
        data = self.call("POST", PRIMARY_CALENDAR_PATH, operation=operation)
        try:
            calendar_id = str(data["calendars"][0]["calendar"]["calendar_id"])
        except (KeyError, IndexError, TypeError):
            raise self.http.permanent(
                "the primary calendar answer carries no calendar_id", operation=operation
            ) from None
        with self._calendar_lock:
            self._calendar_id = calendar_id
        return calendar_id


def events_path(calendar_id: str) -> str:
    """Where a calendar's events are (Calendar v4), the calendar id escaped as one path segment."""
    return f"{CALENDARS_PATH}/{quote(calendar_id, safe='')}/events"


def event_path(calendar_id: str, event_id: str) -> str:
    return f"{events_path(calendar_id)}/{quote(event_id, safe='')}"
