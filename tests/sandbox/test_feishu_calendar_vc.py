"""Feishu Calendar v4 events with `"vchat": {"vc_type": "vc"}`: Feishu makes a video meeting for the event,
answers its link in `vchat.meeting_url`, moves it with the event and cancels it with the event; the
`idempotency_key` makes a repeated create answer the same event and no second meeting (PROVIDERS.md
"Calendar v4"). Reservations (`vc/v1/reserves`) are untouched by any of it."""

import re

import pytest
import requests

from tests.sandbox.provider_calls import (
    EVENT_KEY,
    FEISHU_EVENTS,
    apply_reserve,
    feishu_event,
    feishu_headers,
    iso_of,
    sandbox_events,
    sandbox_meetings,
    unix_in,
)

VC = {"vc_type": "vc"}
MEETING_URL = re.compile(r"^https://vc\.feishu\.cn/j/(\d{9})$")


@pytest.fixture
def headers(sandbox):
    return feishu_headers(sandbox)


def create_event(sandbox, headers, body, key=EVENT_KEY) -> requests.Response:
    params = {"idempotency_key": key} if key else {}
    return requests.post(f"{sandbox.url}{FEISHU_EVENTS}", params=params, json=body, headers=headers, timeout=5)


def event_url(sandbox, event_id: str) -> str:
    return f"{sandbox.url}{FEISHU_EVENTS}/{event_id}"


def test_an_event_with_vc_type_vc_gets_a_feishu_video_meeting(sandbox, headers):
    start, end = unix_in(48), unix_in(49)

    created = create_event(sandbox, headers, feishu_event(start, end, summary="Resume review", vchat=VC))

    assert created.status_code == 200 and created.json()["code"] == 0
    event = created.json()["data"]["event"]
    assert event["vchat"]["vc_type"] == "vc"
    meeting_no = MEETING_URL.match(event["vchat"]["meeting_url"]).group(1)
    [meeting] = sandbox_meetings(sandbox)
    assert meeting == {
        "provider": "feishu",
        "id": meeting["id"],
        "status": "active",
        "topic": "Resume review",
        "startTime": iso_of(start),
        "duration": 60,
        "endTime": iso_of(end),
        "hostId": None,  # the app's calendar owns it
        "agenda": None,
        "source": "calendar",
        "calendarId": "cal_app",
        "eventId": event["event_id"],
        "meetingNo": meeting_no,
        "meetingUrl": event["vchat"]["meeting_url"],
    }
    assert meeting["id"].isdigit()
    assert sandbox_events(sandbox)[0]["meetingUrl"] == event["vchat"]["meeting_url"]


def test_get_event_answers_the_meeting_link_too(sandbox, headers):
    event = create_event(sandbox, headers, feishu_event(unix_in(48), unix_in(49), vchat=VC)).json()["data"]["event"]

    fetched = requests.get(event_url(sandbox, event["event_id"]), headers=headers, timeout=5)

    assert fetched.json()["code"] == 0
    assert fetched.json()["data"]["event"]["vchat"]["vc_type"] == "vc"
    assert fetched.json()["data"]["event"]["vchat"]["meeting_url"] == event["vchat"]["meeting_url"]


def test_the_same_idempotency_key_answers_the_same_event_and_makes_no_second_meeting(sandbox, headers):
    body = feishu_event(unix_in(48), unix_in(49), vchat=VC)

    first = create_event(sandbox, headers, body).json()["data"]["event"]
    again = create_event(sandbox, headers, body).json()["data"]["event"]
    other_key = create_event(sandbox, headers, body, key="f1c2e3d4-0000-4000-8000-00000000beef").json()["data"]["event"]

    assert again["event_id"] == first["event_id"]
    assert again["vchat"]["meeting_url"] == first["vchat"]["meeting_url"]
    assert other_key["event_id"] != first["event_id"]
    assert other_key["vchat"]["meeting_url"] != first["vchat"]["meeting_url"]
    assert [meeting["eventId"] for meeting in sandbox_meetings(sandbox)] == [first["event_id"], other_key["event_id"]]
    assert len(sandbox_events(sandbox)) == 2


def test_the_same_idempotency_key_on_another_calendar_is_another_event(sandbox, headers):
    body = feishu_event(unix_in(48), unix_in(49), vchat=VC)
    other_calendar = f"{sandbox.url}/open-apis/calendar/v4/calendars/cal_other/events"

    first = create_event(sandbox, headers, body).json()["data"]["event"]
    elsewhere = requests.post(
        other_calendar, params={"idempotency_key": EVENT_KEY}, json=body, headers=headers, timeout=5
    ).json()["data"]["event"]

    assert elsewhere["event_id"] != first["event_id"]
    assert len(sandbox_meetings(sandbox)) == 2


