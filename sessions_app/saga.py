"""The meeting saga of a session (DESIGN.md phase two): create the meeting at the provider, schedule the
session with it, or give back everything the booking held.

The saga row (`MeetingSaga`) is the truth; Celery tasks only carry a session id to `saga_advance`, which
reads the row and does the next step. Every function here is safe to run twice and from several workers
at once: each step claims the row under a lock and changes it compare-and-set. No provider call is ever
made inside a transaction.
"""

import logging
import random
import time
import uuid
from dataclasses import dataclass
from datetime import timedelta
from typing import Any
from uuid import UUID

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from accounts_app.models import User
from accounts_app.selectors import meeting_host_id_for
from booking_project.errors import InvalidState
from booking_project.metrics import saga_result_observed
from calendar_app.services import slots_attach_meeting, slots_cancel
from holds_app.services import holds_release
from meetings_app.models import Meeting, MeetingStatus
from meetings_app.providers import meeting_provider_client
from meetings_app.providers.base import (
    MeetingRequest,
    PermanentProviderError,
    ProviderError,
    TransientProviderError,
)
from meetings_app.services import MeetingManager
from sessions_app.audit import audit_record
from sessions_app.models import (
    SAGA_FINAL_STATES,
    SAGA_TRANSITIONS,
    AuditAction,
    MeetingSaga,
    OutboxEvent,
    SagaState,
    Session,
    SessionStatus,
)
from sessions_app.outbox import outbox_event_add
from sessions_app.payloads import meeting_result_payload
from sessions_app.state_rows import attempt_lease_held, state_move, stuck_rows_claim
from sessions_app.transitions import session_transition
from sessions_app.types import session_type_get

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class SagaStep:
    """What the courier should do next: nothing, or run the saga again in `retry_in` seconds."""

    retry_in: float | None = None


DONE = SagaStep()


@dataclass(frozen=True)
class _CreatePlan:
    session_id: UUID
    event_id: UUID | None
    attempt_id: UUID
    provider: str
    request: MeetingRequest
    # The previous attempt was left open by a worker that died mid-call: the meeting may already exist.
    recovering: bool
    # No attempt is left: only a meeting the dead worker made may still be adopted.
    attempts_exhausted: bool
    # The session's status when the attempt opened: a meeting is only ever made for a PENDING_MEETING one.
    session_status: str


def saga_start(*, session: Session, event: OutboxEvent) -> MeetingSaga:
    """The saga row of a newly booked session. Call in the booking transaction."""
    return MeetingSaga.objects.create(session=session, event_id=event.id)


def saga_restart(*, session_id: UUID, event_id: UUID) -> None:
    """A new round after the counselor's retry of a MEETING_FAILED session. Call in the retry's transaction."""
    saga = _lock(session_id)
    _move(
        saga,
        SagaState.PENDING,
        round=saga.round + 1,
        event_id=event_id,
        attempts=0,
        attempt_id=None,
        attempt_started_at=None,
        retry_at=None,
        meeting=None,
        compensation_reason="",
        cancel_attempts=0,
        last_error="",
        finished_at=None,
        last_driven_at=None,
    )


def saga_advance(*, session_id: UUID, event_id: UUID | None = None) -> SagaStep:
    """Do the next step of the session's saga. `event_id` is the `session.created` event being handled;
    without it (a re-drive) the saga continues from wherever it stands."""
    decision = _claim(session_id=session_id, event_id=event_id)
    if isinstance(decision, _CreatePlan):
        return _meeting_create(decision)
    if decision == SagaState.MEETING_CREATED:
        return _backfill(session_id=session_id, event_id=event_id)
    if decision == SagaState.COMPENSATING:
        return _compensate(session_id=session_id, event_id=event_id)
    return DONE


