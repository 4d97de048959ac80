"""The meeting saga of a session (DESIGN.md phase two): create the meeting at the provider, schedule the
session with it, or give back everything the booking held.

The saga row (`MeetingSaga`) is a row of the provider-work engine (`booking_project.provider_work`): the truth;
Celery tasks only carry a session id to `saga_advance`, which reads the row and runs its steps as a loop over
`_STEPS` (create the meeting → schedule the session → or compensate). Every step is safe to run twice and from
several workers at once: each claims the row under a lock and changes it compare-and-set. No provider call is
ever made inside a transaction.

An answer that was lost (`OutcomeUnknownError`: a timeout, a reset, a gateway's 5xx) is not a failure: the
meeting may exist. The row remembers it (`outcome_unknown`), and the next attempt, or the compensation, first
looks for what may exist: a provider that takes an idempotency key (Feishu calendar) is simply asked again;
Zoom lists the host's meetings and the one carrying the session's marker is adopted or cancelled; a Feishu
reservation, which cannot be looked up, is flagged for a person with its owner, time and topic.

The operators' repairs on the manual-intervention queue live in `sessions_app.repairs`.
"""

import hashlib
import logging
import time
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any
from uuid import UUID

from django.conf import settings
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from accounts_app.selectors import meeting_host_id_for
from booking_project.errors import InvalidState
from booking_project.metrics import saga_result_observed
from booking_project.provider_work import (
    DONE,
    WorkKind,
    WorkStep,
    attempt_lease_held,
    attempt_open,
    client_ready,
    needs_person_flag,
    not_before_in,
    retry_after_too_long,
    step_loop,
    wait_step,
    work_backoff,
    work_kind_register,
    work_move,
    work_run,
)
from calendar_app.services import slots_attach_meeting, slots_cancel
from holds_app.services import holds_release
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
    SAGA_FINAL_STATES,
    SAGA_TRANSITIONS,
    MeetingSaga,
    OutboxEvent,
    SagaState,
    Session,
    SessionStatus,
)
from sessions_app.outbox import outbox_event_add
from sessions_app.payloads import meeting_result_payload
from sessions_app.transitions import session_transition
from sessions_app.types import session_type_get

logger = logging.getLogger(__name__)


# What the courier does next: nothing, or run the saga again in `retry_in` seconds (the engine's WorkStep).
SagaStep = WorkStep


@dataclass(frozen=True)
class _CreatePlan:
    session_id: UUID
    event_id: UUID | None
    attempt_id: UUID
    provider: str
    request: MeetingRequest
    # The previous attempt's answer was lost (a timeout, a worker that died mid-call): the meeting may exist.
    recovering: bool
    # No attempt is left: only a meeting the dead worker made may still be adopted.
    attempts_exhausted: bool
    # The session's status when the attempt opened: a meeting is only ever made for a PENDING_MEETING one.
    session_status: str


def saga_start(*, session: Session, event: OutboxEvent) -> MeetingSaga:
    """The saga row of a newly booked session. Call in the booking transaction."""
    saga = saga_new(session=session, event=event)
    saga.save(force_insert=True)
    return saga


def saga_new(*, session: Session, event: OutboxEvent) -> MeetingSaga:
    """The unsaved saga row of a newly booked session, for a booking written in one statement."""
    return MeetingSaga(session=session, event_id=event.id)


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
        not_before=None,
        outcome_unknown=False,
        leftover_check_after=None,
        unexpected_errors=0,
        meeting=None,
        compensation_reason="",
        cancel_attempts=0,
        last_error="",
        finished_at=None,
        last_driven_at=None,
    )


def saga_advance(*, session_id: UUID, event_id: UUID | None = None) -> SagaStep:
    """Do the next steps of the session's saga. `event_id` is the `session.created` event being handled;
    without it (a re-drive) the saga continues from wherever it stands."""
    run = _Run(session_id=session_id, event_id=event_id)
    return work_run(SAGA_WORK, session_id, lambda: _provider_ready(run) or step_loop(_claim(run), _STEPS, run))


def _provider_ready(run: "_Run") -> None:
    """The provider's token before the attempt is claimed (the lease counts from the call, not the token)."""
    provider = Session.objects.filter(id=run.session_id).values_list("meeting_provider", flat=True).first()
    if provider:
        client_ready(meeting_provider_client(provider), operation="create")


