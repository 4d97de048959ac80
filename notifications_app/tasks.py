"""Celery couriers for notifications: the result-event handler fans out to one task per channel and
participant, so one failing delivery never blocks another. Each task retries with backoff and, once it gives
up (or is refused for good), parks a failed notification for the admin. No business rule lives here."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any
from uuid import UUID

from celery import shared_task
from django.conf import settings

from booking_project.events import MEETING_OPERATION_RESULT, handles
from booking_project.providers.outcomes import PermanentProviderError, TransientProviderError
from notifications_app.models import Channel
from notifications_app.services import (
    email_delivery_failed,
    email_delivery_send,
    failed_notification_park,
    meeting_result_plan,
    notification_backoff,
    participant_calendar_sync,
    reminder_send,
    reminders_send_due,
    reminders_sync,
)

logger = logging.getLogger(__name__)


@handles(MEETING_OPERATION_RESULT)
# A failure here is the broker or the database, not a provider: retried, and redelivered if the worker dies.
@shared_task(
    name="notifications.meeting_result", acks_late=True, autoretry_for=(Exception,), retry_backoff=2, max_retries=8
)
def notify_meeting_result(event_id: str) -> None:
    """Fan a meeting result event out: a calendar task per participant, one for the reminders, an email task
    per recipient. Enqueuing twice is harmless: every delivery task converges or finds its row sent."""
    plan = meeting_result_plan(event_id=UUID(event_id))
    if plan is None:
        return
    session_id = str(plan.session_id)
    for user_id in plan.calendar_user_ids:
        sync_calendar_event.apply_async(kwargs={"session_id": session_id, "user_id": str(user_id)})
    if plan.reminders:
        sync_reminders.apply_async(kwargs={"session_id": session_id})
    for delivery_id in plan.email_delivery_ids:
        send_email.apply_async(kwargs={"delivery_id": str(delivery_id)})


def _deliver(
    task,
    *,
    channel: str,
    session_id: str | None,
    recipient_id: str | None,
    work: Callable[[], Any],
    on_failure: Callable[[str, bool], None] | None = None,
) -> Any:
    """Run `work`; on failure retry with backoff up to NOTIFICATION_MAX_ATTEMPTS, then park it. A permanent
    provider error is parked at once: asking again cannot help."""
    try:
        return work()
    except Exception as error:  # noqa: BLE001 - every failure is retried or parked, never lost
        attempts = task.request.retries + 1
        message = str(error) or repr(error)
        give_up = isinstance(error, PermanentProviderError) or attempts >= settings.NOTIFICATION_MAX_ATTEMPTS
        if on_failure is not None:
            on_failure(message, give_up)
        if not give_up:
            retry_after = error.retry_after if isinstance(error, TransientProviderError) else None
            logger.info(
                "notifications.retry",
                extra={"task": task.name, "sessionId": session_id, "attempts": attempts, "error": message[:300]},
            )
            raise task.retry(countdown=notification_backoff(attempts, retry_after=retry_after), exc=error) from None
        failed_notification_park(
            channel=channel,
            session_id=session_id,
            recipient_id=recipient_id,
            task=task.name,
            payload=dict(task.request.kwargs or {}),
            error=message,
            attempts=attempts,
        )
        return None


@shared_task(bind=True, name="notifications.sync_calendar_event", acks_late=True, max_retries=None)
def sync_calendar_event(self, session_id: str, user_id: str) -> None:
    _deliver(
        self,
        channel=Channel.CALENDAR,
        session_id=session_id,
        recipient_id=user_id,
        work=lambda: participant_calendar_sync(session_id=UUID(session_id), user_id=UUID(user_id)),
    )


@shared_task(bind=True, name="notifications.sync_reminders", acks_late=True, max_retries=None)
def sync_reminders(self, session_id: str) -> None:
    _deliver(
        self,
        channel=Channel.REMINDERS,
        session_id=session_id,
        recipient_id=None,
        work=lambda: reminders_sync(session_id=UUID(session_id)),
    )


@shared_task(bind=True, name="notifications.send_email", acks_late=True, max_retries=None)
def send_email(self, delivery_id: str) -> None:
    from notifications_app.models import EmailDelivery

    row = EmailDelivery.objects.filter(id=delivery_id).values("session_id", "recipient_id").first() or {}
    _deliver(
        self,
        channel=Channel.EMAIL,
        session_id=str(row.get("session_id")) if row else None,
        recipient_id=str(row.get("recipient_id")) if row else None,
        work=lambda: email_delivery_send(delivery_id=UUID(delivery_id)),
        on_failure=lambda error, given_up: email_delivery_failed(
            delivery_id=UUID(delivery_id), error=error, given_up=given_up
        ),
    )


@shared_task(name="notifications.send_due_reminders", acks_late=True)
def send_due_reminders() -> int:
    return reminders_send_due()


@shared_task(name="notifications.send_reminder", acks_late=True)
def send_reminder(reminder_id: str) -> bool:
    """An operator's retry of a parked reminder (the beat sender retries the others on its own)."""
    return reminder_send(reminder_id=UUID(reminder_id))
