"""The read the counselor page makes every 2 s (GET /api/counselor/sessions/{id}) answers in one query, byte for
byte what the session serializer answers, to exactly the people sessions_visible_to lets see it."""

from datetime import timedelta

import pytest
from django.utils import timezone
from rest_framework.renderers import JSONRenderer

from accounts_app.models import Role
from sessions_app.apis import SessionOutputSerializer
from sessions_app.models import MeetingSaga, Session, SessionStatus
from sessions_app.selectors import sessions_visible_to
from tests.conftest import api_client_for, assert_error, detail_url
from tests.factories import CounselorFactory, StaffFactory, UserFactory, future, student_for
from tests.notification_factories import MeetingFactory, scheduled_session

pytestmark = pytest.mark.django_db


def serializer_bytes(session: Session, viewer) -> bytes:
    """What the endpoint answered before the lean read: the serializer over sessions_visible_to's session."""
    session = sessions_visible_to(viewer=viewer).get(id=session.id)
    return JSONRenderer().render(SessionOutputSerializer(session).data)


def sessions_of_every_kind(counselor) -> list[Session]:
    started = timezone.now().replace(microsecond=123456) - timedelta(minutes=30)
    made = [
        scheduled_session(counselor=counselor, status=status)
        for status in (SessionStatus.PENDING_MEETING, SessionStatus.SCHEDULED, SessionStatus.IN_PROGRESS)
    ]
    made.append(
        scheduled_session(
            counselor=counselor,
            status=SessionStatus.COMPLETED,
            started_at=started,
            ended_at=started + timedelta(hours=1),
        )
    )
    # a cancelled and a failed session keep their meeting's row, but never show it
    made.append(scheduled_session(counselor=counselor, status=SessionStatus.CANCELLED))
    made.append(
        scheduled_session(counselor=counselor, status=SessionStatus.MEETING_FAILED, failure_reason="Feishu said no")
    )
    never_met = scheduled_session(counselor=counselor, status=SessionStatus.CANCELLED)
    Session.objects.filter(id=never_met.id).update(meeting=None)
    made.append(never_met)
    # a class of three, in booking order; a topic in Chinese; a meeting without a number
    made.append(
        scheduled_session(
            counselor=counselor,
            session_type="class_session",
            students=[UserFactory(), UserFactory(), UserFactory()],
            topic="简历修改 — review",
        )
    )
    plain = scheduled_session(counselor=counselor)
    Session.objects.filter(id=plain.id).update(meeting=MeetingFactory(meeting_no=""))
    made.append(plain)
    # a session whose saga waits for a person, and one whose saga does not
    flagged = scheduled_session(counselor=counselor, status=SessionStatus.PENDING_MEETING)
    MeetingSaga.objects.create(session=flagged, requires_manual_intervention=True)
    made.append(flagged)
    calm = scheduled_session(counselor=counselor, status=SessionStatus.PENDING_MEETING, start=future(hours=70))
    MeetingSaga.objects.create(session=calm)
    made.append(calm)
    return made


def test_the_poll_answers_byte_for_byte_what_the_serializer_answers(counselor):
    api = api_client_for(counselor)
    staff = StaffFactory()
    staff_api = api_client_for(staff)
    for session in sessions_of_every_kind(counselor):
        for viewer, client in ((counselor, api), (staff, staff_api)):
            response = client.get(detail_url(session.id))
            assert response.status_code == 200, response.content
            assert response.content == serializer_bytes(session, viewer), session.status


def test_the_meeting_fields_are_null_for_a_cancelled_session_with_a_meeting(counselor):
    session = scheduled_session(counselor=counselor, status=SessionStatus.CANCELLED)
    assert session.meeting_id is not None

    body = api_client_for(counselor).get(detail_url(session.id)).json()

    assert (body["meetingId"], body["meetingNo"], body["meetingUrl"]) == (None, None, None)


def test_a_warm_poll_is_one_query(counselor, django_assert_num_queries):
    session = scheduled_session(counselor=counselor, students=[UserFactory(), UserFactory()])
    MeetingSaga.objects.create(session=session)
    api = api_client_for(counselor)
    assert api.get(detail_url(session.id)).status_code == 200  # the token is remembered from now on

    with django_assert_num_queries(1):
        response = api.get(detail_url(session.id))

    assert response.json()["studentIds"] == [str(i) for i in session.student_ids]


def test_a_counselor_whose_student_it_is_reads_it_and_others_do_not(counselor):
    # given a session booked by another counselor for a student assigned to this one since
    student = student_for(counselor)
    other = CounselorFactory()
    session = scheduled_session(counselor=other, students=[student])
    mentor = session.mentor

    assert api_client_for(counselor).get(detail_url(session.id)).status_code == 200
    assert api_client_for(other).get(detail_url(session.id)).status_code == 200
    assert api_client_for(StaffFactory()).get(detail_url(session.id)).status_code == 200
    assert_error(api_client_for(CounselorFactory()).get(detail_url(session.id)), 404, "NOT_FOUND")
    assert_error(api_client_for(mentor).get(detail_url(session.id)), 403, "FORBIDDEN")
    superuser = UserFactory(role=Role.MENTOR, is_superuser=True)
    assert api_client_for(superuser).get(detail_url(session.id)).status_code == 200


def test_an_unknown_or_malformed_id_is_404_as_before(counselor):
    api = api_client_for(counselor)
    assert_error(api.get(detail_url("not-a-uuid")), 404, "NOT_FOUND")
    assert_error(api.get(detail_url("00000000-0000-0000-0000-000000000000")), 404, "NOT_FOUND")


def test_the_actions_answer_byte_for_byte_what_the_serializer_answers(counselor):
    from sessions_app.apis import session_representation

    for session in sessions_of_every_kind(counselor):
        loaded = sessions_visible_to(viewer=counselor).get(id=session.id)
        assert JSONRenderer().render(session_representation(loaded)) == serializer_bytes(session, counselor)