@dataclass
class _Run:
    """One run of the saga's loop: which session, which event, and the create attempt the claim opened."""

    session_id: UUID
    event_id: UUID | None
    plan: "_CreatePlan | None" = field(default=None)


def _claim(run: _Run) -> "str | SagaStep":
    """Under the saga row's lock, decide the first step; for a create, commit the attempt before the call."""
    session_id, event_id = run.session_id, run.event_id
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
            return DONE
        if event_id is not None and saga.event_id != event_id:
            logger.info("saga.event_ignored", extra={**log, "reason": "not this round's event"})
            return DONE
        if saga.state in SAGA_FINAL_STATES:
            logger.info("saga.event_ignored", extra={**log, "reason": f"saga already {saga.state}"})
            return DONE
        if saga.state in (SagaState.COMPENSATING, SagaState.MEETING_CREATED, SagaState.CHECKING_LEFTOVERS):
            return saga.state
        now = timezone.now()
        if saga.state == SagaState.RETRY_WAIT and saga.not_before and saga.not_before > now:
            # Early (a duplicate message, a cancel driving the saga): the backoff, or the provider's
            # Retry-After, is honoured whoever asks.
            return wait_step((saga.not_before - now).total_seconds())
        attempt_left_open = saga.state == SagaState.CREATING
        if attempt_left_open and attempt_lease_held(saga, now=now):
            # Another worker is calling the provider right now (a duplicate delivery): it finishes the step.
            logger.info("saga.busy", extra=log)
            return DONE
        session = saga.session
        # An attempt left open by a worker that died mid-call is an answer lost like any other.
        outcome_unknown = saga.outcome_unknown or attempt_left_open
        if session.status != SessionStatus.PENDING_MEETING and not outcome_unknown:
            # The session moved on (cancelled) before any meeting was asked for: nothing to make or undo.
            _move(saga, SagaState.FAILED, finished_at=now, last_error=f"session {session.status} before provisioning")
            return DONE
        exhausted = saga.attempts >= settings.SAGA_MAX_ATTEMPTS
        if (exhausted or session.status != SessionStatus.PENDING_MEETING) and not attempt_left_open:
            # Out of attempts (or no longer wanted), an unknown outcome included: compensation looks for it.
            reason = (
                _reason_gave_up(session, saga.last_error)
                if session.status == SessionStatus.PENDING_MEETING
                else _reason_moved_on(session.status)
            )
            _move(saga, SagaState.COMPENSATING, compensation_reason=reason, outcome_unknown=outcome_unknown)
            return SagaState.COMPENSATING
        attempt_id = attempt_open(
            saga,
            SagaState.CREATING,
            transitions=SAGA_TRANSITIONS,
            now=now,
            counted=not exhausted,
            not_before=None,
            outcome_unknown=outcome_unknown,
            leftover_check_after=_leftover_check_after(saga, now) if attempt_left_open else saga.leftover_check_after,
        )
    logger.info(
        "saga.attempt_started",
        extra={**log, "provider": session.meeting_provider, "attempt": saga.attempts, "recovering": outcome_unknown},
    )
    run.plan = _CreatePlan(
        session_id=session_id,
        event_id=event_id,
        attempt_id=attempt_id,
        provider=session.meeting_provider,
        request=meeting_request_for(session, saga_round=saga.round),
        recovering=outcome_unknown,
        attempts_exhausted=exhausted,
        session_status=session.status,
    )
    return SagaState.CREATING


def meeting_request_for(session: Session, *, host_id: str | None = None, saga_round: int = 1) -> MeetingRequest:
    """What the provider is asked for the session: its topic and time, hosted by `host_id` (by default
    the mentor's account at the provider). The idempotency key is the same for every attempt of one saga round
    and differs between rounds (a retried session gets a new meeting)."""
    return MeetingRequest(
        reference=str(session.id),
        topic=session.topic,
        start_time=session.scheduled_at,
        duration_minutes=session.duration_minutes,
        host_id=host_id or meeting_host_id_for(user_id=session.mentor_id, provider=session.meeting_provider),
        idempotency_key=str(
            uuid.UUID(bytes=hashlib.sha256(f"meeting:{session.id}:{saga_round}".encode()).digest()[:16])
        ),
    )


