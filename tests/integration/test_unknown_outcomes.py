"""Unknown is not failed, end to end: the sandbox, like the real providers, carries out what it was asked even
when its caller gave up (a timeout) or a gateway lost its answer (a 504). Every session must end with exactly its
own meeting at the provider, nothing left pending and nothing left behind unflagged."""

import pytest

from sessions_app.models import MeetingSaga, Session, SessionStatus
from tests.integration.test_provisioning_saga import book, session_settled
from tests.stack import STACK_SETTINGS, wait_for

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]


def active_meetings_with_topic(sandbox, topic: str) -> list[dict]:
    return [m for m in sandbox.meetings(status="active") if m["topic"] == topic]


def assert_exactly_its_own_meeting(sandbox, session_id: str) -> None:
    session = Session.objects.select_related("meeting", "saga").get(id=session_id)
    assert session.status == SessionStatus.SCHEDULED, (session.status, session.saga.last_error)
    left = active_meetings_with_topic(sandbox, session.topic)
    assert len(left) == 1, f"{session.meeting_provider} session {session_id} has {len(left)} active meetings"
    assert sandbox.meeting_id_of(left[0]) == session.meeting.provider_meeting_id
    assert not session.saga.requires_manual_intervention, session.saga.manual_intervention_reason


def test_a_provider_slower_than_the_timeout_leaves_each_session_exactly_its_own_meeting(
    people,
    sandbox,
    stack,  # stack: its processes' logs are printed when the test fails
):
    # given: the worker holds its access tokens (the providers answered quickly a moment ago) ...
    for provider in ("zoom", "feishu"):
        warm = book(people, provider=provider, hours=40 if provider == "zoom" else 42)
        assert session_settled(warm["sessionId"]).status == SessionStatus.SCHEDULED
    # ... and now the provider answers after the client's timeout (5 s in the stack), but carries every call out
    timeout = float(STACK_SETTINGS["PROVIDER_TIMEOUT_SECONDS"])
    sandbox.configure(latencyMs=int((timeout + 1.5) * 1000))
    booked = [book(people, provider=provider, hours=48 + i) for i, provider in enumerate(["zoom", "feishu"] * 2)]

    # when: each session's first create times out (its answer lost); then the provider is quick again
    ids = [b["sessionId"] for b in booked]
    wait_for(
        # a second attempt only ever follows a first whose answer never came (taken over, or timed out)
        lambda: MeetingSaga.objects.filter(session_id__in=ids, attempts__gte=2).count() == len(ids),
        timeout=timeout * 3,
        what="every first create's answer to be lost",
    )
    sandbox.configure(latencyMs=0)
    sessions = [session_settled(b["sessionId"], timeout=60) for b in booked]

    # then: nothing pending, and each session holds exactly the meeting the provider made for it
    assert {s.status for s in sessions} == {SessionStatus.SCHEDULED}
    for session in sessions:
        assert_exactly_its_own_meeting(sandbox, str(session.id))


def test_a_gateway_504_after_the_create_was_carried_out_leaves_no_extra_meeting(people, sandbox):
    # given: the next creates are carried out, then a gateway answers 504 in their place
    sandbox.configure(applyThenFailNext={"create": 4}, applyThenFailStatus=504)
    booked = [book(people, provider=provider, hours=60 + i) for i, provider in enumerate(["zoom", "feishu"] * 2)]

    # when
    sessions = [session_settled(b["sessionId"], timeout=60) for b in booked]

    # then
    assert sandbox.injected()["answersLost"]["create"] == 4
    for session in sessions:
        assert_exactly_its_own_meeting(sandbox, str(session.id))
