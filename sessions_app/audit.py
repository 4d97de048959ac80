"""The audit trail: one row per action a person takes on a session, written in the action's transaction."""

from typing import Any
from uuid import UUID

from accounts_app.models import User
from sessions_app.models import AuditEntry, Session


def audit_record(
    *,
    session_id: UUID,
    action: str,
    actor: User | None,
    via: str,
    before: dict[str, Any] | None = None,
    after: dict[str, Any] | None = None,
) -> AuditEntry:
    entry = audit_entry_new(session_id=session_id, action=action, actor=actor, via=via, before=before, after=after)
    entry.save(force_insert=True)
    return entry


def audit_entry_new(
    *,
    session_id: UUID,
    action: str,
    actor: User | None,
    via: str,
    before: dict[str, Any] | None = None,
    after: dict[str, Any] | None = None,
) -> AuditEntry:
    """The unsaved row `audit_record` writes, for an action written in one statement."""
    return AuditEntry(
        session_id=session_id, action=action, actor=actor, via=via, before=before or {}, after=after or {}
    )


def audit_state(session: Session) -> dict[str, Any]:
    """The part of a session an action changes, as the trail shows it."""
    return {
        "status": session.status,
        "scheduledAt": session.scheduled_at.isoformat(),
        "duration": session.duration_minutes,
        "slotIds": [str(s) for s in session.slot_ids],
    }


def audit_change(*, session: Session, before: dict[str, Any], action: str, actor: User | None, via: str) -> AuditEntry:
    """Record an action that took the session from `before` (its `audit_state` then) to how it is now."""
    return audit_record(
        session_id=session.id, action=action, actor=actor, via=via, before=before, after=audit_state(session)
    )