def _meeting_create(run: _Run) -> "str | SagaStep":
    """Ask the provider for the meeting, after looking for the one a lost answer may have made."""
    plan = run.plan
    manager = MeetingManager()
    client = meeting_provider_client(plan.provider)
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
        if plan.recovering and not client.repeat_create_is_safe:
            meeting = manager.find_meeting(provider=plan.provider, request=plan.request)
            if meeting is not None:
                logger.info("saga.meeting_adopted", extra={**log, "meetingId": str(meeting.id)})
            elif not client.can_find_by_reference:
                # Flagged at once: whatever happens to this attempt, a person must check the provider.
                with transaction.atomic():
                    _manual_intervention_flag(_lock(plan.session_id), _reason_maybe_left_behind(plan))
        if meeting is None:
            if plan.session_status != SessionStatus.PENDING_MEETING:
                return _give_up(plan, reason=_reason_moved_on(plan.session_status))
            if plan.attempts_exhausted:
                return _attempt_failed(plan, error=None)
            # With an idempotency key (Feishu calendar), a repeat after a lost answer is the lookup itself.
            meeting = manager.create_meeting(provider=plan.provider, request=plan.request)
    except TransientProviderError as error:
        unknown = isinstance(error, OutcomeUnknownError)
        logger.warning(
            "saga.attempt_failed", extra={**log, "error": str(error), "retryable": True, "outcomeUnknown": unknown}
        )
        return _attempt_failed(plan, error=error)
    except PermanentProviderError as error:
        logger.warning("saga.attempt_failed", extra={**log, "error": str(error), "retryable": False})
        return _give_up(plan, reason=_reason_refused(plan.provider, error))
    logger.info(
        "saga.meeting_created",
        extra={**log, "meetingId": str(meeting.id), "durationMs": _ms(started)},
    )
    return _meeting_stored(plan, meeting=meeting)


def _attempt_failed(plan: _CreatePlan, *, error: TransientProviderError | None) -> "str | SagaStep":
    """A failure worth another attempt: wait and try again, or, out of attempts (or told to wait too long),
    compensate. A lost answer is remembered, so whoever acts next looks for the meeting first."""
    message = str(error) if error else "no attempt left"
    too_long = retry_after_too_long(error)
    unknown = isinstance(error, OutcomeUnknownError)
    with transaction.atomic():
        saga = _lock(plan.session_id)
        if saga.attempt_id != plan.attempt_id or saga.state != SagaState.CREATING:
            return DONE  # another worker took the saga over after our lease ran out
        outcome_unknown = saga.outcome_unknown or unknown
        if too_long or saga.attempts >= settings.SAGA_MAX_ATTEMPTS:
            reason = (
                _reason_rate_limited(plan.provider, error.retry_after)
                if too_long
                else _reason_gave_up(saga.session, message)
            )
            _move(
                saga,
                SagaState.COMPENSATING,
                attempt_id=None,
                last_error=message,
                compensation_reason=reason,
                outcome_unknown=outcome_unknown,
            )
            return SagaState.COMPENSATING
        delay = work_backoff(saga.attempts, retry_after=error.retry_after if error else None)
        _move(
            saga,
            SagaState.RETRY_WAIT,
            attempt_id=None,
            last_error=message,
            not_before=not_before_in(delay),
            outcome_unknown=outcome_unknown,
            leftover_check_after=_leftover_check_after(saga, timezone.now()) if unknown else saga.leftover_check_after,
        )
    logger.info(
        "saga.retry_scheduled",
        extra={"sessionId": str(plan.session_id), "eventId": _str(plan.event_id), "retryIn": round(delay, 2)},
    )
    return wait_step(delay)


def _give_up(plan: _CreatePlan, *, reason: str) -> "str | SagaStep":
    with transaction.atomic():
        saga = _lock(plan.session_id)
        if saga.attempt_id != plan.attempt_id or saga.state != SagaState.CREATING:
            return DONE
        _move(saga, SagaState.COMPENSATING, attempt_id=None, last_error=reason, compensation_reason=reason)
    return SagaState.COMPENSATING