def _claim(*, session_id: UUID, event_id: UUID | None) -> "_CreatePlan | str | None":
    """Under the saga row's lock, decide the next step; for a create, commit the attempt before the call."""
    log = {"sessionId": str(session_id), "eventId": str(event_id) if event_id else None}
    with transaction.atomic():
        saga = (
            MeetingSaga.objects.select_for_update(of=("self",))
            .select_related("session")
            .filter(session_id=session_id)
            .first()
        )
        if saga is None:
            logger.warning("saga.unknown_session", extra=log)
            return None
        if event_id is not None and saga.event_id != event_id:
            logger.info("saga.event_ignored", extra={**log, "reason": "not this round's event"})
            return None
        if saga.state in SAGA_FINAL_STATES:
            logger.info("saga.event_ignored", extra={**log, "reason": f"saga already {saga.state}"})
            return None
        if saga.state in (SagaState.COMPENSATING, SagaState.MEETING_CREATED):
            return saga.state
        now = timezone.now()
        attempt_open = saga.state == SagaState.CREATING
        attempt_fresh = attempt_open and attempt_lease_held(saga, now=now)
        if attempt_fresh:
            # Another worker is calling the provider right now (a duplicate delivery): it finishes the step.
            logger.info("saga.busy", extra=log)
            return None
        session = saga.session
        if session.status != SessionStatus.PENDING_MEETING and not attempt_open:
            # The session moved on (cancelled) before any meeting was asked for: nothing to make or undo.
            _move(saga, SagaState.FAILED, finished_at=now, last_error=f"session {session.status} before provisioning")
            return None
        exhausted = saga.attempts >= settings.SAGA_MAX_ATTEMPTS
        if exhausted and not attempt_open:
            _move(saga, SagaState.COMPENSATING, compensation_reason=_reason_gave_up(session, saga.last_error))
            return SagaState.COMPENSATING
        attempt_id = uuid.uuid4()
        _move(
            saga,
            SagaState.CREATING,
            attempt_id=attempt_id,
            attempt_started_at=now,
            attempts=saga.attempts if exhausted else saga.attempts + 1,
            retry_at=None,
        )
    logger.info(
        "saga.attempt_started",
        extra={**log, "provider": session.meeting_provider, "attempt": saga.attempts, "recovering": attempt_open},
    )
    return _CreatePlan(
        session_id=session_id,
        event_id=event_id,
        attempt_id=attempt_id,
        provider=session.meeting_provider,
        request=meeting_request_for(session),
        recovering=attempt_open,
        attempts_exhausted=exhausted,
        session_status=session.status,
    )


def meeting_request_for(session: Session, *, host_id: str | None = None) -> MeetingRequest:
    """What the provider is asked for the session: its topic and time, hosted by `host_id` (by default
    the mentor's account at the provider)."""
    return MeetingRequest(
        reference=str(session.id),
        topic=session.topic,
        start_time=session.scheduled_at,
        duration_minutes=session.duration_minutes,
        host_id=host_id or meeting_host_id_for(user_id=session.mentor_id, provider=session.meeting_provider),
    )


def _meeting_create(plan: _CreatePlan) -> SagaStep:
    manager = MeetingManager()
    started = time.perf_counter()
    log = {"sessionId": str(plan.session_id), "eventId": _str(plan.event_id), "provider": plan.provider}
    try:
        if not plan.request.host_id:
            raise PermanentProviderError(
                f"the mentor has no {plan.provider} account to host the meeting",
                provider=plan.provider,
                operation="create",
            )
        meeting = None
        if plan.recovering:
            meeting = manager.find_meeting(provider=plan.provider, request=plan.request)
            if meeting is not None:
                logger.info("saga.meeting_adopted", extra={**log, "meetingId": str(meeting.id)})
            elif not meeting_provider_client(plan.provider).can_find_by_reference:
                # Flagged at once: whatever happens to this attempt, a person must check the provider.
                with transaction.atomic():
                    _manual_intervention_flag(
                        _lock(plan.session_id),
                        f"A {plan.provider} reservation may have been left behind by a worker that died mid-call: "
                        f"owner {plan.request.host_id}, end time {plan.request.end_time.isoformat()}, "
                        f"topic {plan.request.topic!r}. Check the owner's reservations and delete the extra one.",
                    )
        if meeting is None:
            if plan.session_status != SessionStatus.PENDING_MEETING:
                return _give_up(plan, reason=f"The session was {plan.session_status} while its meeting was being made.")
            if plan.attempts_exhausted:
                return _attempt_failed(plan, error=None)
            meeting = manager.create_meeting(provider=plan.provider, request=plan.request)
    except TransientProviderError as error:
        logger.warning("saga.attempt_failed", extra={**log, "error": str(error), "retryable": True})
        return _attempt_failed(plan, error=error)
    except PermanentProviderError as error:
        logger.warning("saga.attempt_failed", extra={**log, "error": str(error), "retryable": False})
        return _give_up(plan, reason=_reason_refused(plan.provider, error))
    logger.info(
        "saga.meeting_created",
        extra={**log, "meetingId": str(meeting.id), "durationMs": _ms(started)},
    )
    return _meeting_stored(plan, meeting=meeting)


