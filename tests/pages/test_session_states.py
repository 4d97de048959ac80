"""What the counselor sees of a session's life on the pages (first paint, in English and Chinese): no dead
link once the meeting is gone, the IN_PROGRESS and COMPLETED badges, the real start and end, and why a session
waits for an operator. The script's part (Cancel going, retry at a new time) is driven in tests/browser."""

import uuid
from datetime import UTC, datetime

import pytest
from django.test import Client
from django.utils import translation

from notifications_app.models import Channel
from sessions_app.models import MeetingOperation, MeetingSaga, SessionStatus
from sessions_app.selectors import session_attention, sessions_attention
from tests.factories import CounselorFactory, student_for
from tests.notification_factories import GivenUpDeliveryFactory, ReminderFactory, scheduled_session
from tests.pages.test_pages import json_script, logged_in

pytestmark = pytest.mark.django_db

CANCEL_FAILED = (
    "The session was cancelled, but its zoom meeting 8123 could not be cancelled after 3 attempt(s): "
    "HTTP 500. Cancel it at the provider."
)
WORDS = {
    "en": {
        "IN_PROGRESS": "In progress",
        "COMPLETED": "Completed",
        "started": "Started at",
        "ended": "Ended at",
        "cancel_failed": "The meeting could not be cancelled at Zoom; an operator has been asked to remove it.",
        "move_failed": "The meeting could not be moved at Zoom; an operator has been asked to move it",
        "saga": "needs a check; an operator has been asked to look at it.",
        "calendar": "A calendar event for this session could not be updated; an operator has been asked to fix it.",
    },
    "zh-hans": {
        "IN_PROGRESS": "进行中",
        "COMPLETED": "已完成",
        "started": "实际开始时间",
        "ended": "实际结束时间",
        "cancel_failed": "会议未能在Zoom取消；已请运营人员将其删除。",
        "move_failed": "会议未能在Zoom改到新时间",
        "saga": "需要核查；已请运营人员处理。",
        "calendar": "这节课的一个日历日程未能更新；已请运营人员修复。",
    },
}


@pytest.fixture
def counselor():
    person = CounselorFactory()
    person.profile.time_zone = "Asia/Shanghai"
    person.profile.save(update_fields=["time_zone"])
    return person


def in_language(client: Client, language: str) -> Client:
    response = client.post("/i18n/setlang/", {"language": language, "next": "/app/"})
    assert response.status_code == 302
    return client


def session_of(counselor, *, meeting_provider: str = "feishu", **kwargs):
    session = scheduled_session(counselor=counselor, students=[student_for(counselor)], **kwargs)
    if meeting_provider != "feishu":
        session.meeting_provider = meeting_provider
        session.save(update_fields=["meeting_provider"])
    MeetingSaga.objects.create(session=session, state="succeeded", meeting=session.meeting)
    return session


def waiting_for_a_person(session, reason: str) -> None:
    MeetingSaga.objects.filter(session=session).update(
        requires_manual_intervention=True, manual_intervention_reason=reason, manual_intervention_at=datetime.now(UTC)
    )


@pytest.mark.parametrize("status", [SessionStatus.CANCELLED, SessionStatus.MEETING_FAILED])
@pytest.mark.parametrize("language", ["en", "zh-hans"])
def test_a_cancelled_or_failed_session_shows_no_meeting_link_on_the_list_or_its_page(counselor, status, language):
    # given a session whose meeting existed, now cancelled or failed
    session = session_of(counselor, status=status)
    url = session.meeting.join_url
    client = in_language(logged_in(counselor), language)
    # when the counselor opens the list and the page, then the link (and its number) is nowhere
    listing = client.get("/app/")
    page = client.get(f"/app/sessions/{session.id}/")
    for response in (listing, page):
        assert response.status_code == 200
        assert url not in response.text and session.meeting.meeting_no not in response.text
    (listed,) = json_script(listing, "initial-sessions")
    assert listed["meetingUrl"] is None and listed["meetingNo"] is None
    assert 'class="meeting-link"' not in page.text
    assert f'data-status="{status}"' in page.text


