"""The transactional outbox: integration events are rows written in the transaction that caused them."""

from typing import Any

from booking_project.events import event_type_get
from sessions_app.models import OutboxEvent


def outbox_event_add(*, type: str, payload: dict[str, Any]) -> OutboxEvent:
    """Record an event of a registered type. Call inside the transaction whose outcome it announces."""
    return OutboxEvent.objects.create(type=type, version=event_type_get(type).version, payload=payload)
