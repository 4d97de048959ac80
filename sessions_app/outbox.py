"""The transactional outbox: integration events are rows written in the transaction that caused them,
published to their handlers' queues after commit, and republished by a relay when that did not happen
(broker down, process killed between commit and publish). Handlers may therefore see an event twice:
every handler is idempotent."""

import logging
from datetime import timedelta
from functools import partial
from typing import Any

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from booking_project.events import event_type_get
from booking_project.redis_connections import broker_circuit
from sessions_app.models import OutboxEvent

logger = logging.getLogger(__name__)


def outbox_event_add(*, type: str, payload: dict[str, Any]) -> OutboxEvent:
    """Record an event of a registered type. Call inside the transaction whose outcome it announces; the
    event is published once that transaction commits (and never if it rolls back). What the event's type
    records besides (`@records`: the delivery rows of its notifications) is written here, in that transaction."""
    event = outbox_event_new(type=type, payload=payload)
    event.save(force_insert=True)
    outbox_event_recorded(event)
    return event


def outbox_event_new(*, type: str, payload: dict[str, Any]) -> OutboxEvent:
    """The unsaved row of an event of a registered type, for a caller that writes it in a statement of its own
    (booking_project.one_statement); once written, call `outbox_event_recorded` in the same transaction."""
    return OutboxEvent(type=type, version=event_type_get(type).version, payload=payload)


def outbox_event_recorded(event: OutboxEvent) -> None:
    """What follows writing an event's row, in its transaction: its type's recorders, and its publication
    once the transaction commits."""
    for recorder in event_type_get(event.type).recorders:
        recorder(event)
    transaction.on_commit(partial(_publish_after_commit, event=event), robust=True)


def _publish_after_commit(*, event: OutboxEvent) -> None:
    """Publish at once, unless the broker (or the cache, when they are one Redis) failed moments ago in this
    process: then leave the event to the relay straight away, so that a request during an outage does not wait
    on the broker at all."""
    circuit = broker_circuit()
    if not circuit.closed():
        logger.info("outbox.publish_deferred", extra={"eventId": str(event.id), "eventType": event.type})
        return
    if not outbox_event_publish(event=event):
        circuit.trip("publishing an event failed (outbox.publish_failed)")


def outbox_event_publish(*, event: OutboxEvent) -> bool:
    """Hand the event to the queue of each of its handlers, then mark it published. False when the broker
    could not be reached: the event stays unpublished for the relay."""
    try:
        for handler in event_type_get(event.type).handlers:
            handler.apply_async(kwargs={"event_id": str(event.id)}, retry=False)
    except Exception as error:  # noqa: BLE001 - any broker failure leaves the event to the relay
        logger.warning(
            "outbox.publish_failed", extra={"eventId": str(event.id), "eventType": event.type, "error": repr(error)}
        )
        return False
    OutboxEvent.objects.filter(id=event.id, published_at__isnull=True).update(published_at=timezone.now())
    logger.info("outbox.published", extra={"eventId": str(event.id), "eventType": event.type})
    return True


def outbox_relay(*, batch_size: int = 200) -> int:
    """Publish the events that on-commit publication left behind, oldest first. Several relays may run at
    once: each claims its own rows (SKIP LOCKED). Returns how many were published."""
    cutoff = timezone.now() - timedelta(seconds=settings.OUTBOX_RELAY_GRACE_SECONDS)
    published = 0
    with transaction.atomic():
        stranded = list(
            OutboxEvent.objects.select_for_update(skip_locked=True)
            .filter(published_at__isnull=True, created_at__lt=cutoff)
            .order_by("created_at")[:batch_size]
        )
        for event in stranded:
            if not outbox_event_publish(event=event):
                break  # the broker is still down: try again next period
            published += 1
    if stranded:
        logger.info("outbox.relayed", extra={"published": published, "stranded": len(stranded)})
    return published