def _attempt_failed(plan: _CreatePlan, *, error: TransientProviderError | None) -> SagaStep:
    """A transient failure: wait and try again, or, out of attempts (or told to wait too long), give up."""
    message = str(error) if error else "no attempt left"
    too_long = error is not None and (error.retry_after or 0) > settings.SAGA_MAX_RETRY_AFTER_SECONDS
    with transaction.atomic():
        saga = _lock(plan.session_id)
        if saga.attempt_id != plan.attempt_id or saga.state != SagaState.CREATING:
            return DONE  # another worker took the saga over after our lease ran out
        if too_long or saga.attempts >= settings.SAGA_MAX_ATTEMPTS:
            reason = (
                _reason_rate_limited(plan.provider, error.retry_after)
                if too_long
                else _reason_gave_up(saga.session, message)
            )
            _move(saga, SagaState.COMPENSATING, attempt_id=None, last_error=message, compensation_reason=reason)
            step = None
        else:
            delay = saga_backoff(saga.attempts, retry_after=error.retry_after if error else None)
            _move(
                saga,
                SagaState.RETRY_WAIT,
                attempt_id=None,
                last_error=message,
                retry_at=timezone.now() + timedelta(seconds=delay),
            )
            step = SagaStep(retry_in=delay)
    if step is None:
        return _compensate(session_id=plan.session_id, event_id=plan.event_id)
    logger.info(
        "saga.retry_scheduled",
        extra={"sessionId": str(plan.session_id), "eventId": _str(plan.event_id), "retryIn": round(step.retry_in, 2)},
    )
    return step


def _give_up(plan: _CreatePlan, *, reason: str) -> SagaStep:
    with transaction.atomic():
        saga = _lock(plan.session_id)
        if saga.attempt_id != plan.attempt_id or saga.state != SagaState.CREATING:
            return DONE
        _move(saga, SagaState.COMPENSATING, attempt_id=None, last_error=reason, compensation_reason=reason)
    return _compensate(session_id=plan.session_id, event_id=plan.event_id)


def _meeting_stored(plan: _CreatePlan, *, meeting: Meeting) -> SagaStep:
    """Bind the meeting to the saga (first stored wins), then schedule the session with it."""
    with transaction.atomic():
        saga = _lock(plan.session_id)
        ours = saga.attempt_id == plan.attempt_id and saga.state == SagaState.CREATING and saga.meeting_id is None
        if ours:
            _move(saga, SagaState.MEETING_CREATED, meeting=meeting, attempt_id=None, last_error="")
        surplus = not ours and saga.meeting_id != meeting.id
    if surplus:
        # Our lease ran out mid-call and another worker's meeting was stored first: ours must not linger.
        _surplus_meeting_cancel(session_id=plan.session_id, meeting=meeting)
        return DONE
    return _backfill(session_id=plan.session_id, event_id=plan.event_id)


def _surplus_meeting_cancel(*, session_id: UUID, meeting: Meeting) -> None:
    try:
        MeetingManager().cancel_meeting(meeting_id=meeting.id)
    except ProviderError as error:
        with transaction.atomic():
            _manual_intervention_flag(
                _lock(session_id),
                f"A duplicate {meeting.provider} meeting {meeting.meeting_no or meeting.provider_meeting_id} "
                f"could not be cancelled: {error}. Cancel it at the provider.",
            )


