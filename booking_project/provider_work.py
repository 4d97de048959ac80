"""The provider-work engine: one life for every call we make to someone else's system (DESIGN.md "One way to
call the outside world").

Each piece of work is a row (`ProviderWorkRow`: the meeting saga, a meeting operation, a participant's calendar
event, an email, a reminder). The row is the truth; a Celery message only says "look at this row now", so a
lost message costs a delay, never the work. What every kind shares lives here, once:

- moving the row's state under the lock its caller holds, refusing a move its transition table does not allow;
- the attempt: claimed compare-and-set with a lease before the provider is called (an attempt found open after
  its lease belongs to a worker that died mid-call); the token is fetched before the claim, so the lease
  counts from the provider call, not from the wait for a token;
- the wait: one backoff (jitter, `Retry-After` honoured, one cap), kept as the row's `not_before`; a Celery
  countdown is used only for waits shorter than PROVIDER_WORK_MAX_COUNTDOWN_SECONDS, far below the broker's
  visibility timeout, and the sweep wakes a row whose `not_before` has come;
- the sweep: every registered kind's unfinished rows with no progress are re-driven, whatever happened to
  their messages; rows are claimed with SKIP LOCKED so two beats never re-drive one row twice;
- a step that raises something other than a provider answer (a bug, a value the database refuses) is logged
  with the row's id, counted, retried a bounded number of times, then handed to the kind's `give_up`;
- one manual-intervention surface: the rows that need a person, of every kind, with one metric;
- the pause: while an operator has paused a provider (an outage), a row whose work would call it waits before any
  attempt is opened (none spent, its give-up clock untouched), and resuming wakes the waiting rows at a bounded
  rate (`work_run`, `paused_work_wake`).

Nothing here knows a domain: each app registers its kinds (`work_kind_register`) in the module that drives
them, which its AppConfig.ready imports.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable, Collection, Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import reduce
from operator import or_
from typing import Any, TypeVar

from django.conf import settings
from django.db import models, transaction
from django.db.models import F, Q
from django.db.models.functions import Greatest
from django.utils import timezone

from booking_project.errors import InvalidState
from booking_project.providers.http import backoff_seconds
from booking_project.providers.outcomes import ProviderError

logger = logging.getLogger(__name__)

T = TypeVar("T")


class ProviderWorkRow(models.Model):
    """What every row driving provider calls keeps besides its own `state` (moved by `work_move`)."""

    attempts = models.PositiveSmallIntegerField(default=0)
    # The open provider call, committed before the call is made: found open after its lease, it means a worker
    # died mid-call (what it asked for may exist at the provider), and another worker may take it over.
    attempt_id = models.UUIDField(null=True, blank=True)
    attempt_started_at = models.DateTimeField(null=True, blank=True)
    # The row waits until then (backoff after a failure, a provider's Retry-After); the sweep wakes it.
    not_before = models.DateTimeField(null=True, blank=True)
    # The last call's answer was lost (a timeout, a reset, a gateway's 5xx): what it asked for may exist, so
    # the next attempt and any compensation look for it before acting again.
    outcome_unknown = models.BooleanField(default=False)
    # Errors that were not a provider's answer (a bug, a value the database refused), bounded by
    # PROVIDER_WORK_MAX_UNEXPECTED_ERRORS before the work gives up.
    unexpected_errors = models.PositiveSmallIntegerField(default=0)
    last_error = models.TextField(blank=True)
    # When the sweep last re-drove the row, so it re-drives a stuck one once per period, not every tick.
    last_driven_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        abstract = True


class NeedsPersonRow(models.Model):
    """The one manual-intervention surface: work that gave up asks a person with a reason, and keeps who dealt
    with it, when, and how (`needs_person_flag`, `needs_person_resolve`)."""

    requires_manual_intervention = models.BooleanField(default=False)
    manual_intervention_reason = models.TextField(blank=True)
    manual_intervention_at = models.DateTimeField(null=True, blank=True)
    resolved_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    resolved_at = models.DateTimeField(null=True, blank=True)
    resolution_note = models.TextField(blank=True)

    class Meta:
        abstract = True


def needs_person_flag(
    row: Any, *, transitions: Mapping[str, Collection[str]], reason: str, to: str | None = None, **fields: Any
) -> None:
    """Ask a person about the row (locked by the caller), `reason` added to any reason still open; `to` moves
    its state at the same time (the work gave up)."""
    reasons = row.manual_intervention_reason if row.requires_manual_intervention else ""
    if reason in reasons.split("\n"):
        reason = ""  # asked already, and not yet answered
    work_move(
        row,
        to or row.state,
        transitions=transitions,
        requires_manual_intervention=True,
        manual_intervention_reason="\n".join(filter(None, [reasons, reason])),
        manual_intervention_at=timezone.now(),
        resolved_by=None,
        resolved_at=None,
        resolution_note="",
        **fields,
    )


def needs_person_resolve(row: Any, *, transitions: Mapping[str, Collection[str]], actor: Any, note: str) -> bool:
    """A person dealt with the row (locked by the caller): it leaves the queue with who, when and the note.
    False when it was not waiting for anyone."""
    if not row.requires_manual_intervention:
        return False
    work_move(
        row,
        row.state,
        transitions=transitions,
        requires_manual_intervention=False,
        resolved_by=actor,
        resolved_at=timezone.now(),
        resolution_note=note,
    )
    return True


@dataclass(frozen=True)
class WorkStep:
    """What the courier should do next: nothing, or look at the row again in `retry_in` seconds. A wait too
    long for a Celery countdown comes back as None: the row's `not_before` holds it and the sweep wakes it."""

    retry_in: float | None = None