def test_patching_the_events_times_and_summary_moves_and_renames_its_meeting(sandbox, headers):
    event = create_event(sandbox, headers, feishu_event(unix_in(48), unix_in(49), vchat=VC)).json()["data"]["event"]
    new_start, new_end = unix_in(72), unix_in(73.5)

    patched = requests.patch(
        event_url(sandbox, event["event_id"]),
        json={
            "summary": "Mock interview",
            "start_time": {"timestamp": str(new_start), "timezone": "Asia/Shanghai"},
            "end_time": {"timestamp": str(new_end), "timezone": "Asia/Shanghai"},
        },
        headers=headers,
        timeout=5,
    )

    assert patched.json()["code"] == 0
    assert patched.json()["data"]["event"]["vchat"]["meeting_url"] == event["vchat"]["meeting_url"]
    [meeting] = sandbox_meetings(sandbox)
    assert (meeting["startTime"], meeting["endTime"], meeting["duration"]) == (iso_of(new_start), iso_of(new_end), 90)
    assert meeting["topic"] == "Mock interview" and meeting["status"] == "active"


def test_a_patch_that_repeats_vc_type_vc_keeps_the_same_meeting(sandbox, headers):
    start, end = unix_in(48), unix_in(49)
    event = create_event(sandbox, headers, feishu_event(start, end, vchat=VC)).json()["data"]["event"]

    patched = requests.patch(
        event_url(sandbox, event["event_id"]), json=feishu_event(start, end, vchat=VC), headers=headers, timeout=5
    )

    assert patched.json()["data"]["event"]["vchat"]["meeting_url"] == event["vchat"]["meeting_url"]
    assert [meeting["status"] for meeting in sandbox_meetings(sandbox)] == ["active"]


def test_deleting_the_event_cancels_its_meeting(sandbox, headers):
    event = create_event(sandbox, headers, feishu_event(unix_in(48), unix_in(49), vchat=VC)).json()["data"]["event"]

    deleted = requests.delete(event_url(sandbox, event["event_id"]), headers=headers, timeout=5)
    deleted_again = requests.delete(event_url(sandbox, event["event_id"]), headers=headers, timeout=5)

    assert deleted.json()["code"] == 0
    assert deleted_again.status_code == 404 and deleted_again.json()["code"] == 193001
    assert [meeting["status"] for meeting in sandbox_meetings(sandbox)] == ["cancelled"]
    assert sandbox_events(sandbox)[0]["status"] == "cancelled"


def test_switching_the_event_to_a_third_party_link_cancels_its_feishu_meeting(sandbox, headers):
    event = create_event(sandbox, headers, feishu_event(unix_in(48), unix_in(49), vchat=VC)).json()["data"]["event"]
    third_party = {"vc_type": "third_party", "meeting_url": "https://zoom.us/j/81234567890"}

    patched = requests.patch(
        event_url(sandbox, event["event_id"]), json={"vchat": third_party}, headers=headers, timeout=5
    )

    assert patched.json()["data"]["event"]["vchat"] == third_party
    assert [meeting["status"] for meeting in sandbox_meetings(sandbox)] == ["cancelled"]
    assert sandbox_events(sandbox)[0]["meetingUrl"] == "https://zoom.us/j/81234567890"


def test_the_owner_is_set_when_the_event_first_becomes_a_video_meeting(sandbox, headers):
    start, end = unix_in(48), unix_in(49)
    vchat = {"vc_type": "vc", "meeting_settings": {"owner_id": "ou_mentor", "auto_record": True}}
    event = create_event(sandbox, headers, feishu_event(start, end, vchat=vchat)).json()["data"]["event"]

    later = {"vc_type": "vc", "meeting_settings": {"owner_id": "ou_someone_else"}}
    patched = requests.patch(event_url(sandbox, event["event_id"]), json={"vchat": later}, headers=headers, timeout=5)

    assert event["vchat"]["meeting_settings"]["owner_id"] == "ou_mentor"
    assert event["vchat"]["meeting_settings"]["auto_record"] is True
    assert patched.json()["data"]["event"]["vchat"]["meeting_settings"]["owner_id"] == "ou_mentor"
    assert sandbox_meetings(sandbox)[0]["hostId"] == "ou_mentor"


@pytest.mark.parametrize(
    "vchat",
    [
        {"vc_type": "lark_live"},
        {"vc_type": "vc", "meeting_settings": {"assign_hosts": ["ou_mentor"]}},
        {"vc_type": "vc", "meeting_settings": {"allow_attendees_start": False}},
        {"vc_type": "vc", "meeting_settings": {"join_meeting_permission": "everyone"}},
        {"vc_type": "vc", "meeting_settings": "on"},
        "vc",
    ],
    ids=["read_only_type", "assign_hosts", "attendees_cannot_start", "join_permission", "settings", "not_object"],
)
def test_a_vchat_feishu_refuses_makes_no_event_and_no_meeting(sandbox, headers, vchat):
    response = create_event(sandbox, headers, feishu_event(unix_in(48), unix_in(49), vchat=vchat))

    assert response.status_code == 400 and response.json()["code"] == 190002
    assert sandbox_events(sandbox) == [] and sandbox_meetings(sandbox) == []