def test_a_scheduled_session_still_shows_its_link(counselor):
    session = session_of(counselor)
    page = logged_in(counselor).get(f"/app/sessions/{session.id}/")
    assert f'class="meeting-link" href="{session.meeting.join_url}"' in page.text


@pytest.mark.parametrize("status", [SessionStatus.IN_PROGRESS, SessionStatus.COMPLETED])
@pytest.mark.parametrize("language", ["en", "zh-hans"])
def test_in_progress_and_completed_have_their_badges_with_the_real_start_and_end(counselor, status, language):
    # given a session the provider reported started at 10:02 and (when completed) ended at 10:58, UTC
    started = datetime(2026, 11, 30, 10, 2, tzinfo=UTC)
    ended = datetime(2026, 11, 30, 10, 58, tzinfo=UTC) if status == SessionStatus.COMPLETED else None
    session = session_of(counselor, status=status, started_at=started, ended_at=ended)
    client = in_language(logged_in(counselor), language)
    # when the counselor opens its page
    page = client.get(f"/app/sessions/{session.id}/")
    # then the badge says so in their language, and the real times are in their time zone (UTC+8)
    words = WORDS[language]
    assert f'data-status="{status}">{words[status]}</span>' in page.text
    assert words["started"] in page.text and "18:02" in page.text
    if ended:
        assert words["ended"] in page.text and "18:58" in page.text
    else:
        assert 'id="session-ended" hidden' in page.text
    # and the script gets the same facts and the badge's words for the list
    (data,) = json_script(page, "initial-sessions")
    assert data["startedAt"] == "2026-11-30T10:02:00Z"
    assert json_script(page, "ui-config")["statuses"][status] == words[status]


def test_a_session_not_yet_started_shows_no_start_or_end(counselor):
    page = logged_in(counselor).get(f"/app/sessions/{session_of(counselor).id}/")
    assert 'id="session-started" hidden' in page.text and 'id="session-ended" hidden' in page.text
    assert 'id="session-attention" class="attention" role="status" hidden' in page.text


@pytest.mark.parametrize("language", ["en", "zh-hans"])
def test_a_meeting_the_provider_would_not_cancel_is_explained_on_the_row_and_the_page(counselor, language):
    # given a cancelled Zoom session whose cancel at Zoom failed for good, an operator asked
    session = session_of(counselor, status=SessionStatus.CANCELLED, meeting_provider="zoom")
    MeetingOperation.objects.create(session=session, kind="cancel", state="failed", last_error=CANCEL_FAILED)
    waiting_for_a_person(session, CANCEL_FAILED)
    client = in_language(logged_in(counselor), language)
    words = WORDS[language]["cancel_failed"]
    # when the counselor opens the page and the list, then both say why in plain words (not the operator's)
    page = client.get(f"/app/sessions/{session.id}/")
    assert f"<p>{words}</p>" in page.text
    assert "Cancel it at the provider" not in page.text
    assert json_script(page, "initial-sessions")[0]["attention"] == [words]
    assert json_script(client.get("/app/"), "initial-sessions")[0]["attention"] == [words]
    # and the script's refresh gets the same words
    answer = client.get(f"/app/sessions/attention/?ids={session.id}")
    assert answer.status_code == 200 and answer.json() == {"attention": {str(session.id): [words]}}


def test_once_an_operator_resolved_it_the_session_says_nothing_more(counselor):
    session = session_of(counselor, status=SessionStatus.CANCELLED, meeting_provider="zoom")
    MeetingOperation.objects.create(session=session, kind="cancel", state="failed", last_error=CANCEL_FAILED)
    waiting_for_a_person(session, CANCEL_FAILED)
    with translation.override("en"):
        assert session_attention(session) == [WORDS["en"]["cancel_failed"]]
    # when an operator resolves the saga (the operation's row stays FAILED)
    MeetingSaga.objects.filter(session=session).update(requires_manual_intervention=False)
    # then nobody is waiting any more
    assert session_attention(session) == []
    page = logged_in(counselor).get(f"/app/sessions/{session.id}/")
    assert WORDS["en"]["cancel_failed"] not in page.text