def _backfill(*, session_id: UUID, event_id: UUID | None) -> SagaStep:
    """One transaction: the session SCHEDULED with its meeting, the link on every slot, the success event."""
    log = {"sessionId": str(session_id), "eventId": _str(event_id)}
    started = time.perf_counter()
    try:
        with transaction.atomic():
            saga = _lock(session_id, "meeting", "session")
            if saga.state != SagaState.MEETING_CREATED:
                return DONE
            moved_on = saga.session.status != SessionStatus.PENDING_MEETING
            if moved_on:
                # Cancelled while its meeting was being made: the meeting is not needed, and must not linger.
                reason = f"The session was {saga.session.status} while its meeting was being made."
                _move(saga, SagaState.COMPENSATING, compensation_reason=reason)
            else:
                meeting = saga.meeting
                session = session_transition(
                    session_id=session_id,
                    to=SessionStatus.SCHEDULED,
                    expected=SessionStatus.PENDING_MEETING,
                    meeting_id=meeting.id,
                )
                slots_attach_meeting(
                    slot_ids=session.slot_ids,
                    session_id=session.id,
                    meeting_id=meeting.id,
                    meeting_url=meeting.join_url,
                )
                _move(saga, SagaState.SUCCEEDED, finished_at=timezone.now())
                result = outbox_event_add(
                    type=session_type_get(session.session_type).result_event,
                    payload=meeting_result_payload(session=session, meeting=meeting, status="success"),
                )
    except Exception as error:  # noqa: BLE001 - whatever broke the backfill, the meeting must not be leaked
        logger.exception("saga.backfill_failed", extra={**log, "error": str(error)})
        with transaction.atomic():
            saga = _lock(session_id)
            if saga.state != SagaState.MEETING_CREATED:
                return DONE
            _move(
                saga,
                SagaState.COMPENSATING,
                last_error=f"backfill failed: {error}",
                compensation_reason=(
                    "The meeting was created but the session could not be scheduled with it"
                    + ("." if isinstance(error, InvalidState) else f": {error}.")
                ),
            )
        return _compensate(session_id=session_id, event_id=event_id)
    if moved_on:
        logger.info("saga.meeting_not_needed", extra={**log, "reason": saga.compensation_reason})
        return _compensate(session_id=session_id, event_id=event_id)
    saga_result_observed(saga=saga, session=session, status="success")
    logger.info(
        "session.scheduled",
        extra={
            **log,
            "resultEventId": str(result.id),
            "provider": meeting.provider,
            "meetingId": str(meeting.id),
            "durationMs": _ms(started),
            "sagaDurationMs": round((timezone.now() - saga.created_at).total_seconds() * 1000, 1),
        },
    )
    return DONE


def _compensate(*, session_id: UUID, event_id: UUID | None) -> SagaStep:
    """Cancel the meeting the saga made (retried), then give back the hold and the slots and fail the
    session. When the provider will not cancel, a person is asked to (manual intervention)."""
    log = {"sessionId": str(session_id), "eventId": _str(event_id)}
    with transaction.atomic():
        saga = _lock(session_id, "meeting")
        if saga.state != SagaState.COMPENSATING:
            return DONE
        meeting = saga.meeting
        cancel_needed = meeting is not None and meeting.status == MeetingStatus.ACTIVE
        if cancel_needed:
            _move(saga, SagaState.COMPENSATING, cancel_attempts=saga.cancel_attempts + 1)
    logger.info("saga.compensating", extra={**log, "reason": saga.compensation_reason})
    manual_reason = ""
    if cancel_needed:
        try:
            MeetingManager().cancel_meeting(meeting_id=meeting.id)
            logger.info("saga.meeting_cancelled", extra={**log, "provider": meeting.provider})
        except ProviderError as error:
            retryable = isinstance(error, TransientProviderError)
            if retryable and saga.cancel_attempts < settings.SAGA_CANCEL_MAX_ATTEMPTS:
                delay = saga_backoff(saga.cancel_attempts, retry_after=error.retry_after)
                with transaction.atomic():
                    _move(_lock(session_id), SagaState.COMPENSATING, last_error=f"meeting cancel failed: {error}")
                logger.warning("saga.meeting_cancel_failed", extra={**log, "error": str(error), "retryIn": delay})
                return SagaStep(retry_in=delay)
            manual_reason = (
                f"The {meeting.provider} meeting {meeting.meeting_no or meeting.provider_meeting_id} could not be "
                f"cancelled after {saga.cancel_attempts} attempt(s): {error}. Cancel it at the provider."
            )
    _compensation_finish(session_id=session_id, event_id=event_id, manual_reason=manual_reason)
    return DONE


