"""The transactional outbox: integration events are rows written in the transaction that caused them,
published to their handlers' queues after commit, and republished by a relay when that did not happen
(broker down, process killed between commit and publish). Handlers may therefore see an event twice:
every handler is idempotent.

Marking events published, without a write per request
-----------------------------------------------------
The outbox row must say whether its event reached the broker, or the relay would send everything again. An
`UPDATE ... SET published_at` after each publication would cost every booking a second transaction (a round
trip and a WAL flush) just for that. Instead:

1. The process that published an event records its id in a Redis set (`OUTBOX_HANDED_KEY`) *on the broker
   itself*, through the same connection, right after the broker took the message: one `SADD`, no PostgreSQL.
2. The relay (beat, every OUTBOX_RELAY_INTERVAL_SECONDS) first takes every id out of that set (`SPOP`) and
   marks those events published in one `UPDATE`; only then does it look for events still unpublished and older
   than OUTBOX_RELAY_GRACE_SECONDS, and publishes those (marking them in one `UPDATE` too).

What that guarantees:

- An event whose publication failed (broker down, circuit open, process killed before or during it) is never
  recorded, so the relay publishes it once it is older than the grace: the outbox guarantee is unchanged.
- An event published and recorded is marked by the next relay run and never sent again: the relay drains the
  set *before* it looks for stranded events, and an on-commit publication happens milliseconds after the row's
  `created_at`, well inside the grace.
- A double publication remains possible, and rare: the record lost after the message was handed (Redis failing
  between the two commands, or losing the set), an on-commit publication slower than the grace, or a second
  relay looking between another's `SPOP` and its `UPDATE`. Handlers are idempotent, so that costs a duplicate
  message, never a duplicate meeting.
- Ids in the set that this database does not have (another deployment sharing the broker's database) match no
  row and are dropped.
"""

import logging
import uuid
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

# The set, in the broker's Redis database, of the ids of events handed to the broker and not yet marked.
OUTBOX_HANDED_KEY = "booking:outbox:handed"
# How many recorded ids the relay takes out of the set per command.
OUTBOX_HANDED_BATCH = 1000


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
    """Hand the event to the queue of each of its handlers and record, on the broker, that it was handed (the
    relay marks it published: see the module's docstring). False when the broker could not be reached: the
    event stays unpublished for the relay."""
    from booking_project.celery import app

    try:
        with app.producer_or_acquire() as producer:
            _handlers_send(event=event, producer=producer)
            try:
                outbox_handed_record(producer=producer, event_ids=[str(event.id)])
            except Exception as error:  # noqa: BLE001 - the message is out; the relay will send it again
                logger.warning("outbox.record_failed", extra={"eventId": str(event.id), "error": repr(error)})
    except Exception as error:  # noqa: BLE001 - any broker failure leaves the event to the relay
        logger.warning(
            "outbox.publish_failed", extra={"eventId": str(event.id), "eventType": event.type, "error": repr(error)}
        )
        return False
    logger.info("outbox.published", extra={"eventId": str(event.id), "eventType": event.type})
    return True


def _handlers_send(*, event: OutboxEvent, producer) -> None:
    for handler in event_type_get(event.type).handlers:
        handler.apply_async(kwargs={"event_id": str(event.id)}, retry=False, producer=producer)


def outbox_handed_record(*, producer, event_ids: list[str]) -> None:
    """Record on the broker that these events were handed to it (the relay marks them published)."""
    producer.channel.client.sadd(OUTBOX_HANDED_KEY, *event_ids)


def _handed_take(*, producer) -> list[uuid.UUID]:
    """Every id recorded so far, taken out of the set."""
    client = producer.channel.client
    taken: list[uuid.UUID] = []
    while True:
        batch = client.spop(OUTBOX_HANDED_KEY, OUTBOX_HANDED_BATCH) or []
        for raw in batch:
            try:
                taken.append(uuid.UUID(raw.decode() if isinstance(raw, bytes) else raw))
            except ValueError:
                continue  # not ours: nothing to mark
        if len(batch) < OUTBOX_HANDED_BATCH:
            return taken


def outbox_relay(*, batch_size: int = 200) -> int:
    """Mark published, in one UPDATE, the events the processes recorded as handed to the broker; then publish
    the events that on-commit publication left behind, oldest first, and mark them in one UPDATE. Several relays
    may run at once: each claims its own rows (SKIP LOCKED). Returns how many were published."""
    from booking_project.celery import app

    cutoff = timezone.now() - timedelta(seconds=settings.OUTBOX_RELAY_GRACE_SECONDS)
    sent: list[uuid.UUID] = []
    with app.producer_or_acquire() as producer:
        try:
            handed = _handed_take(producer=producer)
        except Exception as error:  # noqa: BLE001 - the broker is down: nothing was recorded that we can read
            logger.warning("outbox.relay_broker_unreachable", extra={"error": repr(error)})
            handed = []
        with transaction.atomic():
            # In the transaction that looks for stranded events: another relay looking meanwhile skips these
            # rows (locked), or sees them marked.
            marked = _mark_published(handed)
            stranded = list(
                OutboxEvent.objects.select_for_update(skip_locked=True)
                .filter(published_at__isnull=True, created_at__lt=cutoff)
                .order_by("created_at")[:batch_size]
            )
            for event in stranded:
                try:
                    _handlers_send(event=event, producer=producer)
                except Exception as error:  # noqa: BLE001 - the broker is still down: try again next period
                    logger.warning(
                        "outbox.publish_failed",
                        extra={"eventId": str(event.id), "eventType": event.type, "error": repr(error)},
                    )
                    break
                sent.append(event.id)
                logger.info("outbox.published", extra={"eventId": str(event.id), "eventType": event.type})
            _mark_published(sent)
    if handed or stranded:
        logger.info(
            "outbox.relayed",
            extra={"published": len(sent), "stranded": len(stranded), "marked": marked, "recorded": len(handed)},
        )
    return len(sent)


def _mark_published(event_ids: list[uuid.UUID]) -> int:
    if not event_ids:
        return 0
    return OutboxEvent.objects.filter(id__in=event_ids, published_at__isnull=True).update(published_at=timezone.now())