DONE = WorkStep()


@dataclass(frozen=True)
class WorkKind:
    """A kind of provider work, as an app registers it."""

    name: str
    model: type[models.Model]
    final_states: frozenset[str]
    # Sends the couriers for these rows (by `key`) now, or `countdown` seconds from now; the row decides what
    # happens.
    redrive: Callable[..., None]
    # Ends the work for good after too many unexpected errors: compensate, or flag for a person.
    give_up: Callable[[Any, str], None]
    # Seconds without progress after which the sweep re-drives a row of this kind.
    stuck_after: Callable[[], float]
    key: str = "pk"
    # Which rows a person must look at (None: this kind asks a person through another kind's row).
    needs_person: Mapping[str, Any] | None = None
    label: str = ""
    # The rows whose next step would call `provider` (a pausable one): they wait while it is paused. None: this
    # kind never calls a pausable provider.
    calls_provider: Callable[[str], Q] | None = None


WORK_KINDS: dict[str, WorkKind] = {}


def work_kind_register(kind: WorkKind) -> WorkKind:
    WORK_KINDS[kind.name] = kind
    return kind


def work_move(row: models.Model, to: str, *, transitions: Mapping[str, Collection[str]], **fields: Any) -> None:
    """Set the row's state and fields (the caller holds its lock). Refuses a move its table does not allow."""
    if to != row.state and to not in transitions[row.state]:
        raise InvalidState(f"A {row._meta.verbose_name} cannot go from {row.state} to {to}.")
    row.state = to
    for name, value in fields.items():
        setattr(row, name, value)
    row.save(update_fields=["state", "updated_at", *fields])


def attempt_open(
    row: ProviderWorkRow,
    to: str,
    *,
    transitions: Mapping[str, Collection[str]],
    now: datetime,
    counted: bool = True,
    **fields: Any,
) -> uuid.UUID:
    """Open an attempt on the row (locked by the caller, committed before the provider is called): its id, which
    every later step compares before it records an answer, and its lease from `now`. `counted=False` re-opens a
    taken-over attempt without spending one."""
    attempt_id = uuid.uuid4()
    work_move(
        row,
        to,
        transitions=transitions,
        attempt_id=attempt_id,
        attempt_started_at=now,
        attempts=row.attempts + (1 if counted else 0),
        **fields,
    )
    return attempt_id


def attempt_lease_held(row: ProviderWorkRow, *, now: datetime) -> bool:
    """Whether the row's open provider call is younger than its lease: a worker is still on it."""
    return row.attempt_started_at is not None and row.attempt_started_at > now - timedelta(
        seconds=settings.SAGA_ATTEMPT_LEASE_SECONDS
    )


def client_ready(client: Any, *, operation: str) -> None:
    """Have the client's access token ready before an attempt is claimed. The lease of an attempt counts from
    its provider call: a token endpoint that stalls holds up only the callers waiting for that token, with no
    attempt open, so no lease runs out during the wait and no live work is taken over as dead. A token that
    cannot be had now is left to the call itself, which meets the same answer and classifies it."""
    try:
        client.prepare(operation=operation)
    except ProviderError as error:
        logger.info("provider_work.token_not_ready", extra={"operation": operation, "error": str(error)[:300]})


def work_backoff(attempt: int, *, retry_after: float | None = None) -> float:
    """The one backoff of every provider work (settings SAGA_RETRY_BACKOFF_*)."""
    return backoff_seconds(
        attempt,
        base=settings.SAGA_RETRY_BACKOFF_SECONDS,
        ceiling=settings.SAGA_RETRY_BACKOFF_MAX_SECONDS,
        retry_after=retry_after,
    )


def retry_after_too_long(error: BaseException | None) -> bool:
    """Whether a provider asked us to wait longer than the one cap (SAGA_MAX_RETRY_AFTER_SECONDS)."""
    retry_after = getattr(error, "retry_after", None) or 0
    return retry_after > settings.SAGA_MAX_RETRY_AFTER_SECONDS


