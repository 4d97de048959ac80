"""The meeting's side of a cancel or a reschedule (DESIGN.md "Lifecycle after booking").

The counselor's request changes the session, its hold and its slots in one transaction and answers; the
meeting is changed at the provider afterwards, here: retried with the saga's backoff, and announced by a
`{type}.session.meeting.operation.result` event (operation `update` or `cancel`) for the notifications.
When the provider will not do it, the session's saga goes to the operators' queue with the reason.

As in the saga, the `MeetingOperation` row is a row of the provider-work engine (`booking_project.provider_work`)
and the truth; tasks only carry its id: each step claims the row under a lock, the provider is called outside any
transaction, and a duplicate courier changes nothing. A move or a cancel is idempotent, so one whose answer was
lost is simply asked again, and the answer to the repeat says how it stands.
"""

import logging
from dataclasses import dataclass
from typing import Any
from uuid import UUID

from django.conf import settings
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from booking_project.events import SESSION_CANCELLED, SESSION_RESCHEDULED
from booking_project.metrics import meeting_operation_observed
from booking_project.provider_work import (
    DONE,
    WorkKind,
    WorkStep,
    attempt_lease_held,
    attempt_open,
    client_ready,
    not_before_in,
    retry_after_too_long,
    wait_step,
    work_backoff,
    work_kind_register,
    work_move,
    work_run,
)
from meetings_app.models import Meeting, MeetingStatus
from meetings_app.providers import meeting_provider_client
from meetings_app.providers.base import (
    MeetingRequest,
    OutcomeUnknownError,
    PermanentProviderError,
    ProviderError,
    TransientProviderError,
)
from meetings_app.services import MeetingManager
from sessions_app.models import (
    MEETING_OPERATION_FINAL_STATES,
    MEETING_OPERATION_TRANSITIONS,
    SAGA_SETTLED_STATES,
    MeetingOperation,
    MeetingOperationKind,
    MeetingOperationState,
    MeetingSaga,
    Session,
    SessionStatus,
)
from sessions_app.outbox import outbox_event_add
from sessions_app.payloads import meeting_result_payload, session_changed_payload
from sessions_app.saga import meeting_request_for, saga_advance, saga_manual_intervention_flag
from sessions_app.types import session_type_get

logger = logging.getLogger(__name__)

_EVENT_KIND = {MeetingOperationKind.CANCEL: SESSION_CANCELLED, MeetingOperationKind.UPDATE: SESSION_RESCHEDULED}


@dataclass(frozen=True)
class _CallPlan:
    operation_id: UUID
    attempt_id: UUID
    session_id: UUID
    kind: str
    meeting: Meeting
    request: MeetingRequest


def meeting_operation_start(*, session: Session, kind: str, previous: dict[str, Any] | None = None) -> MeetingOperation:
    """Record that the session's meeting is to be changed, and the event that carries the change to a
    worker. Call in the transaction that cancelled or moved the session."""
    operation = MeetingOperation.objects.create(session=session, kind=kind)
    outbox_event_add(
        type=session_type_get(session.session_type).event(_EVENT_KIND[kind]),
        payload=session_changed_payload(session=session, operation_id=operation.id, previous=previous),
    )
    return operation


def meeting_operation_advance(*, operation_id: UUID) -> WorkStep:
    """Do the next step of the operation: wait for provisioning to settle, call the provider, or finish."""
    return work_run(MEETING_OPERATION_WORK, operation_id, lambda: _advance(operation_id))


def _advance(operation_id: UUID) -> WorkStep:
    # The provider's token before the attempt is claimed: the lease counts from the call, not the token.
    provider = (
        MeetingOperation.objects.filter(id=operation_id).values_list("session__meeting_provider", flat=True).first()
    )
    if provider:
        client_ready(meeting_provider_client(provider), operation="update")
    decision = _claim(operation_id)
    if isinstance(decision, _CallPlan):
        return _provider_call(decision)
    return decision


