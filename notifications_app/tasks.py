"""Celery couriers for notifications. A message only says "look at this row now": the delivery and reminder rows
(notifications_app.services) are the truth, so a message lost, duplicated or late costs a delay, never a
notification (the sweep re-drives what made no progress). No business rule lives here."""

from __future__ import annotations

from uuid import UUID

from celery import shared_task

from booking_project.events import MEETING_OPERATION_RESULT, SESSION_COMPLETED, SESSION_STARTED, handles
from booking_project.provider_work import work_run
from notifications_app.services import (
    REMINDER_WORK,
    meeting_result_deliveries,
    notification_deliver,
    reminder_send,
    reminders_send_due,
)


@handles(MEETING_OPERATION_RESULT)
@handles(SESSION_STARTED)
@handles(SESSION_COMPLETED)
# A failure here is the broker or the database, not a provider: retried a few times within a minute or two (the
# deliveries are rows already: when this gives up, the sweep sends their couriers), redelivered if the worker dies.
@shared_task(
    name="notifications.meeting_result",
    acks_late=True,
    autoretry_for=(Exception,),
    retry_backoff=2,
    retry_backoff_max=60,
    max_retries=5,
)
def notify_meeting_result(event_id: str) -> None:
    """Send a courier for each unfinished delivery of a meeting result event (written with the event). Handling
    the event twice is harmless: a courier finds its delivery done, or being done, and does nothing."""
    for delivery_id in meeting_result_deliveries(event_id=UUID(event_id)):
        deliver_notification.apply_async(kwargs={"delivery_id": str(delivery_id)})


@shared_task(bind=True, name="notifications.deliver", acks_late=True, max_retries=None)
def deliver_notification(self, delivery_id: str) -> None:
    """One delivery (a calendar event, the reminder schedule, an email). Its row bounds the attempts; a wait
    too long for a countdown is the row's not_before, and the sweep wakes it."""
    step = notification_deliver(delivery_id=UUID(delivery_id))
    if step.retry_in is not None:
        raise self.retry(countdown=step.retry_in, kwargs={"delivery_id": delivery_id})


@shared_task(name="notifications.send_due_reminders", acks_late=True)
def send_due_reminders() -> int:
    return reminders_send_due()


@shared_task(name="notifications.send_reminder", acks_late=True)
def send_reminder(reminder_id: str) -> bool:
    """One due reminder (the sweep's re-drive, an operator's retry); the beat sender sends the others."""
    step = work_run(REMINDER_WORK, UUID(reminder_id), lambda: reminder_send(reminder_id=UUID(reminder_id)))
    return step is True
