"""The Feishu Calendar v4 client against Feishu's HTTP API as `responses` plays it."""

import json
from datetime import UTC, datetime

import pytest
import responses

from booking_project.providers.outcomes import PermanentProviderError, TransientProviderError
from calendar_app.providers import (
    CalendarEventRequest,
    ProvidedCalendarEvent,
    calendar_provider_client,
    calendar_provider_clients_reset,
)

FEISHU = "https://feishu.test"
TOKEN_URL = f"{FEISHU}/open-apis/auth/v3/tenant_access_token/internal"
PRIMARY_URL = f"{FEISHU}/open-apis/calendar/v4/calendars/primary"
CALENDAR_ID = "feishu.cn_app0123@group.calendar.feishu.cn"
EVENTS_URL = f"{FEISHU}/open-apis/calendar/v4/calendars/feishu.cn_app0123%40group.calendar.feishu.cn/events"
EVENT_ID = "75d28f9b-e35c-4230-8a83-4a661497db54_0"
EVENT_URL = f"{EVENTS_URL}/{EVENT_ID}"
APP_SECRET = "feishu-app-secret-do-not-leak"

EVENT = CalendarEventRequest(
    summary="Essay review",
    description="Join: https://vc.feishu.cn/j/337736498",
    start_time=datetime(2026, 12, 1, 2, 0, tzinfo=UTC),  # 1796090400
    end_time=datetime(2026, 12, 1, 3, 0, tzinfo=UTC),  # 1796094000
    meeting_url="https://vc.feishu.cn/j/337736498",
    time_zone="Asia/Shanghai",
    attendee_open_id="ou_student",
    attendee_email="student@example.com",
)


@pytest.fixture
def feishu(settings):
    settings.FEISHU_BASE_URL = FEISHU
    settings.FEISHU_APP_ID = "cli_a1b2"
    settings.FEISHU_APP_SECRET = APP_SECRET
    settings.FEISHU_CALENDAR_ID = ""
    settings.PROVIDER_TIMEOUT_SECONDS = 4.0
    calendar_provider_clients_reset()
    yield calendar_provider_client("feishu")
    calendar_provider_clients_reset()


def ok(data: dict) -> dict:
    return {"code": 0, "msg": "success", "data": data}


def give_token(provider_api, *tokens: str) -> None:
    for token in tokens:
        provider_api.add(
            responses.POST, TOKEN_URL, json={"code": 0, "msg": "ok", "tenant_access_token": token, "expire": 7200}
        )


def give_primary_calendar(provider_api) -> None:
    calendar = {"calendar_id": CALENDAR_ID, "type": "primary", "role": "owner"}
    provider_api.add(responses.POST, PRIMARY_URL, json=ok({"calendars": [{"calendar": calendar, "user_id": "ou_b"}]}))


def calls_to(provider_api, url: str) -> list:
    return [call for call in provider_api.calls if call.request.url.split("?")[0] == url]


def test_create_makes_the_event_in_the_apps_primary_calendar_then_invites_the_participant(feishu, provider_api):
    # given
    give_token(provider_api, "t-1")
    give_primary_calendar(provider_api)
    provider_api.add(responses.POST, EVENTS_URL, json=ok({"event": {"event_id": EVENT_ID}}))
    provider_api.add(responses.POST, f"{EVENT_URL}/attendees", json=ok({"attendees": []}))

    # when
    made = feishu.create(EVENT, idempotency_key="5c1f0b0e9a4d4a3c8b7e6d5c4b3a2910")

    # then
    assert made == ProvidedCalendarEvent(calendar_id=CALENDAR_ID, event_id=EVENT_ID)
    (create,) = calls_to(provider_api, EVENTS_URL)
    assert create.request.url.endswith("?idempotency_key=5c1f0b0e9a4d4a3c8b7e6d5c4b3a2910")
    assert create.request.headers["Authorization"] == "Bearer t-1"
    body = json.loads(create.request.body)
    assert body["summary"] == "Essay review"
    assert body["start_time"] == {"timestamp": "1796090400", "timezone": "Asia/Shanghai"}
    assert body["end_time"] == {"timestamp": "1796094000", "timezone": "Asia/Shanghai"}
    assert body["vchat"] == {"vc_type": "third_party", "meeting_url": "https://vc.feishu.cn/j/337736498"}
    (invite,) = calls_to(provider_api, f"{EVENT_URL}/attendees")
    assert "user_id_type=open_id" in invite.request.url
    assert json.loads(invite.request.body)["attendees"] == [{"type": "user", "user_id": "ou_student"}]


def test_the_primary_calendar_is_asked_for_once_and_a_configured_one_never(feishu, provider_api, settings):
    # given
    give_token(provider_api, "t-1")
    give_primary_calendar(provider_api)
    provider_api.add(responses.POST, EVENTS_URL, json=ok({"event": {"event_id": EVENT_ID}}))
    provider_api.add(responses.POST, f"{EVENT_URL}/attendees", json=ok({"attendees": []}))

    # when
    feishu.create(EVENT, idempotency_key="k1")
    feishu.create(EVENT, idempotency_key="k2")
    settings.FEISHU_CALENDAR_ID = CALENDAR_ID
    calendar_provider_client("feishu").create(EVENT, idempotency_key="k3")

    # then
    assert len(calls_to(provider_api, PRIMARY_URL)) == 1
    assert len(calls_to(provider_api, EVENTS_URL)) == 3