def _claim(operation_id: UUID) -> "_CallPlan | WorkStep":
    with transaction.atomic():
        operation = (
            MeetingOperation.objects.select_for_update(of=("self",))
            .select_related("session")
            .filter(id=operation_id)
            .first()
        )
        if operation is None or operation.state in MEETING_OPERATION_FINAL_STATES:
            return DONE
        now = timezone.now()
        if operation.state == MeetingOperationState.RUNNING and attempt_lease_held(operation, now=now):
            return DONE  # another worker is calling the provider for it right now
        session = operation.session
        superseded = _superseded_because(operation, session)
        if superseded:
            _move(operation, MeetingOperationState.SUPERSEDED, finished_at=now, attempt_id=None, last_error=superseded)
            logger.info("meeting_operation.superseded", extra=_log(operation, reason=superseded))
            return DONE
        saga = MeetingSaga.objects.select_related("meeting").get(session_id=session.id)
        provisioning = saga.state not in SAGA_SETTLED_STATES
        if not provisioning:
            meeting = saga.meeting if saga.meeting and saga.meeting.status == MeetingStatus.ACTIVE else None
            if meeting is None:
                if operation.kind == MeetingOperationKind.CANCEL:
                    # Never made, or already undone by the saga's compensation: nothing is left to cancel.
                    _finish(operation, session, MeetingOperationState.SUCCEEDED, meeting=saga.meeting)
                else:
                    _finish(
                        operation,
                        session,
                        MeetingOperationState.FAILED,
                        meeting=saga.meeting,
                        reason="The session was moved, but it has no active meeting to move. Book it again.",
                    )
                return DONE
            if operation.attempts >= settings.MEETING_OPERATION_MAX_ATTEMPTS:
                # Re-driven after the last attempt's worker died: no attempt is left.
                _finish(
                    operation,
                    session,
                    MeetingOperationState.FAILED,
                    meeting=meeting,
                    reason=_reason_failed(operation, session, meeting, operation.last_error or "no attempt left"),
                )
                return DONE
            attempt_id = attempt_open(
                operation,
                MeetingOperationState.RUNNING,
                transitions=MEETING_OPERATION_TRANSITIONS,
                now=now,
                not_before=None,
            )
    if provisioning:
        # A cancel while the meeting is still being made. Driving the saga now ends it: a cancelled
        # session's saga makes no meeting, and undoes one it has just made. Then look again.
        step = saga_advance(session_id=session.id)
        logger.info("meeting_operation.waiting_for_provisioning", extra=_log(operation, sagaState=saga.state))
        return WorkStep(retry_in=max(step.retry_in or 0.0, settings.MEETING_OPERATION_WAIT_SECONDS))
    logger.info("meeting_operation.attempt_started", extra=_log(operation, attempt=operation.attempts))
    return _CallPlan(
        operation_id=operation.id,
        attempt_id=attempt_id,
        session_id=session.id,
        kind=operation.kind,
        meeting=meeting,
        request=meeting_request_for(session, host_id=meeting.host_id),
    )


def _superseded_because(operation: MeetingOperation, session: Session) -> str:
    """Why an update is no longer needed: the session left SCHEDULED, or a later move will do it."""
    if operation.kind != MeetingOperationKind.UPDATE:
        return ""
    if session.status != SessionStatus.SCHEDULED:
        return f"the session is {session.status}"
    later = (
        MeetingOperation.objects.filter(session_id=session.id, created_at__gt=operation.created_at)
        .exclude(id=operation.id)
        .exists()
    )
    return "a later change of the session takes over" if later else ""


def _provider_call(plan: _CallPlan) -> WorkStep:
    manager = MeetingManager()
    try:
        if plan.kind == MeetingOperationKind.CANCEL:
            manager.cancel_meeting(meeting_id=plan.meeting.id)
        else:
            manager.update_meeting(meeting_id=plan.meeting.id, request=plan.request)
    except (TransientProviderError, PermanentProviderError) as error:
        return _attempt_failed(plan, error)
    with transaction.atomic():
        operation = _lock(plan.operation_id)
        if operation.attempt_id != plan.attempt_id or operation.state != MeetingOperationState.RUNNING:
            return DONE  # our lease ran out and another worker took over; its outcome is the outcome
        _finish(operation, operation.session, MeetingOperationState.SUCCEEDED, meeting=_fresh(plan.meeting))
    return DONE


def _attempt_failed(plan: _CallPlan, error: ProviderError) -> WorkStep:
    retryable = isinstance(error, TransientProviderError)
    too_long = retryable and retry_after_too_long(error)
    unknown = isinstance(error, OutcomeUnknownError)
    logger.warning(
        "meeting_operation.attempt_failed",
        extra={
            "sessionId": str(plan.session_id),
            "operation": plan.kind,
            "error": str(error),
            "retryable": retryable,
            "outcomeUnknown": unknown,
        },
    )
    with transaction.atomic():
        operation = _lock(plan.operation_id)
        if operation.attempt_id != plan.attempt_id or operation.state != MeetingOperationState.RUNNING:
            return DONE
        session = operation.session
        superseded = _superseded_because(operation, session)
        if superseded:
            # e.g. the meeting was cancelled under a move that was in flight: the move does not matter now.
            _move(
                operation,
                MeetingOperationState.SUPERSEDED,
                finished_at=timezone.now(),
                attempt_id=None,
                last_error=f"{error} ({superseded})",
            )
            return DONE
        if retryable and not too_long and operation.attempts < settings.MEETING_OPERATION_MAX_ATTEMPTS:
            delay = work_backoff(operation.attempts, retry_after=error.retry_after)
            _move(
                operation,
                MeetingOperationState.RETRY_WAIT,
                attempt_id=None,
                last_error=str(error),
                not_before=not_before_in(delay),
                outcome_unknown=unknown,
            )
            return wait_step(delay)
        _finish(
            operation,
            session,
            MeetingOperationState.FAILED,
            meeting=plan.meeting,
            reason=_reason_failed(operation, session, plan.meeting, str(error)),
        )
    return DONE


