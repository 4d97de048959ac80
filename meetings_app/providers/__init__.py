"""Meeting provider clients, one shared client per provider per process.

Sharing the client shares its access token and its connection pool between every worker thread, so a
process asks each provider for a token once an hour or two rather than once per meeting.
"""

from __future__ import annotations

from booking_project.providers.http import ClientRegistry
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
        "FEISHU_MEETING_VIA",
        "FEISHU_CALENDAR_ID",
        "ZOOM_ACCOUNT_ID",
        "ZOOM_CLIENT_ID",
        "ZOOM_CLIENT_SECRET",
        "ZOOM_API_BASE_URL",
        "ZOOM_OAUTH_URL",
        "PROVIDER_TIMEOUT_SECONDS",
    }
)

_registry = ClientRegistry(kind="meeting provider", classes=CLIENT_CLASSES, settings_read=CLIENT_SETTINGS)


def meeting_provider_client(name: str) -> MeetingProviderClient:
    """The process's shared client for provider `name`, made from settings on first use (ValueError for a
    provider we do not speak to)."""
    return _registry.client(name)


def meeting_provider_clients_reset() -> None:
    """Forget every shared client (and so its token), so the next call builds one from the current settings."""
    _registry.reset()
