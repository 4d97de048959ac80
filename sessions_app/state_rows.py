"""What the saga and the meeting operations share: rows that carry a state machine, moved under a lock the
caller holds, and re-driven by the sweep when they stop moving."""

from collections.abc import Collection, Mapping
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.db import models, transaction

from booking_project.errors import InvalidState


def state_move(row: models.Model, to: str, *, transitions: Mapping[str, Collection[str]], **fields: Any) -> None:
    """Set the row's state and fields (the caller holds its lock). Refuses a move its machine does not allow."""
    if to != row.state and to not in transitions[row.state]:
        raise InvalidState(f"A {row._meta.verbose_name} cannot go from {row.state} to {to}.")
    row.state = to
    for name, value in fields.items():
        setattr(row, name, value)
    row.save(update_fields=["state", "updated_at", *fields])


def attempt_lease_held(row: models.Model, *, now: datetime) -> bool:
    """Whether the row's open provider call (committed before it was made) is younger than its lease: a
    worker is still on it. An older one belongs to a worker that died mid-call, and may be taken over."""
    return row.attempt_started_at is not None and row.attempt_started_at > now - timedelta(
        seconds=settings.SAGA_ATTEMPT_LEASE_SECONDS
    )


def stuck_rows_claim(
    model: type[models.Model], *, key: str, final_states: Collection[str], now: datetime, limit: int
) -> list:
    """The `key` of unfinished rows with no progress for SAGA_STUCK_AFTER_SECONDS (a lost message, a dead
    worker), oldest first, marked as re-driven now so that the next sweep waits another period for them.
    Rows waiting for a retry that is not due yet are left alone; concurrent sweeps claim different rows."""
    cutoff = now - timedelta(seconds=settings.SAGA_STUCK_AFTER_SECONDS)
    with transaction.atomic():
        due = list(
            model.objects.select_for_update(of=("self",), skip_locked=True)
            .exclude(state__in=list(final_states))
            .filter(updated_at__lt=cutoff)
            .exclude(last_driven_at__gte=cutoff)
            .exclude(retry_at__gte=cutoff)
            .order_by("updated_at")
            .values_list(key, flat=True)[:limit]
        )
        model.objects.filter(**{f"{key}__in": due}).update(last_driven_at=now)
    return due
