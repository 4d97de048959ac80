"""Calendar provider clients, one shared client per provider per process (so they share a token and a pool)."""

from __future__ import annotations

import threading

from django.core.signals import setting_changed
from django.dispatch import receiver

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

_clients: dict[str, CalendarProviderClient] = {}
_clients_lock = threading.Lock()


def calendar_provider_client(name: str) -> CalendarProviderClient:
    """The process's client for calendar provider `name` ("feishu" or "google"). ValueError for another."""
    with _clients_lock:
        client = _clients.get(name)
        if client is None:
            client_class = CLIENT_CLASSES.get(name)
            if client_class is None:
                raise ValueError(f"Unknown calendar provider {name!r}; known: {', '.join(sorted(CLIENT_CLASSES))}")
            client = _clients[name] = client_class.from_settings()
        return client


def calendar_provider_clients_reset() -> None:
    with _clients_lock:
        forgotten = list(_clients.values())
        _clients.clear()
    for client in forgotten:
        client.close()


@receiver(setting_changed)
def _forget_clients_made_from_old_settings(*, setting: str, **kwargs) -> None:
    if setting in CLIENT_SETTINGS:
        calendar_provider_clients_reset()