def _compensation_finish(*, session_id: UUID, event_id: UUID | None, manual_reason: str) -> None:
    with transaction.atomic():
        saga = _lock(session_id)
        if saga.state != SagaState.COMPENSATING:
            return
        session = Session.objects.select_for_update().get(id=session_id)
        # A session cancelled while its meeting was being made did not fail: its saga was abandoned.
        outcome = "failed" if session.status == SessionStatus.PENDING_MEETING else "abandoned"
        if session.status == SessionStatus.PENDING_MEETING:
            session = session_transition(
                session_id=session_id,
                to=SessionStatus.MEETING_FAILED,
                expected=SessionStatus.PENDING_MEETING,
                failure_reason=saga.compensation_reason,
            )
            holds_release(session_id=session_id)
            slots_cancel(slot_ids=session.slot_ids)
            outbox_event_add(
                type=session_type_get(session.session_type).result_event,
                payload=meeting_result_payload(
                    session=session, meeting=None, status="failed", failure_reason=saga.compensation_reason
                ),
            )
        _move(saga, SagaState.FAILED, finished_at=timezone.now())
        if manual_reason:
            _manual_intervention_flag(saga, manual_reason)
    saga_result_observed(saga=saga, session=session, status=outcome)
    logger.warning(
        "saga.failed",
        extra={
            "sessionId": str(session_id),
            "eventId": _str(event_id),
            "provider": session.meeting_provider,
            "reason": saga.compensation_reason,
            "requiresManualIntervention": saga.requires_manual_intervention,
        },
    )


def saga_backoff(attempt: int, *, retry_after: float | None = None) -> float:
    """Exponential backoff with jitter (half to all of base * 2^(attempt-1), capped), never shorter than
    what the provider asked for."""
    ceiling = min(
        settings.SAGA_RETRY_BACKOFF_MAX_SECONDS, settings.SAGA_RETRY_BACKOFF_SECONDS * 2 ** max(attempt - 1, 0)
    )
    return max(random.uniform(ceiling / 2, ceiling), retry_after or 0.0)


def sagas_redrive_due(*, now=None, limit: int = 500) -> list[UUID]:
    """Sessions whose saga has made no progress for SAGA_STUCK_AFTER_SECONDS (a lost message, a dead
    worker): marked as re-driven now, so the next sweep waits another period before trying them again."""
    due = stuck_rows_claim(
        MeetingSaga, key="session_id", final_states=SAGA_FINAL_STATES, now=now or timezone.now(), limit=limit
    )
    if due:
        logger.warning("saga.sweep_redrive", extra={"count": len(due), "sessionIds": [str(s) for s in due[:20]]})
    return due


# --- the operators' actions on the manual-intervention queue ---------------------------------------------


def saga_meeting_cancel_retry(*, session_id: UUID, actor_id: UUID | None) -> bool:
    """Try the provider cancel of the saga's meeting again. On success the intervention is resolved."""
    saga = MeetingSaga.objects.select_related("meeting", "session").get(session_id=session_id)
    if saga.meeting is None or saga.session.status in (SessionStatus.SCHEDULED, SessionStatus.IN_PROGRESS):
        # A scheduled session's meeting is in use: cancelling it is the counselor's cancel, not a repair.
        return False
    try:
        MeetingManager().cancel_meeting(meeting_id=saga.meeting_id)
    except ProviderError as error:
        saga_last_error_note(session_id=session_id, error=f"meeting cancel retry failed: {error}")
        return False
    saga_resolve(session_id=session_id, actor_id=actor_id, note="The meeting was cancelled at the provider.")
    return True


