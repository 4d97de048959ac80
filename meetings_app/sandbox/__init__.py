"""A local stand-in for Feishu, Zoom and Google Calendar (API.md "Provider sandbox")."""

from meetings_app.sandbox.server import EventTarget, ProviderSandbox

__all__ = ["EventTarget", "ProviderSandbox"]
