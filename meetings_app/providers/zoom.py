"""Zoom scheduled meetings, made with a Server-to-Server OAuth access token.

Zoom answers errors with an HTTP status and a body `{"code": <int>, "message": "..."}`; success is 201 with the
meeting for a create and 204 without a body for an update or delete.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Collection, Iterator
from datetime import UTC
from typing import Any
from urllib.parse import quote

import requests
from django.conf import settings

from booking_project.providers.http import AccessTokenCache, ProviderHttp, describe, header_seconds, send_with_token
from meetings_app.providers.base import MeetingProviderClient, MeetingRequest, ProvidedMeeting

SCHEDULED_MEETING = 2
TOKEN_INVALID = 124
MEETING_NOT_FOUND = 3001
LIST_PAGE_SIZE = 300
# A host has far fewer scheduled meetings than this many pages; the bound only stops a provider that keeps
# handing out page tokens from holding a worker forever.
LIST_PAGE_LIMIT = 50

# Zoom tokens live an hour; a minute ahead is enough for the slowest call to land before expiry.
TOKEN_REFRESH_MARGIN_SECONDS = 60


class ZoomMeetingClient(MeetingProviderClient):
    name = "zoom"
    can_find_by_reference = True

    def __init__(
        self,
        *,
        api_base_url: str,
        oauth_url: str,
        account_id: str,
        client_id: str,
        client_secret: str,
        timeout_seconds: float,
        clock: Callable[[], float] = time.monotonic,
    ):
        self._api_base_url = api_base_url.rstrip("/")
        self._oauth_url = oauth_url
        self._account_id = account_id
        self._client_id = client_id
        self._client_secret = client_secret
        self._http = ProviderHttp(provider=self.name, timeout_seconds=timeout_seconds, secrets=(client_secret,))
        self._tokens = AccessTokenCache(
            fetch=self._fetch_access_token, refresh_margin_seconds=TOKEN_REFRESH_MARGIN_SECONDS, clock=clock
        )

    @classmethod
    def from_settings(cls, *, clock: Callable[[], float] = time.monotonic) -> ZoomMeetingClient:
        return cls(
            api_base_url=settings.ZOOM_API_BASE_URL,
            oauth_url=settings.ZOOM_OAUTH_URL,
            account_id=settings.ZOOM_ACCOUNT_ID,
            client_id=settings.ZOOM_CLIENT_ID,
            client_secret=settings.ZOOM_CLIENT_SECRET,
            timeout_seconds=settings.PROVIDER_TIMEOUT_SECONDS,
            clock=clock,
        )

    def create(self, request: MeetingRequest) -> ProvidedMeeting:
        response = self._send(
            "POST",
            f"{_host_path(request.host_id)}/meetings",
            operation="create",
            json={
                **_schedule(request),
                "type": SCHEDULED_MEETING,
                "settings": {"join_before_host": True, "waiting_room": False},
            },
        )
        meeting = self._answer(response, operation="create")
        provided = _provided(meeting, host_id=request.host_id)
        if provided is None:
            raise self._http.permanent(f"{describe(response)} carries no meeting id and join_url", operation="create")
        return provided

    def update(self, provider_meeting_id: str, request: MeetingRequest) -> None:
        response = self._send("PATCH", _meeting_path(provider_meeting_id), operation="update", json=_schedule(request))
        self._answer(response, operation="update")

    def cancel(self, provider_meeting_id: str) -> None:
        response = self._send("DELETE", _meeting_path(provider_meeting_id), operation="cancel")
        self._answer(response, operation="cancel", done=((404, MEETING_NOT_FOUND),))

    def find_by_reference(self, request: MeetingRequest) -> ProvidedMeeting | None:
        return next(self._meetings_of_reference(request), None)

    def find_all_by_reference(self, request: MeetingRequest) -> list[ProvidedMeeting]:
        return list(self._meetings_of_reference(request))

    def _meetings_of_reference(self, request: MeetingRequest) -> Iterator[ProvidedMeeting]:
        """The host's meetings whose agenda carries the session's id, page by page as they are needed."""
        # `scheduled`, not `upcoming`: a session whose start has passed (a late re-drive) must still be found.
        params: dict[str, Any] = {"type": "scheduled", "page_size": LIST_PAGE_SIZE}
        seen_page_tokens: set[str] = set()
        for _ in range(LIST_PAGE_LIMIT):
            response = self._send("GET", f"{_host_path(request.host_id)}/meetings", operation="find", params=params)
            page = self._answer(response, operation="find")
            meetings = page.get("meetings") if page is not None else None
            if not isinstance(meetings, list):
                raise self._http.permanent(f"{describe(response)} carries no list of meetings", operation="find")
            for meeting in meetings:
                if isinstance(meeting, dict) and request.reference in str(meeting.get("agenda") or ""):
                    found = _provided(meeting, host_id=request.host_id)
                    if found is None:
                        # Answering "none" here would make the caller create a second meeting for the session.
                        raise self._http.permanent(
                            f"{describe(response)} lists the session's meeting without id and join_url",
                            operation="find",
                        )
                    yield found
            next_page_token = page.get("next_page_token")
            if not next_page_token or next_page_token in seen_page_tokens:
                return
            seen_page_tokens.add(next_page_token)
            params = {**params, "next_page_token": next_page_token}

    def prepare(self, *, operation: str) -> None:
        self._tokens.token(operation=operation)

    def close(self) -> None:
        self._http.close()

    def _send(self, method: str, path: str, *, operation: str, **kwargs: Any) -> requests.Response:
        return send_with_token(
            self._http,
            self._tokens,
            method,
            f"{self._api_base_url}{path}",
            operation=operation,
            token_refused=self._token_refused,
            **kwargs,
        )

    def _fetch_access_token(self, operation: str) -> tuple[str, float]:
        response = self._http.send(
            "POST",
            self._oauth_url,
            operation=operation,
            data={"grant_type": "account_credentials", "account_id": self._account_id},
            auth=(self._client_id, self._client_secret),
        )
        body = self._answer(response, operation=operation)
        token = body.get("access_token") if body is not None else None
        lifetime = body.get("expires_in") if body is not None else None
        if not isinstance(token, str) or not token or not isinstance(lifetime, int | float) or lifetime <= 0:
            raise self._http.permanent(
                f"{describe(response)} carries no access_token and expires_in", operation=operation
            )
        self._http.remember_token(token)
        return token, float(lifetime)

    def _token_refused(self, response: requests.Response) -> bool:
        if response.status_code != 401:
            return False
        body = self._http.json_object(response)
        return body is not None and body.get("code") == TOKEN_INVALID

    def _answer(
        self, response: requests.Response, *, operation: str, done: Collection[tuple[int, int]] = ()
    ) -> dict[str, Any] | None:
        """The JSON body of a successful answer (None when it has none); every other answer raised as transient
        or permanent. `done` lists the (status, code) answers that count as success for this operation."""
        status = response.status_code
        if status < 400:
            return self._http.json_object(response)
        body = self._http.json_object(response) or {}
        # The OAuth endpoint answers in the OAuth shape ({"error", "reason"}), the API in Zoom's ({"code", "message"}).
        code = body.get("code", body.get("error"))
        detail = body.get("message", body.get("reason"))
        if (status, code) in done:
            return None
        if status == 429:
            # A daily limit names a date hours away; the caller decides whether that is worth waiting for.
            retry_after = header_seconds(response.headers, "Retry-After")
            raise self._http.unavailable(
                response, operation=operation, code=code, detail=detail, retry_after=retry_after
            )
        if status >= 500:
            raise self._http.unavailable(response, operation=operation, code=code, detail=detail)
        raise self._http.refused(response, operation=operation, code=code, detail=detail)


def _schedule(request: MeetingRequest) -> dict[str, Any]:
    """The fields a create and an update share. The agenda carries the booking session's id, which is how a
    meeting made before a crash is found again (`find_by_reference`)."""
    if request.start_time.tzinfo is None:
        raise ValueError("MeetingRequest.start_time must be timezone-aware")
    return {
        "topic": request.topic,
        "start_time": request.start_time.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "duration": request.duration_minutes,
        "timezone": "UTC",
        "agenda": f"Booking session {request.reference}",
    }


def _provided(meeting: Any, *, host_id: str) -> ProvidedMeeting | None:
    if not isinstance(meeting, dict) or meeting.get("id") in (None, "") or not meeting.get("join_url"):
        return None
    meeting_id = str(meeting["id"])
    return ProvidedMeeting(
        provider_meeting_id=meeting_id, meeting_no=meeting_id, join_url=str(meeting["join_url"]), host_id=host_id
    )


def _host_path(host_id: str) -> str:
    # An email host id keeps its "@"; anything that could break out of the path segment is escaped.
    return f"/users/{quote(host_id, safe='@')}"


def _meeting_path(provider_meeting_id: str) -> str:
    return f"/meetings/{quote(provider_meeting_id, safe='')}"
