"""Google Calendar API v3: the app inserts the event in its calendar (`GOOGLE_CALENDAR_ID`) with the participant
as attendee. The event id is chosen by us (base32hex), so inserting it again answers 409: the event is there.

Authorisation: an OAuth2 access token as `Authorization: Bearer`. It comes from a service account key
(`GOOGLE_SERVICE_ACCOUNT_FILE`, through google-auth, refreshed before it expires and when Google answers 401),
or, where something else mints tokens (a sidecar, the sandbox), from `GOOGLE_CALENDAR_ACCESS_TOKEN` as is.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote

import requests
from django.conf import settings

from booking_project.providers.http import AccessTokenCache, ProviderHttp, header_seconds, send_with_token
from calendar_app.providers.base import (
    CalendarEventRequest,
    CalendarProviderClient,
    ProvidedCalendarEvent,
    busy_within,
)

# Events: the ones we write. Free/busy: the mentor's own calendar, read to offer only their free times.
SCOPES = ("https://www.googleapis.com/auth/calendar.events", "https://www.googleapis.com/auth/calendar.freebusy")
BASE32HEX = frozenset("0123456789abcdefghijklmnopqrstuv")
RATE_LIMIT_REASONS = frozenset({"rateLimitExceeded", "userRateLimitExceeded"})
# Google's tokens live an hour; a static token is re-read from settings after this long.
STATIC_TOKEN_LIFETIME_SECONDS = 3600.0
TOKEN_REFRESH_MARGIN_SECONDS = 5 * 60
# Google keeps at most 5 reminder overrides per event, each 0 to 40320 minutes (four weeks) before the start.
REMINDER_OVERRIDES_MAX = 5
REMINDER_MINUTES_MAX = 40320
# We email our own invitation (with its .ics); Google's would be a second one.
SEND_UPDATES = "none"


class GoogleCalendarClient(CalendarProviderClient):
    name = "google"

    def __init__(
        self,
        *,
        base_url: str,
        calendar_id: str,
        timeout_seconds: float,
        access_token: str = "",
        service_account_file: str = "",
        subject: str = "",
        clock: Callable[[], float] = time.monotonic,
    ):
        self._base_url = base_url.rstrip("/")
        self._calendar_id = calendar_id
        self._static_token = access_token
        self._service_account_file = service_account_file
        self._subject = subject
        self._credentials = None
        self._http = ProviderHttp(provider=self.name, timeout_seconds=timeout_seconds, secrets=(access_token,))
        self._tokens = AccessTokenCache(
            fetch=self._fetch_token, refresh_margin_seconds=TOKEN_REFRESH_MARGIN_SECONDS, clock=clock
        )

    @classmethod
    def from_settings(cls, *, clock: Callable[[], float] = time.monotonic) -> GoogleCalendarClient:
        return cls(
            base_url=settings.GOOGLE_CALENDAR_BASE_URL,
            calendar_id=settings.GOOGLE_CALENDAR_ID,
            timeout_seconds=settings.PROVIDER_TIMEOUT_SECONDS,
            access_token=settings.GOOGLE_CALENDAR_ACCESS_TOKEN,
            service_account_file=settings.GOOGLE_SERVICE_ACCOUNT_FILE,
            subject=settings.GOOGLE_CALENDAR_SUBJECT,
            clock=clock,
        )

    def create(self, event: CalendarEventRequest, *, idempotency_key: str) -> ProvidedCalendarEvent:
        event_id = idempotency_key.replace("-", "").lower()
        if not 5 <= len(event_id) <= 1024 or not set(event_id) <= BASE32HEX:
            raise ValueError("a Google event id is 5 to 1024 base32hex characters")
        response = self._send(
            "POST",
            self._events_url(self._calendar_id),
            operation="calendar.create",
            params={"sendUpdates": SEND_UPDATES},
            json={**_event_body(event), "id": event_id, "attendees": [{"email": event.attendee_email}]},
        )
        # 409: an event with our id is there already, made by an earlier attempt.
        if response.status_code != 409:
            self._check(response, operation="calendar.create")
        return ProvidedCalendarEvent(calendar_id=self._calendar_id, event_id=event_id)

    def update(self, calendar_id: str, event_id: str, event: CalendarEventRequest) -> None:
        response = self._send(
            "PATCH",
            f"{self._events_url(calendar_id)}/{quote(event_id, safe='')}",
            operation="calendar.update",
            params={"sendUpdates": SEND_UPDATES},
            json=_event_body(event),
        )
        self._check(response, operation="calendar.update")

    def delete(self, calendar_id: str, event_id: str) -> None:
        response = self._send(
            "DELETE",
            f"{self._events_url(calendar_id)}/{quote(event_id, safe='')}",
            operation="calendar.delete",
            params={"sendUpdates": SEND_UPDATES},
        )
        # 410 Gone: deleted before; 404: never there or purged. Either way it is not in anyone's calendar.
        if response.status_code not in (404, 410):
            self._check(response, operation="calendar.delete")

    def busy(
        self, *, person: str, start: datetime, end: datetime, timeout_seconds: float
    ) -> list[tuple[datetime, datetime]]:
        operation = "calendar.busy"
        response = self._send(
            "POST",
            f"{self._base_url}/freeBusy",
            operation=operation,
            json={"timeMin": _utc(start), "timeMax": _utc(end), "timeZone": "UTC", "items": [{"id": person}]},
            timeout_seconds=timeout_seconds,
        )
        self._check(response, operation=operation)
        calendars = (self._http.json_object(response) or {}).get("calendars")
        answer = calendars.get(person) if isinstance(calendars, dict) else None
        if not isinstance(answer, dict):
            raise self._http.permanent("the free/busy answer says nothing of the calendar asked", operation=operation)
        # A calendar we may not read (not shared, not found) is an entry in `errors`, with HTTP 200.
        errors = answer.get("errors")
        if errors:
            reason = next((e.get("reason") for e in errors if isinstance(e, dict) and e.get("reason")), None)
            raise self._http.permanent(
                f"the calendar cannot be read{f' ({reason})' if reason else ''}",
                operation=operation,
                status=response.status_code,
                code=reason,
            )
        busy = answer.get("busy", [])
        try:
            if not isinstance(busy, list) or not all(isinstance(entry, dict) for entry in busy):
                raise ValueError("busy is not a list of objects")
            return busy_within([(entry.get("start"), entry.get("end")) for entry in busy], start=start, end=end)
        except ValueError as error:
            raise self._http.permanent(f"the free/busy answer cannot be read: {error}", operation=operation) from None

    def prepare(self, *, operation: str) -> None:
        self._tokens.token(operation=operation)

    def close(self) -> None:
        self._http.close()

    def _events_url(self, calendar_id: str) -> str:
        return f"{self._base_url}/calendars/{quote(calendar_id, safe='')}/events"

    def _send(self, method: str, url: str, *, operation: str, **kwargs: Any) -> requests.Response:
        return send_with_token(
            self._http,
            self._tokens,
            method,
            url,
            operation=operation,
            token_refused=lambda response: response.status_code == 401,
            **kwargs,
        )

    def _check(self, response: requests.Response, *, operation: str) -> None:
        """Nothing for a 2xx; otherwise the error, transient or permanent."""
        if response.status_code < 300:
            return
        error = (self._http.json_object(response) or {}).get("error")
        error = error if isinstance(error, dict) else {}
        errors = error.get("errors") if isinstance(error.get("errors"), list) else []
        reason = next((e.get("reason") for e in errors if isinstance(e, dict) and e.get("reason")), None)
        detail = error.get("message")
        retry_after = header_seconds(response.headers, "Retry-After")
        if response.status_code == 429 or response.status_code >= 500 or reason in RATE_LIMIT_REASONS:
            raise self._http.unavailable(
                response, operation=operation, code=reason, detail=detail, retry_after=retry_after
            )
        raise self._http.refused(response, operation=operation, code=reason, detail=detail)

    def _fetch_token(self, operation: str) -> tuple[str, float]:
        if self._static_token:
            return self._static_token, STATIC_TOKEN_LIFETIME_SECONDS
        if not self._service_account_file:
            raise self._http.permanent(
                "no credentials: set GOOGLE_SERVICE_ACCOUNT_FILE or GOOGLE_CALENDAR_ACCESS_TOKEN", operation=operation
            )
        from google.auth import exceptions as google_errors
        from google.auth.transport.requests import Request
        from google.oauth2 import service_account

        try:
            if self._credentials is None:
                self._credentials = service_account.Credentials.from_service_account_file(
                    self._service_account_file, scopes=list(SCOPES), subject=self._subject or None
                )
            self._credentials.refresh(Request(session=self._http.session))
        except google_errors.TransportError as error:
            raise self._http.not_done(
                f"token request got no answer ({type(error).__name__})", operation=operation
            ) from None
        except google_errors.RefreshError as error:
            make = self._http.not_done if getattr(error, "retryable", False) else self._http.permanent
            raise make(f"token refused ({type(error).__name__})", operation=operation) from None
        except (OSError, ValueError) as error:
            raise self._http.permanent(
                f"the service account key cannot be used ({type(error).__name__})", operation=operation
            ) from None
        token = self._credentials.token
        self._http.remember_token(token)
        expiry = self._credentials.expiry  # naive UTC, as google-auth keeps it
        lifetime = (expiry.replace(tzinfo=UTC) - datetime.now(UTC)).total_seconds() if expiry else 3600.0
        return token, max(lifetime, 1.0)


def _event_body(event: CalendarEventRequest) -> dict[str, Any]:
    body: dict[str, Any] = {
        "summary": event.summary,
        "description": event.description,
        "location": event.meeting_url,
        "source": {"title": "Meeting link", "url": event.meeting_url},
        "start": {"dateTime": _utc(event.start_time), "timeZone": event.time_zone},
        "end": {"dateTime": _utc(event.end_time), "timeZone": event.time_zone},
    }
    # Sent on every patch too, not only the insert: an event made before reminders were configured gets them when
    # it moves. Offsets Google would refuse are left out rather than failing the whole event (the email reminder
    # still goes); past five, the ones nearest the start are kept.
    reminders = sorted({minutes for minutes in event.reminder_minutes if 0 <= minutes <= REMINDER_MINUTES_MAX})
    if reminders:
        body["reminders"] = {
            "useDefault": False,
            "overrides": [{"method": "popup", "minutes": minutes} for minutes in reminders[:REMINDER_OVERRIDES_MAX]],
        }
    return body


def _utc(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")
