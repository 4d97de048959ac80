"""Calendar provider clients, one shared client per provider per process (so they share a token and a pool)."""

from __future__ import annotations

from booking_project.providers.http import ClientRegistry
from calendar_app.providers.base import CalendarEventRequest, CalendarProviderClient, ProvidedCalendarEvent
from calendar_app.providers.feishu import FeishuCalendarClient
from calendar_app.providers.google import GoogleCalendarClient

__all__ = [
    "CalendarEventRequest",
    "CalendarProviderClient",
    "FeishuCalendarClient",
    "GoogleCalendarClient",
    "ProvidedCalendarEvent",
    "calendar_provider_client",
    "calendar_provider_clients_reset",
]

CLIENT_CLASSES: dict[str, type[FeishuCalendarClient] | type[GoogleCalendarClient]] = {
    FeishuCalendarClient.name: FeishuCalendarClient,
    GoogleCalendarClient.name: GoogleCalendarClient,
}

CLIENT_SETTINGS = frozenset(
    {
        "FEISHU_APP_ID",
        "FEISHU_APP_SECRET",
        "FEISHU_BASE_URL",
        "FEISHU_CALENDAR_ID",
        "GOOGLE_CALENDAR_BASE_URL",
        "GOOGLE_CALENDAR_ID",
        "GOOGLE_CALENDAR_ACCESS_TOKEN",
        "GOOGLE_SERVICE_ACCOUNT_FILE",
        "GOOGLE_CALENDAR_SUBJECT",
        "PROVIDER_TIMEOUT_SECONDS",
    }
)

_registry = ClientRegistry(kind="calendar provider", classes=CLIENT_CLASSES, settings_read=CLIENT_SETTINGS)


def calendar_provider_client(name: str) -> CalendarProviderClient:
    """The process's shared client for provider `name`, made from settings on first use (ValueError for a
    provider we do not speak to)."""
    return _registry.client(name)


def calendar_provider_clients_reset() -> None:
    """Forget every shared client (and so its token), so the next call builds one from the current settings."""
    _registry.reset()
