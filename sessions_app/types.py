"""The session-type registry: the one place that says what each kind of session is.

Adding a sixth type means adding one entry here; events, validation, holds and the API follow from it.
"""

from dataclasses import dataclass

from django.conf import settings


@dataclass(frozen=True)
class SessionType:
    name: str
    label: str
    billable_by_default: bool
    min_students: int
    max_students: int
    default_topic: str
    default_duration: int  # minutes

    @property
    def billable(self) -> bool:
        configured = getattr(settings, "BILLABLE_SESSION_TYPES", None)
        return self.billable_by_default if configured is None else self.name in configured

    def event(self, kind: str) -> str:
        """The name of this type's event of `kind` (booking_project/events.py lists the kinds)."""
        return f"{self.name}.{kind}"

    @property
    def created_event(self) -> str:
        return self.event("session.created")

    @property
    def result_event(self) -> str:
        return self.event("session.meeting.operation.result")


SESSION_TYPES: dict[str, SessionType] = {
    t.name: t
    for t in (
        SessionType("regular_mentoring", "Regular mentoring", True, 1, 1, "Mentoring session", 60),
        SessionType("gap_analysis", "Gap analysis", True, 1, 1, "Gap analysis", 60),
        SessionType("ai_career", "AI career session", True, 1, 1, "AI career session", 60),
        SessionType("comm_session", "Communication session", False, 1, 1, "Communication session", 30),
        SessionType("class_session", "Class", False, 1, 50, "Class session", 90),
    )
}

SESSION_TYPE_CHOICES = [(t.name, t.label) for t in SESSION_TYPES.values()]


def session_type_get(name: str) -> SessionType:
    return SESSION_TYPES[name]