def _meeting_stored(plan: _CreatePlan, *, meeting: Meeting) -> "str | SagaStep":
    """Bind the meeting to the saga, then schedule the session with it. The first meeting stored wins, whichever
    attempt made it: an answer that comes back after our lease ran out (another worker took the attempt over and
    may be looking for this very meeting) is still the session's meeting while the saga has none; only a meeting
    beyond the one bound is surplus, and cancelled."""
    with transaction.atomic():
        saga = _lock(plan.session_id)
        unbound = saga.meeting_id is None
        if unbound and saga.state in (SagaState.CREATING, SagaState.RETRY_WAIT):
            _move(
                saga, SagaState.MEETING_CREATED, meeting=meeting, attempt_id=None, last_error="", outcome_unknown=False
            )
            return SagaState.MEETING_CREATED
        if unbound and saga.state == SagaState.COMPENSATING:
            # Given up meanwhile: the compensation now knows the meeting, and cancels it.
            _move(saga, SagaState.COMPENSATING, meeting=meeting, outcome_unknown=False)
            return SagaState.COMPENSATING
        surplus = saga.meeting_id != meeting.id
    if surplus:
        # Another attempt's meeting was stored first (or the saga is over): ours must not linger.
        _surplus_meeting_cancel(session_id=plan.session_id, meeting=meeting)
        return DONE
    return SagaState.MEETING_CREATED


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


def _backfill(run: _Run) -> "str | SagaStep":
    """One transaction: the session SCHEDULED with its meeting, the link on every slot, the success event."""
    session_id, event_id = run.session_id, run.event_id
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
                _move(saga, SagaState.COMPENSATING, compensation_reason=_reason_moved_on(saga.session.status))
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
                now = timezone.now()
                if _leftovers_to_check(saga, meeting.provider):
                    # Scheduled now; the lookup for a meeting the lost call may still make waits a little.
                    _move(saga, SagaState.CHECKING_LEFTOVERS, finished_at=now, not_before=saga.leftover_check_after)
                else:
                    _move(saga, SagaState.SUCCEEDED, finished_at=now)
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
        return SagaState.COMPENSATING
    if moved_on:
        logger.info("saga.meeting_not_needed", extra={**log, "reason": saga.compensation_reason})
        return SagaState.COMPENSATING
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
    if saga.state == SagaState.CHECKING_LEFTOVERS:
        return SagaState.CHECKING_LEFTOVERS
    return DONE


def _leftover_check_after(saga: MeetingSaga, now) -> "datetime":
    """When a lost create will have landed if it ever does: SAGA_LEFTOVER_SETTLE_SECONDS from now (the latest
    of every lost answer of the round)."""
    moment = now + timedelta(seconds=settings.SAGA_LEFTOVER_SETTLE_SECONDS)
    return max(moment, saga.leftover_check_after) if saga.leftover_check_after else moment


def _leftovers_to_check(saga: MeetingSaga, provider: str) -> bool:
    """A create's answer was lost this round, and the provider can be searched for what that call made."""
    return saga.leftover_check_after is not None and meeting_provider_client(provider).can_find_by_reference


def _leftovers_check(run: _Run) -> SagaStep:
    """The session is scheduled with its meeting, but a create whose answer was lost may have landed at the
    provider after our lookup (a provider finishes what it was asked even when the caller gave up): once that
    call has had time to land, look again and cancel any other meeting carrying the session's marker."""
    log = {"sessionId": str(run.session_id), "eventId": _str(run.event_id)}
    with transaction.atomic():
        saga = _lock(run.session_id, "meeting", "session")
        if saga.state != SagaState.CHECKING_LEFTOVERS:
            return DONE
        wait = (saga.not_before - timezone.now()).total_seconds() if saga.not_before else 0
        if wait > 0:
            return wait_step(wait)
        _move(saga, SagaState.CHECKING_LEFTOVERS, cancel_attempts=saga.cancel_attempts + 1)
    meeting, session = saga.meeting, saga.session
    request = meeting_request_for(session, host_id=meeting.host_id, saga_round=saga.round)
    try:
        cancelled = MeetingManager().extras_cancel(
            provider=meeting.provider, request=request, keep=meeting.provider_meeting_id
        )
    except ProviderError as error:
        later = _provider_call_retry(saga, SagaState.CHECKING_LEFTOVERS, error, failed="leftover check failed")
        if later is not None:
            return later
        with transaction.atomic():
            locked = _lock(run.session_id)
            _manual_intervention_flag(
                locked,
                f"A {meeting.provider} answer was lost while the meeting was being made, and the provider could "
                f"not be searched for a second meeting ({error}). " + _leftover_description(session),
            )
            _move(locked, SagaState.SUCCEEDED, leftover_check_after=None, not_before=None)
        return DONE
    with transaction.atomic():
        _move(_lock(run.session_id), SagaState.SUCCEEDED, leftover_check_after=None, not_before=None)
    logger.info("saga.leftovers_checked", extra={**log, "provider": meeting.provider, "cancelled": cancelled})
    return DONE


