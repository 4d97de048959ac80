"""The operators' repairs on the manual-intervention queue (the admin's actions call these).

A repair is a person's decision: it calls the provider once, now, and on success resolves the flag with a note
(audited); on failure it keeps what the provider said as the saga's last error for the next person who looks.
The automatic work (the saga, the meeting operations) never calls these.
"""

import logging
from uuid import UUID

from django.db import transaction

from accounts_app.models import User
from booking_project.provider_work import needs_person_resolve, work_move
from meetings_app.models import MeetingStatus
from meetings_app.providers.base import ProviderError
from meetings_app.services import MeetingManager
from sessions_app.audit import audit_record
from sessions_app.models import SAGA_TRANSITIONS, AuditAction, MeetingSaga, Session, SessionStatus
from sessions_app.saga import meeting_request_for

logger = logging.getLogger(__name__)


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


def meeting_move_retry(*, session_id: UUID, actor_id: UUID | None) -> bool:
    """The operators' "retry moving the meeting": move the scheduled session's meeting to the session's
    time now. On success the intervention is resolved; False when there is nothing to move or the provider
    refused again (the error is kept as the saga's last error)."""
    session = Session.objects.select_related("meeting").filter(id=session_id).first()
    if session is None or session.status != SessionStatus.SCHEDULED or session.meeting is None:
        return False
    if session.meeting.status != MeetingStatus.ACTIVE:
        return False
    try:
        MeetingManager().update_meeting(
            meeting_id=session.meeting_id, request=meeting_request_for(session, host_id=session.meeting.host_id)
        )
    except ProviderError as error:
        saga_last_error_note(session_id=session_id, error=f"meeting move retry failed: {error}")
        return False
    saga_resolve(session_id=session_id, actor_id=actor_id, note="The meeting was moved to the session's time.")
    return True


def saga_last_error_note(*, session_id: UUID, error: str) -> None:
    """Keep what an operator's repair attempt ran into, for the next person who looks."""
    with transaction.atomic():
        saga = _lock(session_id)
        work_move(saga, saga.state, transitions=SAGA_TRANSITIONS, last_error=error)
    logger.warning("saga.repair_failed", extra={"sessionId": str(session_id), "error": error})


def saga_resolve(*, session_id: UUID, actor_id: UUID | None, note: str, via: str = "admin") -> None:
    """A person dealt with it: the saga leaves the queue, with who, when and the note kept (and audited)."""
    with transaction.atomic():
        saga = _lock(session_id)
        if not saga.requires_manual_intervention:
            return
        actor = User.objects.filter(id=actor_id).first() if actor_id else None
        reason = saga.manual_intervention_reason
        needs_person_resolve(saga, transitions=SAGA_TRANSITIONS, actor=actor, note=note)
        audit_record(
            session_id=session_id,
            action=AuditAction.INTERVENTION_RESOLVED,
            actor=actor,
            via=via,
            before={"requiresManualIntervention": True, "reason": reason},
            after={"requiresManualIntervention": False, "note": note},
        )
    logger.info(
        "saga.manual_intervention_resolved",
        extra={"sessionId": str(session_id), "actorId": str(actor_id) if actor_id else None},
    )


def _lock(session_id: UUID) -> MeetingSaga:
    return MeetingSaga.objects.select_for_update(of=("self",)).get(session_id=session_id)