def wait_step(delay: float) -> WorkStep:
    """The courier's next look after `delay` seconds, or none when the delay is too long for a countdown (the
    row's `not_before` holds it then and the sweep wakes it)."""
    return WorkStep(retry_in=delay) if delay <= settings.PROVIDER_WORK_MAX_COUNTDOWN_SECONDS else DONE


def not_before_in(delay: float) -> datetime:
    return timezone.now() + timedelta(seconds=delay)


def work_run(kind: WorkKind, key: Any, step: Callable[[], WorkStep]) -> WorkStep:
    """Run one step of a row's work. A provider's answer is the step's to handle; anything else raised (a bug,
    a value the database refuses) is logged with the row's id, counted, and retried with backoff up to
    PROVIDER_WORK_MAX_UNEXPECTED_ERRORS times; then the kind gives the work up (compensates or flags it), so
    no row stays unfinished for ever re-raising on every sweep.

    Before anything, a row whose work would call a provider an operator has paused waits (`_paused_wait`): no
    attempt is opened, and the step does not run."""
    if _paused_wait(kind, key):
        return DONE
    try:
        return step()
    except ProviderError:
        raise
    except Exception as error:  # noqa: BLE001 - bounded here, then handed to the kind's give_up
        return _unexpected_error(kind, key, error)


def _unexpected_error(kind: WorkKind, key: Any, error: Exception) -> WorkStep:
    from booking_project.metrics import provider_work_unexpected_error_observed

    message = f"{type(error).__name__}: {str(error)[:500]}"
    logger.exception("provider_work.unexpected_error", extra={"kind": kind.name, "rowId": str(key), "error": message})
    provider_work_unexpected_error_observed(kind=kind.name)
    filters = {kind.key: key}
    with transaction.atomic():
        row = kind.model.objects.select_for_update(of=("self",)).filter(**filters).first()
        if row is None or row.state in kind.final_states:
            return DONE
        count = row.unexpected_errors + 1
        exhausted = count >= settings.PROVIDER_WORK_MAX_UNEXPECTED_ERRORS
        delay = work_backoff(count)
        kind.model.objects.filter(**filters).update(
            # Nobody is on the attempt any more: the next run takes it over at once, as a lost answer (the step
            # may have reached the provider before it broke).
            attempt_started_at=None,
            unexpected_errors=F("unexpected_errors") + 1,
            last_error=f"unexpected error: {message}",
            not_before=None if exhausted else not_before_in(delay),
            updated_at=timezone.now(),
        )
    if not exhausted:
        return wait_step(delay)
    reason = f"It stopped on an unexpected error {count} times ({message}); the work was given up."
    logger.error("provider_work.given_up", extra={"kind": kind.name, "rowId": str(key), "error": message})
    kind.give_up(key, reason)
    # A row the give-up could not finish (its own step breaks too) waits for its person: the sweep looks at it
    # again only once an hour, not every period.
    kind.model.objects.filter(**filters).exclude(state__in=list(kind.final_states)).update(
        not_before=not_before_in(GIVEN_UP_RECHECK_SECONDS)
    )
    return DONE


# How often the sweep looks again at a row that was given up but could not be finished.
GIVEN_UP_RECHECK_SECONDS = 3600


def _paused_wait(kind: WorkKind, key: Any) -> bool:
    """Whether the row waits for a paused provider: then its `not_before` is pushed PROVIDER_PAUSE_RECHECK_SECONDS
    ahead (never brought nearer), so the sweep looks at it once per period, not every tick. Its attempts,
    unexpected errors and `updated_at` stay as they were: a pause is no failure and no progress. The courier
    ends here without a countdown; resuming wakes the row (`paused_work_wake`). One query when nothing is paused."""
    if kind.calls_provider is None:
        return False
    # The pause records belong to the app that owns provider identity; the engine only asks which are paused.
    from meetings_app.selectors import providers_paused

    paused = providers_paused()
    if not paused:
        return False
    calling = reduce(or_, (kind.calls_provider(provider) for provider in sorted(paused)))
    until = not_before_in(settings.PROVIDER_PAUSE_RECHECK_SECONDS)
    waiting = (
        kind.model.objects.filter(**{kind.key: key})
        .exclude(state__in=list(kind.final_states))
        .filter(calling)
        # GREATEST skips a NULL in PostgreSQL: a longer wait already asked for (a Retry-After) is kept.
        .update(not_before=Greatest(F("not_before"), until))
    )
    if waiting:
        logger.info(
            "provider_work.paused_wait",
            extra={"kind": kind.name, "rowId": str(key), "paused": sorted(paused), "until": until.isoformat()},
        )
    return bool(waiting)


@dataclass(frozen=True)
class WokenBatch:
    """Rows of one kind woken on a resume to run `countdown` seconds from now."""

    kind: WorkKind
    keys: list[Any]
    countdown: float