def _provider_call_retry(saga: MeetingSaga, state: str, error: ProviderError, *, failed: str) -> SagaStep | None:
    """After a cancel or a lookup of the saga failed: look again after the backoff (`cancel_attempts` counts
    them), or None when it may not be retried (refused, or SAGA_CANCEL_MAX_ATTEMPTS spent) and a person must."""
    if not isinstance(error, TransientProviderError) or saga.cancel_attempts >= settings.SAGA_CANCEL_MAX_ATTEMPTS:
        return None
    delay = work_backoff(saga.cancel_attempts, retry_after=error.retry_after)
    with transaction.atomic():
        _move(_lock(saga.session_id), state, last_error=f"{failed}: {error}", not_before=not_before_in(delay))
    return wait_step(delay)


def _compensate(run: _Run) -> SagaStep:
    """Cancel the meeting the saga made (retried) — or, when an answer was lost, the one it may have made —
    then give back the hold and the slots and fail the session. When the provider will not cancel, or nobody
    can tell whether a meeting was left, a person is asked to look (manual intervention)."""
    session_id, event_id = run.session_id, run.event_id
    log = {"sessionId": str(session_id), "eventId": _str(event_id)}
    with transaction.atomic():
        saga = _lock(session_id, "meeting", "session")
        if saga.state != SagaState.COMPENSATING:
            return DONE
        meeting = saga.meeting
        cancel_needed = meeting is not None and meeting.status == MeetingStatus.ACTIVE
        look_first = meeting is None and saga.outcome_unknown
        if cancel_needed or look_first:
            _move(saga, SagaState.COMPENSATING, cancel_attempts=saga.cancel_attempts + 1)
        session = saga.session
    logger.info("saga.compensating", extra={**log, "reason": saga.compensation_reason, "lookFirst": look_first})
    manual_reason = ""
    try:
        if look_first:
            manual_reason = _leftover_cancel(saga, session)
        elif cancel_needed:
            MeetingManager().cancel_meeting(meeting_id=meeting.id)
            logger.info("saga.meeting_cancelled", extra={**log, "provider": meeting.provider})
    except ProviderError as error:
        later = _provider_call_retry(saga, SagaState.COMPENSATING, error, failed="meeting cancel failed")
        if later is not None:
            logger.warning("saga.meeting_cancel_failed", extra={**log, "error": str(error), "retryIn": later.retry_in})
            return later
        if meeting is not None:
            manual_reason = (
                f"The {meeting.provider} meeting {meeting.meeting_no or meeting.provider_meeting_id} could not be "
                f"cancelled after {saga.cancel_attempts} attempt(s): {error}. Cancel it at the provider."
            )
        else:
            manual_reason = (
                f"An answer from {session.meeting_provider} was lost, and after {saga.cancel_attempts} attempt(s) "
                f"nobody could check whether a meeting was made ({error}). " + _leftover_description(session)
            )
    _compensation_finish(session_id=session_id, event_id=event_id, manual_reason=manual_reason)
    return DONE


def _leftover_cancel(saga: MeetingSaga, session: Session) -> str:
    """Cancel the meeting a lost answer may have made; the reason to ask a person when nobody can tell."""
    request = meeting_request_for(session, saga_round=saga.round)
    log = {"sessionId": str(session.id), "provider": session.meeting_provider}
    if not request.host_id:
        return ""  # no account could host it: no call was ever sent
    try:
        cancelled = MeetingManager().leftover_cancel(provider=session.meeting_provider, request=request)
    except ValueError:
        logger.warning("saga.leftover_unknown", extra=log)
        return _reason_maybe_left_behind_of(session.meeting_provider, request)
    logger.info("saga.leftover_checked", extra={**log, "cancelled": cancelled})
    return ""


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
        _move(
            saga,
            SagaState.FAILED,
            finished_at=timezone.now(),
            outcome_unknown=bool(manual_reason and saga.outcome_unknown),
        )
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
    """The engine's one backoff (kept under the saga's name for its callers)."""
    return work_backoff(attempt, retry_after=retry_after)


