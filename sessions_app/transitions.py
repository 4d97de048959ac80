"""The one place that changes a session's status (the state machine is ALLOWED_TRANSITIONS)."""

from typing import Any
from uuid import UUID

from django.db import transaction
from django.utils import timezone

from booking_project.errors import InvalidState, NotFound
from sessions_app.models import ALLOWED_TRANSITIONS, Session


def session_transition(*, session_id: UUID, to: str, expected: str | None = None, **fields: Any) -> Session:
    """Move a session to status `to`, compare-and-set, with any other columns in the same UPDATE.

    `expected` pins the status the caller saw; without it the current status is read under a row lock.
    Raises InvalidState when the move is not in ALLOWED_TRANSITIONS or the status changed meanwhile,
    so a duplicate or late caller changes nothing.
    """
    with transaction.atomic():
        if expected is None:
            current = Session.objects.select_for_update().filter(id=session_id).values_list("status", flat=True).first()
            if current is None:
                raise NotFound("No such session.")
        else:
            current = expected
        if to not in ALLOWED_TRANSITIONS[current]:
            raise InvalidState(
                f"A session cannot go from {current} to {to}.", details={"status": current, "requested": to}
            )
        now = timezone.now()
        updated = Session.objects.filter(id=session_id, status=current).update(
            status=to, status_changed_at=now, updated_at=now, **fields
        )
        if not updated:
            raise InvalidState(
                "The session's status changed meanwhile.", details={"expected": current, "requested": to}
            )
    return Session.objects.select_related("meeting").get(id=session_id)
