"""The sandbox's calendar events keep the reminders a client sets, as Feishu and Google do, move them with the
event, show them in `GET /_sandbox/calendar-events`, and refuse a value the provider would refuse."""

import pytest
import requests

from tests.sandbox.provider_calls import (
    FEISHU_EVENTS,
    GOOGLE_EVENTS,
    GOOGLE_HEADERS,
    feishu_event,
    feishu_headers,
    google_event,
    sandbox_events,
    unix_in,
)


def test_a_feishu_event_keeps_its_reminders_and_a_patch_with_new_times_replaces_them(sandbox):
    # given
    headers = feishu_headers(sandbox)
    start = unix_in(48)
    body = {**feishu_event(start, start + 3600), "reminders": [{"minutes": 60}, {"minutes": 1440}]}
    made = requests.post(f"{sandbox.url}{FEISHU_EVENTS}", json=body, headers=headers, timeout=5).json()
    event_id = made["data"]["event"]["event_id"]

    # when: moved a day later, its reminders sent again
    moved = {
        "start_time": {"timestamp": str(start + 86400), "timezone": "Asia/Shanghai"},
        "end_time": {"timestamp": str(start + 90000), "timezone": "Asia/Shanghai"},
        "reminders": [{"minutes": 30}],
    }
    patched = requests.patch(f"{sandbox.url}{FEISHU_EVENTS}/{event_id}", json=moved, headers=headers, timeout=5)

    # then
    assert made["data"]["event"]["reminders"] == [{"minutes": 60}, {"minutes": 1440}]
    assert patched.json()["data"]["event"]["reminders"] == [{"minutes": 30}]
    (event,) = sandbox_events(sandbox)
    assert event["reminders"] == [30]


@pytest.mark.parametrize("reminders", [[{"minutes": 20161}], [{"minutes": -20161}], [{"minutes": "60"}], {"x": 1}])
def test_feishu_refuses_reminders_out_of_its_range_and_keeps_nothing(sandbox, reminders):
    headers = feishu_headers(sandbox)
    start = unix_in(48)
    body = {**feishu_event(start, start + 3600), "reminders": reminders}

    answer = requests.post(f"{sandbox.url}{FEISHU_EVENTS}", json=body, headers=headers, timeout=5)

    assert answer.status_code == 400 and answer.json()["code"] == 190002
    assert "reminders" in answer.json()["msg"]
    assert sandbox_events(sandbox) == []


def test_a_feishu_patch_with_a_bad_reminder_changes_nothing(sandbox):
    headers = feishu_headers(sandbox)
    start = unix_in(48)
    made = requests.post(
        f"{sandbox.url}{FEISHU_EVENTS}", json=feishu_event(start, start + 3600), headers=headers, timeout=5
    ).json()
    event_id = made["data"]["event"]["event_id"]

    answer = requests.patch(
        f"{sandbox.url}{FEISHU_EVENTS}/{event_id}",
        json={"summary": "Moved", "reminders": [{"minutes": 99999}]},
        headers=headers,
        timeout=5,
    )

    assert answer.status_code == 400 and answer.json()["code"] == 190002
    (event,) = sandbox_events(sandbox)
    assert event["summary"] == "Resume review" and event["reminders"] == [60]


def test_a_google_event_keeps_its_overrides_and_a_patch_replaces_them(sandbox):
    # given
    reminders = {"useDefault": False, "overrides": [{"method": "popup", "minutes": 60}]}
    body = {**google_event("session0123abc"), "reminders": reminders}
    inserted = requests.post(f"{sandbox.url}{GOOGLE_EVENTS}", json=body, headers=GOOGLE_HEADERS, timeout=5)

    # when
    moved = {
        "start": {"dateTime": "2099-12-02T10:00:00+08:00", "timeZone": "Asia/Shanghai"},
        "end": {"dateTime": "2099-12-02T11:00:00+08:00", "timeZone": "Asia/Shanghai"},
        "reminders": {
            "useDefault": False,
            "overrides": [{"method": "popup", "minutes": 60}, {"method": "email", "minutes": 1440}],
        },
    }
    patched = requests.patch(
        f"{sandbox.url}{GOOGLE_EVENTS}/session0123abc", json=moved, headers=GOOGLE_HEADERS, timeout=5
    )

    # then
    assert inserted.status_code == 200 and inserted.json()["reminders"] == reminders
    assert patched.status_code == 200 and patched.json()["reminders"] == moved["reminders"]
    (event,) = sandbox_events(sandbox)
    assert event["reminders"] == [60, 1440] and event["start"] == "2099-12-02T02:00:00Z"


def test_a_google_event_without_overrides_reminds_by_the_calendars_defaults(sandbox):
    requests.post(f"{sandbox.url}{GOOGLE_EVENTS}", json=google_event(), headers=GOOGLE_HEADERS, timeout=5)

    (event,) = sandbox_events(sandbox)
    assert event["reminders"] == []


def popups(*minutes) -> dict:
    return {"useDefault": False, "overrides": [{"method": "popup", "minutes": m} for m in minutes]}


@pytest.mark.parametrize(
    ("reminders", "reason"),
    [
        (popups(10, 20, 30, 40, 50, 60), "invalid"),
        (popups(40321), "invalid"),
        (popups(-1), "invalid"),
        (
            {"useDefault": True, "overrides": [{"method": "popup", "minutes": 10}]},
            "cannotUseDefaultRemindersAndSpecifyOverride",
        ),
        ({"useDefault": False, "overrides": [{"method": "sms", "minutes": 10}]}, "required"),
        ("popup", "invalid"),
    ],
)
def test_google_refuses_reminders_it_does_not_take_and_keeps_nothing(sandbox, reminders, reason):
    body = {**google_event(), "reminders": reminders}

    answer = requests.post(f"{sandbox.url}{GOOGLE_EVENTS}", json=body, headers=GOOGLE_HEADERS, timeout=5)

    assert answer.status_code == 400
    assert answer.json()["error"]["errors"][0]["reason"] == reason
    assert sandbox_events(sandbox) == []


def test_a_google_patch_with_too_many_overrides_changes_nothing(sandbox):
    body = {**google_event("session0123abc"), "reminders": popups(60)}
    requests.post(f"{sandbox.url}{GOOGLE_EVENTS}", json=body, headers=GOOGLE_HEADERS, timeout=5)

    answer = requests.patch(
        f"{sandbox.url}{GOOGLE_EVENTS}/session0123abc",
        json={"summary": "Moved", "reminders": popups(1, 2, 3, 4, 5, 6)},
        headers=GOOGLE_HEADERS,
        timeout=5,
    )

    assert answer.status_code == 400
    (event,) = sandbox_events(sandbox)
    assert event["summary"] == "Resume review" and event["reminders"] == [60]