def sagas_redrive_due(*, now=None, limit: int = 500) -> list[UUID]:
    """Sessions whose saga has made no progress for SAGA_STUCK_AFTER_SECONDS (a lost message, a dead
    worker) or whose wait has come: marked as re-driven now (the engine's sweep)."""
    from booking_project.provider_work import rows_due_claim

    return rows_due_claim(SAGA_WORK, now=now or timezone.now(), limit=limit)


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
    work_move(saga, to, transitions=SAGA_TRANSITIONS, **fields)


def saga_manual_intervention_flag(*, session_id: UUID, reason: str) -> None:
    """Put the session's saga in the operators' queue with `reason` (added to any reason already there).
    Call inside the transaction that records what went wrong."""
    _manual_intervention_flag(_lock(session_id), reason)


def _manual_intervention_flag(saga: MeetingSaga, reason: str) -> None:
    needs_person_flag(saga, transitions=SAGA_TRANSITIONS, reason=reason)
    logger.error("saga.manual_intervention", extra={"sessionId": str(saga.session_id), "reason": reason})


def _reason_gave_up(session: Session, last_error: str) -> str:
    return (
        f"The {session.get_meeting_provider_display()} meeting could not be created after "
        f"{settings.SAGA_MAX_ATTEMPTS} attempts ({last_error}). Retry when the provider is back."
    )


def _reason_moved_on(status: str) -> str:
    return f"The session was {status} while its meeting was being made."


def _reason_maybe_left_behind(plan: _CreatePlan) -> str:
    return _reason_maybe_left_behind_of(plan.provider, plan.request)


def _reason_maybe_left_behind_of(provider: str, request: MeetingRequest) -> str:
    return (
        f"A {provider} reservation may have been left behind by a call whose answer was lost: "
        f"owner {request.host_id}, end time {request.end_time.isoformat()}, topic {request.topic!r}. "
        "Check the owner's reservations and delete the extra one."
    )


def _leftover_description(session: Session) -> str:
    return (
        f"Check the provider for a meeting with topic {session.topic!r} at {session.scheduled_at.isoformat()} "
        "and cancel it."
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


def _saga_give_up(session_id: UUID, reason: str) -> None:
    """The engine's end for a saga that kept failing on something other than a provider: compensate it (the
    compensation looks for a meeting a lost answer may have made), and have a person look."""
    with transaction.atomic():
        saga = _lock(session_id)
        if saga.state in SAGA_FINAL_STATES:
            return
        if saga.state != SagaState.COMPENSATING:
            # A create cut short by the error may have reached the provider.
            unknown = saga.outcome_unknown or saga.state == SagaState.CREATING
            _move(saga, SagaState.COMPENSATING, attempt_id=None, compensation_reason=reason, outcome_unknown=unknown)
            return_to_compensation = True
        else:
            return_to_compensation = False
    if return_to_compensation:
        try:
            _compensate(_Run(session_id=session_id, event_id=None))
            return
        except Exception as error:  # noqa: BLE001 - the compensation itself breaks: only a person is left
            reason = f"{reason} Compensating failed too: {type(error).__name__}: {error}"
    with transaction.atomic():
        _manual_intervention_flag(_lock(session_id), reason)


def _redrive(session_ids: list[UUID], *, countdown: float = 0.0) -> None:
    from sessions_app.tasks import provision_meeting

    for session_id in session_ids:
        provision_meeting.apply_async(kwargs={"session_id": str(session_id)}, countdown=countdown or None)


def _calls_provider(provider: str) -> Q:
    """Sagas whose next step would call `provider`: every unfinished one of its sessions but a meeting being
    stored (the backfill calls nobody)."""
    return Q(session__meeting_provider=provider) & ~Q(state=SagaState.MEETING_CREATED)


_STEPS = {
    SagaState.CREATING: _meeting_create,
    SagaState.MEETING_CREATED: _backfill,
    SagaState.CHECKING_LEFTOVERS: _leftovers_check,
    SagaState.COMPENSATING: _compensate,
}

SAGA_WORK = work_kind_register(
    WorkKind(
        name="meeting_saga",
        label="meeting provisioning",
        model=MeetingSaga,
        key="session_id",
        final_states=SAGA_FINAL_STATES,
        redrive=_redrive,
        give_up=_saga_give_up,
        stuck_after=lambda: settings.SAGA_STUCK_AFTER_SECONDS,
        needs_person={"requires_manual_intervention": True},
        calls_provider=_calls_provider,
    )
)
