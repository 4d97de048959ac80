"""The bodies of the session's integration events (booking_project/events.py lists the types)."""

from typing import Any
from uuid import UUID

from meetings_app.models import Meeting
from sessions_app.models import Session


def session_facts(session: Session) -> dict[str, Any]:
    """What every session event says about the session itself."""
    return {
        "sessionId": str(session.id),
        "sessionType": session.session_type,
        "studentIds": [str(s) for s in session.student_ids],
        "mentorId": str(session.mentor_id),
        "counselorId": str(session.counselor_id),
        "scheduledStartTime": session.scheduled_at.isoformat(),
        "duration": session.duration_minutes,
        "meetingProvider": session.meeting_provider,
        "topic": session.topic,
    }


def session_created_payload(session: Session) -> dict[str, Any]:
    """The body of `{type}.session.created`."""
    facts = session_facts(session)
    student_ids = facts["studentIds"]
    return {
        **facts,
        "studentId": student_ids[0] if len(student_ids) == 1 else None,
        "slotIds": [str(s) for s in session.slot_ids],
    }


def meeting_result_payload(
    *, session: Session, meeting: Meeting | None, status: str, operation: str = "create", failure_reason: str = ""
) -> dict[str, Any]:
    """The body of `{type}.session.meeting.operation.result`."""
    return {
        **session_facts(session),
        "operation": operation,
        "status": status,
        "meetingId": str(meeting.id) if meeting else None,
        "meetingNo": meeting.meeting_no if meeting else None,
        "meetingUrl": meeting.join_url if meeting else None,
        "failureReason": failure_reason or None,
    }


def session_lived_payload(session: Session) -> dict[str, Any]:
    """The body of `{type}.session.started` and `{type}.session.completed`: the session, its status now and
    the meeting's real start and end when the provider reported them."""
    return {
        **session_facts(session),
        "status": session.status,
        "startedAt": session.started_at.isoformat() if session.started_at else None,
        "endedAt": session.ended_at.isoformat() if session.ended_at else None,
    }


def session_changed_payload(
    *, session: Session, operation_id: UUID, previous: dict[str, Any] | None = None
) -> dict[str, Any]:
    """The body of `{type}.session.cancelled` and `{type}.session.rescheduled`: the session as it is now,
    the meeting operation that follows, and (rescheduled) where the session was before."""
    return {**session_facts(session), "operationId": str(operation_id), "previous": previous}
