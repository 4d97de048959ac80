"""No email sends a dead link: once a session is cancelled or its meeting failed, neither the text, the HTML
nor the attached invitation (.ics) carries the meeting's join URL (API.md "Read": null for CANCELLED and
MEETING_FAILED, in the API, the pages and every email)."""

import pytest
from django.core import mail

from accounts_app.models import Profile
from sessions_app.models import Session, SessionStatus
from tests.factories import CounselorFactory, MentorFactory, UserFactory
from tests.notification_factories import scheduled_session
from tests.notifications.conftest import result_event

pytestmark = pytest.mark.django_db


def everything_in(message) -> str:
    """The text, the HTML alternative and every attachment, as one string to search."""
    parts = [message.subject, message.body, *(content for content, _ in message.alternatives)]
    for attachment in message.attachments:
        payload = attachment.get_payload(decode=True) if hasattr(attachment, "get_payload") else attachment[1]
        parts.append(payload.decode() if isinstance(payload, bytes) else str(payload))
    return "\n".join(parts)


@pytest.fixture
def session() -> Session:
    student = UserFactory(email="student@example.com")
    Profile.objects.filter(user=student).update(calendar_provider="google")
    return scheduled_session(
        mentor=MentorFactory(email="mentor@example.com"),
        students=[student],
        counselor=CounselorFactory(email="c@example.com"),
    )


def test_the_invitation_carries_the_link_and_the_cancellation_does_not(session, calendars, deliver):
    # given a booked session whose participants were invited with the link
    url = session.meeting.join_url
    deliver(result_event(session))
    invitations = [m for m in mail.outbox if "booked" in m.subject.lower()]
    assert invitations and all(url in everything_in(m) for m in invitations)
    mail.outbox.clear()
    # when it is cancelled (its meeting still recorded on the row) and the participants are told
    Session.objects.filter(id=session.id).update(status=SessionStatus.CANCELLED)
    cancelled = Session.objects.select_related("meeting").get(id=session.id)
    deliver(result_event(cancelled, operation="cancel"))
    # then each cancellation, text, HTML and .ics, names the session but not the dead link
    assert sorted(m.to[0] for m in mail.outbox) == ["mentor@example.com", "student@example.com"]
    for message in mail.outbox:
        assert "cancelled" in message.subject.lower()
        assert url not in everything_in(message)
        assert session.meeting.meeting_no not in everything_in(message)


def test_the_meeting_failed_email_carries_no_link(calendars, deliver):
    # given a failed session that still points at a meeting record (made, then compensated)
    session = scheduled_session(status=SessionStatus.MEETING_FAILED, counselor=CounselorFactory(email="c@example.com"))
    url = session.meeting.join_url
    # when the counselor is told
    deliver(result_event(session, status="failed", reason="feishu create: HTTP 500"))
    # then the email explains and links to the session page, never to the meeting
    (message,) = mail.outbox
    assert f"/app/sessions/{session.id}/" in message.body
    assert url not in everything_in(message)