def saga_last_error_note(*, session_id: UUID, error: str) -> None:
    """Keep what an operator's repair attempt ran into, for the next person who looks."""
    with transaction.atomic():
        saga = _lock(session_id)
        _move(saga, saga.state, last_error=error)
    logger.warning("saga.repair_failed", extra={"sessionId": str(session_id), "error": error})


def saga_resolve(*, session_id: UUID, actor_id: UUID | None, note: str, via: str = "admin") -> None:
    """A person dealt with it: the saga leaves the queue, with who, when and the note kept (and audited)."""
    with transaction.atomic():
        saga = _lock(session_id)
        if not saga.requires_manual_intervention:
            return
        actor = User.objects.filter(id=actor_id).first() if actor_id else None
        reason = saga.manual_intervention_reason
        _move(
            saga,
            saga.state,
            requires_manual_intervention=False,
            resolved_by=actor,
            resolved_at=timezone.now(),
            resolution_note=note,
        )
        audit_record(
            session_id=session_id,
            action=AuditAction.INTERVENTION_RESOLVED,
            actor=actor,
            via=via,
            before={"requiresManualIntervention": True, "reason": reason},
            after={"requiresManualIntervention": False, "note": note},
        )
    logger.info("saga.manual_intervention_resolved", extra={"sessionId": str(session_id), "actorId": _str(actor_id)})


# --- one place that moves the saga ---------------------------------------------------------------------


def _lock(session_id: UUID, *related: str) -> MeetingSaga:
    """The saga row, locked until the caller's transaction ends (the rows it joins are read, not locked)."""
    return (
        MeetingSaga.objects.select_for_update(of=("self",))
        .select_related(*(related or ("session",)))
        .get(session_id=session_id)
    )


def _move(saga: MeetingSaga, to: str, **fields: Any) -> None:
    """Set the saga's state and fields on the row locked by the caller (SAGA_TRANSITIONS says what may follow)."""
    state_move(saga, to, transitions=SAGA_TRANSITIONS, **fields)


def saga_manual_intervention_flag(*, session_id: UUID, reason: str) -> None:
    """Put the session's saga in the operators' queue with `reason` (added to any reason already there).
    Call inside the transaction that records what went wrong."""
    _manual_intervention_flag(_lock(session_id), reason)


def _manual_intervention_flag(saga: MeetingSaga, reason: str) -> None:
    reasons = saga.manual_intervention_reason if saga.requires_manual_intervention else ""
    _move(
        saga,
        saga.state,
        requires_manual_intervention=True,
        manual_intervention_reason="\n".join(filter(None, [reasons, reason])),
        manual_intervention_at=timezone.now(),
        resolved_by=None,
        resolved_at=None,
        resolution_note="",
    )
    logger.error("saga.manual_intervention", extra={"sessionId": str(saga.session_id), "reason": reason})


def _reason_gave_up(session: Session, last_error: str) -> str:
    return (
        f"The {session.get_meeting_provider_display()} meeting could not be created after "
        f"{settings.SAGA_MAX_ATTEMPTS} attempts ({last_error}). Retry when the provider is back."
    )


def _reason_refused(provider: str, error: ProviderError) -> str:
    return f"{provider.capitalize()} refused to create the meeting: {error}."


def _reason_rate_limited(provider: str, retry_after: float | None) -> str:
    return (
        f"{provider.capitalize()} rate-limited meeting creation for {round(retry_after or 0)} s; "
        f"retry later or book with the other provider."
    )


def _ms(started: float) -> float:
    return round((time.perf_counter() - started) * 1000, 1)


def _str(value: object | None) -> str | None:
    return str(value) if value is not None else None
