"""Feishu (Lark) video meetings: a reservation (`vc/v1/reserves`) per meeting, made with a tenant access token.

Feishu answers `{"code": 0, "msg": ..., "data": {...}}`; a `code` other than 0 is an error even with HTTP 200.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Collection
from typing import Any
from urllib.parse import quote

import requests
from django.conf import settings

from meetings_app.providers.base import MeetingProviderClient, MeetingRequest, ProvidedMeeting
from meetings_app.providers.http import AccessTokenCache, ProviderHttp, describe, header_seconds, send_with_token

TOKEN_PATH = "/open-apis/auth/v3/tenant_access_token/internal"
RESERVES_PATH = "/open-apis/vc/v1/reserves"

RATE_LIMITED = 99991400
TOKEN_INVALID = 99991661
TOKEN_EXPIRED = 99991663
RESERVE_NOT_FOUND = 121004

# Feishu hands out a new tenant token once less than 30 minutes remain; asking 5 minutes ahead leaves room
# for a slow call without ever sending a token that expires in flight.
TOKEN_REFRESH_MARGIN_SECONDS = 5 * 60


# A reservation's end_time may be at most 30 days ahead (VC reserve apply).
RESERVE_MAX_DAYS_AHEAD = 30


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


class FeishuMeetingClient(MeetingProviderClient):
    name = "feishu"
    can_find_by_reference = False  # Feishu has no list of reservations to search.

    def __init__(
        self,
        *,
        base_url: str,
        app_id: str,
        app_secret: str,
        timeout_seconds: float,
        clock: Callable[[], float] = time.monotonic,
    ):
        self._api = FeishuOpenApi(
            provider=self.name,
            base_url=base_url,
            app_id=app_id,
            app_secret=app_secret,
            timeout_seconds=timeout_seconds,
            clock=clock,
        )
        self._http = self._api.http

    @classmethod
    def from_settings(cls, *, clock: Callable[[], float] = time.monotonic) -> FeishuMeetingClient:
        return cls(
            base_url=settings.FEISHU_BASE_URL,
            app_id=settings.FEISHU_APP_ID,
            app_secret=settings.FEISHU_APP_SECRET,
            timeout_seconds=settings.PROVIDER_TIMEOUT_SECONDS,
            clock=clock,
        )

    def create(self, request: MeetingRequest) -> ProvidedMeeting:
        data = self._api.call(
            "POST",
            f"{RESERVES_PATH}/apply",
            operation="create",
            params={"user_id_type": "open_id"},
            json={
                "end_time": _unix_seconds(request),
                "owner_id": request.host_id,
                "meeting_settings": {"topic": request.topic},
            },
        )
        reserve = data.get("reserve") if isinstance(data, dict) else None
        try:
            return ProvidedMeeting(
                provider_meeting_id=str(reserve["id"]),
                meeting_no=str(reserve["meeting_no"]),
                join_url=str(reserve["url"]),
                host_id=request.host_id,
            )
        except (KeyError, TypeError):
            raise self._http.permanent(
                "the reservation answer carries no reserve id, meeting_no and url", operation="create"
            ) from None

    def update(self, provider_meeting_id: str, request: MeetingRequest) -> None:
        self._api.call(
            "PUT",
            _reserve_path(provider_meeting_id),
            operation="update",
            json={"end_time": _unix_seconds(request), "meeting_settings": {"topic": request.topic}},
        )

    def cancel(self, provider_meeting_id: str) -> None:
        self._api.call("DELETE", _reserve_path(provider_meeting_id), operation="cancel", done_codes={RESERVE_NOT_FOUND})

    def close(self) -> None:
        self._api.close()


def _reserve_path(provider_meeting_id: str) -> str:
    return f"{RESERVES_PATH}/{quote(provider_meeting_id, safe='')}"


def _unix_seconds(request: MeetingRequest) -> str:
    # Feishu's docs type end_time as a string of Unix seconds.
    return str(int(request.end_time.timestamp()))
