"""Celery tasks: couriers that carry ids to the saga and the outbox. No business rule lives here."""

from uuid import UUID

from celery import shared_task
from django.conf import settings

from booking_project.events import SESSION_CANCELLED, SESSION_CREATED, SESSION_RESCHEDULED, handles
from booking_project.provider_work import provider_work_sweep
from sessions_app.idempotency import idempotency_records_expire
from sessions_app.life import sessions_clock_tick
from sessions_app.meeting_operations import meeting_operation_advance
from sessions_app.models import OutboxEvent
from sessions_app.outbox import outbox_relay
from sessions_app.saga import saga_advance

# A safety net above the saga's own bound on attempts (it counts them in its row, across redeliveries).
_MAX_RETRIES = settings.SAGA_MAX_ATTEMPTS + settings.SAGA_CANCEL_MAX_ATTEMPTS + 2


@handles(SESSION_CREATED)
@shared_task(
    bind=True,
    name="sessions.provision_meeting",
    acks_late=True,
    reject_on_worker_lost=True,
    max_retries=_MAX_RETRIES,
)
def provision_meeting(self, event_id: str | None = None, session_id: str | None = None) -> None:
    """Advance the session's meeting saga: on a `{type}.session.created` event, or re-driven by session id."""
    if session_id is None:
        session_id = OutboxEvent.objects.filter(id=event_id).values_list("payload__sessionId", flat=True).first()
        if session_id is None:
            return  # an event of a database that no longer has it (tests, restores): nothing to do
    step = saga_advance(session_id=UUID(session_id), event_id=UUID(event_id) if event_id else None)
    if step.retry_in is not None:
        raise self.retry(countdown=step.retry_in, kwargs={"event_id": event_id, "session_id": session_id})


@handles(SESSION_CANCELLED)
@handles(SESSION_RESCHEDULED)
@shared_task(
    bind=True,
    name="sessions.change_meeting",
    acks_late=True,
    reject_on_worker_lost=True,
    # The operation row bounds the provider attempts; what is not bounded here is the wait for a meeting
    # still being provisioned, which the saga's own lease and sweep bound.
    max_retries=None,
)
def change_meeting(self, event_id: str | None = None, operation_id: str | None = None) -> None:
    """Cancel or move the session's meeting at the provider: on a `{type}.session.cancelled` or
    `.rescheduled` event, or re-driven by operation id."""
    if operation_id is None:
        operation_id = OutboxEvent.objects.filter(id=event_id).values_list("payload__operationId", flat=True).first()
        if operation_id is None:
            return
    step = meeting_operation_advance(operation_id=UUID(operation_id))
    if step.retry_in is not None:
        raise self.retry(countdown=step.retry_in, kwargs={"operation_id": operation_id})


@shared_task(name="sessions.outbox_relay", acks_late=True)
def relay_outbox() -> int:
    return outbox_relay()


@shared_task(name="sessions.saga_sweep", acks_late=True)
def sweep_sagas() -> int:
    """The provider-work engine's one sweep: every registered kind's rows without progress are re-driven
    (sagas, meeting operations, calendar events, emails, reminders)."""
    return provider_work_sweep()


@shared_task(name="sessions.clock_tick", acks_late=True)
def tick_session_clock() -> dict[str, int]:
    """Start the sessions whose start has come and complete those long past their end (sessions_app.life)."""
    tick = sessions_clock_tick()
    return {"started": tick.started, "completed": tick.completed}


@shared_task(name="sessions.idempotency_records_expire", acks_late=True)
def expire_idempotency_records() -> int:
    return idempotency_records_expire()
