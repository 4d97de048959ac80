"""Meeting provider clients, one shared client per provider per process.

Sharing the client shares its access token and its connection pool between every worker thread, so a
process asks each provider for a token once an hour or two rather than once per meeting.
"""

from __future__ import annotations

import threading

from django.core.signals import setting_changed
from django.dispatch import receiver

from meetings_app.providers.base import (
    MeetingProviderClient,
    MeetingRequest,
    PermanentProviderError,
    ProvidedMeeting,
    ProviderError,
    TransientProviderError,
)
from meetings_app.providers.feishu import FeishuMeetingClient
from meetings_app.providers.zoom import ZoomMeetingClient

__all__ = [
    "FeishuMeetingClient",
    "MeetingProviderClient",
    "MeetingRequest",
    "PermanentProviderError",
    "ProvidedMeeting",
    "ProviderError",
    "TransientProviderError",
    "ZoomMeetingClient",
    "meeting_provider_client",
    "meeting_provider_clients_reset",
]

CLIENT_CLASSES: dict[str, type[FeishuMeetingClient] | type[ZoomMeetingClient]] = {
    FeishuMeetingClient.name: FeishuMeetingClient,
    ZoomMeetingClient.name: ZoomMeetingClient,
}

# The settings a client reads when it is made; changing one (in a test) makes the next call build a new client.
CLIENT_SETTINGS = frozenset(
    {
        "FEISHU_APP_ID",
        "FEISHU_APP_SECRET",
        "FEISHU_BASE_URL",
        "ZOOM_ACCOUNT_ID",
        "ZOOM_CLIENT_ID",
        "ZOOM_CLIENT_SECRET",
        "ZOOM_API_BASE_URL",
        "ZOOM_OAUTH_URL",
        "PROVIDER_TIMEOUT_SECONDS",
    }
)

_clients: dict[str, FeishuMeetingClient | ZoomMeetingClient] = {}
_clients_lock = threading.Lock()


def meeting_provider_client(name: str) -> MeetingProviderClient:
    """The process's client for provider `name` ("feishu" or "zoom"), made from settings on first use.
    Raises ValueError for a provider we do not speak to."""
    with _clients_lock:
        client = _clients.get(name)
        if client is None:
            client_class = CLIENT_CLASSES.get(name)
            if client_class is None:
                raise ValueError(f"Unknown meeting provider {name!r}; known: {', '.join(sorted(CLIENT_CLASSES))}")
            client = _clients[name] = client_class.from_settings()
        return client


def meeting_provider_clients_reset() -> None:
    """Forget every shared client (and so its token), so the next call builds one from the current settings."""
    with _clients_lock:
        forgotten = list(_clients.values())
        _clients.clear()
    for client in forgotten:
        client.close()


@receiver(setting_changed)
def _forget_clients_made_from_old_settings(*, setting: str, **kwargs) -> None:
    if setting in CLIENT_SETTINGS:
        meeting_provider_clients_reset()