def paused_work_wake(provider: str, *, now: datetime, per_second: int) -> list[WokenBatch]:
    """After `provider` was resumed: its waiting rows of every kind, oldest first, get a `not_before` staggered
    at `per_second` rows a second from `now`, so a long outage's backlog does not hammer the provider at once.
    Call in the resume's transaction; send the batches' couriers after commit (`woken_work_redrive`). A row
    with an attempt open under a live lease is left to its worker."""
    lease_ended = now - timedelta(seconds=settings.SAGA_ATTEMPT_LEASE_SECONDS)
    waiting: list[tuple[datetime, str, Any]] = []
    for kind in WORK_KINDS.values():
        if kind.calls_provider is None:
            continue
        rows = (
            kind.model.objects.exclude(state__in=list(kind.final_states))
            .filter(kind.calls_provider(provider))
            .filter(
                Q(attempt_id__isnull=True) | Q(attempt_started_at__isnull=True) | Q(attempt_started_at__lt=lease_ended)
            )
            .values_list("created_at", kind.key)
        )
        waiting += [(created_at, kind.name, key) for created_at, key in rows]
    waiting.sort(key=lambda row: (row[0], row[1]))
    per_second = max(1, per_second)
    batches: dict[tuple[int, str], list[Any]] = {}
    for position, (_created_at, name, key) in enumerate(waiting):
        batches.setdefault((position // per_second, name), []).append(key)
    woken = []
    for (second, name), keys in sorted(batches.items()):
        kind = WORK_KINDS[name]
        # last_driven_at cleared: the sweep may take a row as soon as its time has come, if its courier is lost.
        kind.model.objects.filter(**{f"{kind.key}__in": keys}).update(
            not_before=now + timedelta(seconds=second), last_driven_at=None
        )
        woken.append(WokenBatch(kind=kind, keys=keys, countdown=float(second)))
    return woken


def woken_work_redrive(batches: Iterable[WokenBatch]) -> None:
    """Send the couriers of woken rows, each at its batch's time. A batch further off than a Celery countdown may
    wait (PROVIDER_WORK_MAX_COUNTDOWN_SECONDS) is left to the sweep, which takes it once its `not_before` comes."""
    for batch in batches:
        if batch.countdown <= settings.PROVIDER_WORK_MAX_COUNTDOWN_SECONDS:
            batch.kind.redrive(batch.keys, countdown=batch.countdown)


def rows_due_claim(kind: WorkKind, *, now: datetime, limit: int = 500) -> list[Any]:
    """The `key` of the kind's unfinished rows with no progress for its stuck period (a lost message, a dead
    worker, a wait past its `not_before`), oldest first, marked as re-driven now so the next sweep waits another
    period for them. A row still waiting for its `not_before` is left alone; concurrent sweeps (two beats) claim
    different rows (SKIP LOCKED), so no row is re-driven twice by one round of sweeps."""
    cutoff = now - timedelta(seconds=kind.stuck_after())
    model = kind.model
    with transaction.atomic():
        due = list(
            model.objects.select_for_update(of=("self",), skip_locked=True)
            .exclude(state__in=list(kind.final_states))
            .filter(updated_at__lt=cutoff)
            .exclude(last_driven_at__gte=cutoff)
            .exclude(not_before__gt=now)
            .order_by("updated_at")
            .values_list(kind.key, flat=True)[:limit]
        )
        if due:
            model.objects.filter(**{f"{kind.key}__in": due}).update(last_driven_at=now)
    return due


def provider_work_sweep(*, now: datetime | None = None, kinds: Iterable[str] | None = None) -> int:
    """Re-drive every registered kind's stuck rows. Returns how many were re-driven."""
    now = now or timezone.now()
    total = 0
    for name in kinds or list(WORK_KINDS):
        kind = WORK_KINDS[name]
        due = rows_due_claim(kind, now=now)
        if due:
            logger.warning(
                "provider_work.sweep_redrive",
                extra={"kind": kind.name, "count": len(due), "rowIds": [str(k) for k in due[:20]]},
            )
            kind.redrive(due)
            total += len(due)
    return total


def rows_needing_person_counts() -> dict[str, int]:
    """How many rows of each kind wait for a person (the gauge and the admin's queue read this)."""
    return {
        kind.name: kind.model.objects.filter(**kind.needs_person).count()
        for kind in WORK_KINDS.values()
        if kind.needs_person is not None
    }


def step_loop(first: Any, steps: Mapping[Any, Callable[[T], Any]], context: T) -> WorkStep:
    """Run a work's steps as a loop over its table: each step answers the name of the next one, or a WorkStep
    that ends this run (done, or look again later)."""
    current: Any = first
    while not isinstance(current, WorkStep):
        current = steps[current](context)
    return current