def test_a_failed_move_another_saga_reason_and_a_given_up_notification_each_have_their_words(counselor):
    moved = session_of(counselor, meeting_provider="zoom")
    move_failed = "The session was moved to 2026-12-03T02:00:00+00:00 (60 min), but its zoom meeting 1 could not..."
    MeetingOperation.objects.create(session=moved, kind="update", state="failed", last_error=move_failed)
    waiting_for_a_person(moved, move_failed)
    left_behind = session_of(counselor, meeting_provider="zoom")
    waiting_for_a_person(left_behind, "A duplicate zoom meeting 2 could not be cancelled: HTTP 500.")
    calendar = session_of(counselor)
    GivenUpDeliveryFactory(session_id=calendar.id, channel=Channel.CALENDAR)
    reminder = session_of(counselor)
    ReminderFactory(session_id=reminder.id, requires_manual_intervention=True, state="given_up")
    fine = session_of(counselor)
    with translation.override("en"):
        attention = sessions_attention(sessions=[moved, left_behind, calendar, reminder, fine])
    assert attention[moved.id][0].startswith(WORDS["en"]["move_failed"])
    assert len(attention[moved.id]) == 1
    assert attention[left_behind.id][0].endswith(WORDS["en"]["saga"])
    assert attention[calendar.id] == [WORDS["en"]["calendar"]]
    assert attention[reminder.id] == [
        "A reminder for this session could not be sent; an operator has been asked to look at it."
    ]
    assert fine.id not in attention
    # and in Chinese on the list
    client = in_language(logged_in(counselor), "zh-hans")
    listed = {s["sessionId"]: s["attention"] for s in json_script(client.get("/app/"), "initial-sessions")}
    assert listed[str(calendar.id)] == [WORDS["zh-hans"]["calendar"]]
    assert listed[str(left_behind.id)][0].endswith(WORDS["zh-hans"]["saga"])
    assert listed[str(fine.id)] == []


def test_the_attention_answer_is_only_about_the_counselors_own_sessions_and_refuses_nonsense(counselor):
    other = CounselorFactory()
    theirs = session_of(other, status=SessionStatus.CANCELLED)
    waiting_for_a_person(theirs, "A duplicate feishu meeting could not be cancelled.")
    client = logged_in(counselor)
    answer = client.get(f"/app/sessions/attention/?ids={theirs.id},{uuid.uuid4()}")
    assert answer.status_code == 200 and answer.json() == {"attention": {}}
    bad = client.get("/app/sessions/attention/?ids=not-a-uuid")
    assert bad.status_code == 400 and bad.json()["error"]["code"] == "VALIDATION_ERROR"
    too_many = client.get("/app/sessions/attention/?ids=" + ",".join(str(uuid.uuid4()) for _ in range(101)))
    assert too_many.status_code == 400
    assert Client().get(f"/app/sessions/attention/?ids={theirs.id}").status_code == 302


def test_a_counselor_assigned_a_student_later_reads_the_session_page_but_is_offered_no_action(counselor):
    student = student_for(counselor)
    session = scheduled_session(students=[student])  # booked by another counselor
    booked_by = str(session.counselor_id)

    page = logged_in(counselor).get(f"/app/sessions/{session.id}/")

    assert page.status_code == 200
    # The script offers actions only on sessions whose counselorId is the viewer's own (app.js `mine`).
    assert json_script(page, "ui-config")["counselorId"] == str(counselor.id)
    assert [s["counselorId"] for s in json_script(page, "initial-sessions")] == [booked_by]
    assert booked_by != str(counselor.id)