def test_a_participant_without_an_open_id_is_invited_by_email(feishu, provider_api, settings):
    # given
    settings.FEISHU_CALENDAR_ID = CALENDAR_ID
    give_token(provider_api, "t-1")
    provider_api.add(responses.POST, EVENTS_URL, json=ok({"event": {"event_id": EVENT_ID}}))
    provider_api.add(responses.POST, f"{EVENT_URL}/attendees", json=ok({"attendees": []}))
    event = CalendarEventRequest(**{**EVENT.__dict__, "attendee_open_id": ""})

    # when
    calendar_provider_client("feishu").create(event, idempotency_key="k1")

    # then
    (invite,) = calls_to(provider_api, f"{EVENT_URL}/attendees")
    assert json.loads(invite.request.body)["attendees"] == [
        {"type": "third_party", "third_party_email": "student@example.com"}
    ]


def test_update_patches_the_times_and_delete_of_a_missing_event_counts_as_done(feishu, provider_api):
    # given
    give_token(provider_api, "t-1")
    provider_api.add(responses.PATCH, EVENT_URL, json=ok({"event": {"event_id": EVENT_ID}}))
    provider_api.add(responses.DELETE, EVENT_URL, status=404, json={"code": 193001, "msg": "event not found"})

    # when
    feishu.update(CALENDAR_ID, EVENT_ID, EVENT)
    feishu.delete(CALENDAR_ID, EVENT_ID)

    # then
    (patch,) = [call for call in provider_api.calls if call.request.method == "PATCH"]
    assert json.loads(patch.request.body)["start_time"]["timestamp"] == "1796090400"


def test_the_event_reminds_at_the_offsets_when_made_and_again_at_its_new_time(feishu, provider_api):
    # given: reminders a day and an hour ahead; Feishu takes at most two weeks (20160 minutes)
    give_token(provider_api, "t-1")
    give_primary_calendar(provider_api)
    provider_api.add(responses.POST, EVENTS_URL, json=ok({"event": {"event_id": EVENT_ID}}))
    provider_api.add(responses.POST, f"{EVENT_URL}/attendees", json=ok({"attendees": []}))
    provider_api.add(responses.PATCH, EVENT_URL, json=ok({"event": {"event_id": EVENT_ID}}))
    event = CalendarEventRequest(**{**EVENT.__dict__, "reminder_minutes": (1440, 60, 60, 30000, -5)})
    moved = CalendarEventRequest(**{**event.__dict__, "start_time": datetime(2026, 12, 2, 2, 0, tzinfo=UTC)})

    # when
    feishu.create(event, idempotency_key="5c1f0b0e9a4d4a3c8b7e6d5c4b3a2910")
    feishu.update(CALENDAR_ID, EVENT_ID, moved)

    # then: each offset once, the ones Feishu would refuse left out, sent with the create and with the move
    (create,) = calls_to(provider_api, EVENTS_URL)
    assert json.loads(create.request.body)["reminders"] == [{"minutes": 60}, {"minutes": 1440}]
    (patch,) = [call for call in provider_api.calls if call.request.method == "PATCH"]
    assert json.loads(patch.request.body)["start_time"]["timestamp"] == "1796176800"
    assert json.loads(patch.request.body)["reminders"] == [{"minutes": 60}, {"minutes": 1440}]


def test_an_event_without_reminder_offsets_sends_no_reminders(feishu, provider_api):
    give_token(provider_api, "t-1")
    provider_api.add(responses.PATCH, EVENT_URL, json=ok({"event": {"event_id": EVENT_ID}}))

    feishu.update(CALENDAR_ID, EVENT_ID, EVENT)

    (patch,) = [call for call in provider_api.calls if call.request.method == "PATCH"]
    assert "reminders" not in json.loads(patch.request.body)


def test_an_expired_token_is_refreshed_once_through_the_shared_feishu_token_logic(feishu, provider_api):
    # given
    give_token(provider_api, "t-old", "t-new")
    provider_api.add(responses.DELETE, EVENT_URL, status=400, json={"code": 99991663, "msg": "token expired"})
    provider_api.add(responses.DELETE, EVENT_URL, json=ok({}))

    # when
    feishu.delete(CALENDAR_ID, EVENT_ID)

    # then
    deletes = [call for call in provider_api.calls if call.request.method == "DELETE"]
    assert [call.request.headers["Authorization"] for call in deletes] == ["Bearer t-old", "Bearer t-new"]


@pytest.mark.parametrize(
    ("status", "body", "headers", "kind", "retry_after"),
    [
        (500, {"code": 190003, "msg": "internal service error"}, {}, TransientProviderError, None),
        (429, {"code": 99991400, "msg": "frequency limit"}, {"X-Ogw-Ratelimit-Reset": "3"}, TransientProviderError, 3),
        (400, {"code": 190002, "msg": "invalid parameters"}, {}, PermanentProviderError, None),
        (200, {"code": 191002, "msg": "no calendar access"}, {}, PermanentProviderError, None),
    ],
    ids=["5xx", "rate-limited", "invalid", "business-error-with-200"],
)
def test_failures_are_classified_transient_or_permanent(feishu, provider_api, status, body, headers, kind, retry_after):
    # given
    give_token(provider_api, "t-1")
    provider_api.add(responses.PATCH, EVENT_URL, status=status, json=body, headers=headers)

    # when
    with pytest.raises(kind) as raised:
        feishu.update(CALENDAR_ID, EVENT_ID, EVENT)

    # then
    assert raised.value.provider == "feishu" and raised.value.operation == "calendar.update"
    assert getattr(raised.value, "retry_after", None) == retry_after
    assert APP_SECRET not in str(raised.value)
