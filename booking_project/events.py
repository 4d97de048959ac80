"""The integration-event registry: every event type the system publishes, its version, who produces it,
what it means, and which handlers consume it. Handlers register themselves with `@handles(kind)`; what an
event must leave behind in the database, written in the very transaction that records it (the delivery rows
of its notifications), registers with `@records(kind)`, so the producer needs to know nothing of it."""

from collections.abc import Callable
from dataclasses import dataclass, field

from sessions_app.types import SESSION_TYPES

SESSION_CREATED = "session.created"
MEETING_OPERATION_RESULT = "session.meeting.operation.result"
SESSION_CANCELLED = "session.cancelled"
SESSION_RESCHEDULED = "session.rescheduled"
SESSION_STARTED = "session.started"
SESSION_COMPLETED = "session.completed"

_KINDS = {
    SESSION_CREATED: (
        1,
        ("sessions_app.services.session_book", "sessions_app.services.session_retry"),
        "A session was booked (or a failed one retried); its meeting is to be provisioned.",
    ),
    MEETING_OPERATION_RESULT: (
        1,
        ("sessions_app.saga",),
        "A meeting operation (create, update, cancel) on a session succeeded or failed for good.",
    ),
    SESSION_CANCELLED: (
        1,
        ("sessions_app.services.session_cancel",),
        "A counselor cancelled a session (hold and slots already given back); its meeting is to be cancelled.",
    ),
    SESSION_RESCHEDULED: (
        1,
        ("sessions_app.services.session_reschedule",),
        "A counselor moved a scheduled session (slots already moved); its meeting is to be moved.",
    ),
    SESSION_STARTED: (
        1,
        ("sessions_app.life",),
        "A session began (its start came, or the provider reported its meeting started).",
    ),
    SESSION_COMPLETED: (
        1,
        ("sessions_app.life", "sessions_app.services.session_complete"),
        "A session took place (the provider reported its meeting ended, a while after its end, or a counselor "
        "marked it): its held units are spent.",
    ),
}


@dataclass
class EventType:
    name: str
    kind: str
    version: int
    producers: tuple[str, ...]
    description: str
    handlers: list[Callable] = field(default_factory=list)
    # Called with the new OutboxEvent inside the transaction that records it (sessions_app.outbox).
    recorders: list[Callable] = field(default_factory=list)


EVENT_TYPES: dict[str, EventType] = {
    f"{session_type}.{kind}": EventType(f"{session_type}.{kind}", kind, version, producers, description)
    for session_type in SESSION_TYPES
    for kind, (version, producers, description) in _KINDS.items()
}


def event_type_get(name: str) -> EventType:
    return EVENT_TYPES[name]


def handles(kind: str) -> Callable[[Callable], Callable]:
    """Register the decorated function as a handler of `kind` for every session type."""
    return _register(kind, "handlers")


def records(kind: str) -> Callable[[Callable], Callable]:
    """Register the decorated function `f(event)` to run whenever an event of `kind` is recorded, inside the
    transaction that records it: what it writes commits with the event, or rolls back with it. It must only
    write rows (no network call) and be quick."""
    return _register(kind, "recorders")


def _register(kind: str, registry: str) -> Callable[[Callable], Callable]:
    if kind not in _KINDS:
        raise ValueError(f"unknown event kind {kind!r}")

    def register(function: Callable) -> Callable:
        for event_type in EVENT_TYPES.values():
            functions = getattr(event_type, registry)
            if event_type.kind == kind and function not in functions:
                functions.append(function)
        return function

    return register