def test_an_event_with_no_vc_type_gets_a_meeting_when_its_first_attendees_are_added(sandbox, headers):
    event = create_event(sandbox, headers, feishu_event(unix_in(48), unix_in(49))).json()["data"]["event"]
    assert sandbox_meetings(sandbox) == []

    added = requests.post(
        f"{event_url(sandbox, event['event_id'])}/attendees",
        json={"attendees": [{"type": "user", "user_id": "ou_student"}]},
        headers=headers,
        timeout=5,
    )
    fetched = requests.get(event_url(sandbox, event["event_id"]), headers=headers, timeout=5).json()["data"]["event"]

    assert added.json()["code"] == 0
    [meeting] = sandbox_meetings(sandbox)
    assert fetched["vchat"]["vc_type"] == "vc" and fetched["vchat"]["meeting_url"] == meeting["meetingUrl"]
    assert meeting["eventId"] == event["event_id"] and meeting["source"] == "calendar"


def test_an_event_with_a_third_party_link_or_no_meeting_gets_no_feishu_meeting(sandbox, headers):
    for vchat in (
        {"vc_type": "third_party", "meeting_url": "https://zoom.us/j/81234567890"},
        {"vc_type": "no_meeting"},
    ):
        event = create_event(sandbox, headers, feishu_event(unix_in(48), unix_in(49), vchat=vchat), key=None)
        requests.post(
            f"{event_url(sandbox, event.json()['data']['event']['event_id'])}/attendees",
            json={"attendees": [{"type": "user", "user_id": "ou_student"}]},
            headers=headers,
            timeout=5,
        )
        assert event.json()["data"]["event"]["vchat"] == vchat

    assert sandbox_meetings(sandbox) == []


def test_an_all_day_event_with_a_malformed_date_is_refused(sandbox, headers):
    body = feishu_event(unix_in(48), unix_in(49), vchat=VC)
    body["start_time"] = {"date": "2099-13-45"}

    response = create_event(sandbox, headers, body)

    assert response.status_code == 400 and response.json()["code"] == 190002
    assert sandbox_meetings(sandbox) == []


def test_reservations_and_event_meetings_live_side_by_side(sandbox, headers):
    reserve = apply_reserve(sandbox, headers).json()["data"]["reserve"]
    event = create_event(sandbox, headers, feishu_event(unix_in(48), unix_in(49), vchat=VC)).json()["data"]["event"]
    [event_meeting] = [meeting for meeting in sandbox_meetings(sandbox) if meeting.get("source") == "calendar"]

    # A meeting an event made is no reservation: the reserves API does not know it, and cannot cancel it.
    unknown = requests.get(f"{sandbox.url}/open-apis/vc/v1/reserves/{event_meeting['id']}", headers=headers, timeout=5)
    not_cancelled = requests.delete(
        f"{sandbox.url}/open-apis/vc/v1/reserves/{event_meeting['id']}", headers=headers, timeout=5
    )
    requests.delete(event_url(sandbox, event["event_id"]), headers=headers, timeout=5)
    fetched = requests.get(f"{sandbox.url}/open-apis/vc/v1/reserves/{reserve['id']}", headers=headers, timeout=5)

    assert unknown.status_code == 404 and unknown.json()["code"] == 121004
    assert not_cancelled.status_code == 404 and not_cancelled.json()["code"] == 121004
    assert fetched.json()["code"] == 0  # the reservation outlives the event's meeting
    meetings = {meeting["id"]: meeting for meeting in sandbox_meetings(sandbox)}
    assert meetings[reserve["id"]]["status"] == "active" and "source" not in meetings[reserve["id"]]
    assert meetings[event_meeting["id"]]["status"] == "cancelled"


def test_a_lost_create_repeated_with_its_idempotency_key_answers_the_same_event(sandbox, headers):
    # An event that makes a video meeting is a meeting create, for counting and injected faults alike.
    body = feishu_event(unix_in(48), unix_in(49), vchat=VC)
    requests.post(f"{sandbox.url}/_sandbox/config", json={"applyThenFailNext": {"create": 1}}, timeout=5)

    lost = create_event(sandbox, headers, body)
    repeated = create_event(sandbox, headers, body)

    assert lost.status_code == 504 and lost.headers["Content-Type"].startswith("text/html")
    assert repeated.json()["code"] == 0
    [event] = sandbox_events(sandbox)
    [meeting] = sandbox_meetings(sandbox)
    assert repeated.json()["data"]["event"]["event_id"] == event["id"] == meeting["eventId"]
    assert repeated.json()["data"]["event"]["vchat"]["meeting_url"] == meeting["meetingUrl"]