def _finish(
    operation: MeetingOperation, session: Session, to: str, *, meeting: Meeting | None, reason: str = ""
) -> None:
    """End the operation and announce it; a failure also asks a person to act."""
    _move(
        operation,
        to,
        attempt_id=None,
        finished_at=timezone.now(),
        last_error=reason or operation.last_error,
        outcome_unknown=False,
    )
    status = "success" if to == MeetingOperationState.SUCCEEDED else "failed"
    if reason:
        saga_manual_intervention_flag(session_id=session.id, reason=reason)
    outbox_event_add(
        type=session_type_get(session.session_type).result_event,
        payload=meeting_result_payload(
            session=session, meeting=meeting, status=status, operation=operation.kind, failure_reason=reason
        ),
    )
    meeting_operation_observed(session_type=session.session_type, operation=operation.kind, status=status)
    log = logger.info if status == "success" else logger.error
    log(f"meeting_operation.{to}", extra=_log(operation, attempts=operation.attempts, reason=reason or None))


def _reason_failed(operation: MeetingOperation, session: Session, meeting: Meeting, error: str) -> str:
    what = f"{meeting.provider} meeting {meeting.meeting_no or meeting.provider_meeting_id}"
    if operation.kind == MeetingOperationKind.CANCEL:
        return (
            f"The session was cancelled, but its {what} could not be cancelled after {operation.attempts} "
            f"attempt(s): {error}. Cancel it at the provider."
        )
    return (
        f"The session was moved to {session.scheduled_at.isoformat()} ({session.duration_minutes} min), but its "
        f"{what} could not be moved after {operation.attempts} attempt(s): {error}. Move it at the provider."
    )


def meeting_operations_redrive_due(*, now=None, limit: int = 500) -> list[UUID]:
    """Operations with no progress for SAGA_STUCK_AFTER_SECONDS (a lost message, a dead worker) or whose wait
    has come, marked as re-driven now so that the next sweep waits another period (the engine's sweep)."""
    from booking_project.provider_work import rows_due_claim

    return rows_due_claim(MEETING_OPERATION_WORK, now=now or timezone.now(), limit=limit)


def _lock(operation_id: UUID) -> MeetingOperation:
    return MeetingOperation.objects.select_for_update(of=("self",)).select_related("session").get(id=operation_id)


def _move(operation: MeetingOperation, to: str, **fields: Any) -> None:
    """Set the operation's state and fields on the row locked by the caller; refuses an illegal move."""
    work_move(operation, to, transitions=MEETING_OPERATION_TRANSITIONS, **fields)


def _fresh(meeting: Meeting) -> Meeting:
    return Meeting.objects.get(id=meeting.id)


def _log(operation: MeetingOperation, **extra: Any) -> dict[str, Any]:
    return {
        "sessionId": str(operation.session_id),
        "operationId": str(operation.id),
        "operation": operation.kind,
        **extra,
    }


def _operation_give_up(operation_id: UUID, reason: str) -> None:
    """The engine's end for an operation that kept failing on something other than a provider: it fails, and
    the session's saga asks a person to finish the change at the provider."""
    with transaction.atomic():
        operation = _lock(operation_id)
        if operation.state in MEETING_OPERATION_FINAL_STATES:
            return
        session = operation.session
        saga = MeetingSaga.objects.select_related("meeting").get(session_id=session.id)
        meeting = saga.meeting
        what = f"{operation.kind} of the session's meeting"
        _finish(
            operation,
            session,
            MeetingOperationState.FAILED,
            meeting=meeting,
            reason=f"The {what} was given up. {reason} Check the meeting at the provider.",
        )


def _redrive(operation_ids: list[UUID], *, countdown: float = 0.0) -> None:
    from sessions_app.tasks import change_meeting

    for operation_id in operation_ids:
        change_meeting.apply_async(kwargs={"operation_id": str(operation_id)}, countdown=countdown or None)


def _calls_provider(provider: str) -> Q:
    return Q(session__meeting_provider=provider)


MEETING_OPERATION_WORK = work_kind_register(
    WorkKind(
        name="meeting_operation",
        label="meeting cancel or move",
        model=MeetingOperation,
        key="id",
        final_states=MEETING_OPERATION_FINAL_STATES,
        redrive=_redrive,
        give_up=_operation_give_up,
        stuck_after=lambda: settings.SAGA_STUCK_AFTER_SECONDS,
        # A failed operation asks a person through its session's saga (one queue per session).
        needs_person=None,
        calls_provider=_calls_provider,
    )
)
