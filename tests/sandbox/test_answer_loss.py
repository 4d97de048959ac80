"""Unknown outcomes on command: the sandbox applies an operation and then loses its answer behind a gateway
(`applyThenFailNext`, `applyThenFailRate`, `applyThenFailStatus`, `applyThenDelayMs`), stalls token fetches
(`tokenLatencyMs`), and counts what it injected (`GET /_sandbox/injected`)."""

import time

import pytest
import requests

from tests.sandbox.provider_calls import (
    GOOGLE_EVENTS,
    GOOGLE_HEADERS,
    apply_reserve,
    config,
    configure,
    create_zoom_meeting,
    feishu_headers,
    google_event,
    injected,
    sandbox_events,
    sandbox_meetings,
    zoom_headers,
)

NO_COUNTS = {"create": 0, "update": 0, "cancel": 0, "calendar": 0, "read": 0}


def assert_gateway_page(response: requests.Response, status: int) -> None:
    """A gateway's HTML error page, not a provider's JSON: a client can only tell it failed, not how."""
    assert response.status_code == status
    assert response.headers["Content-Type"].startswith("text/html")
    assert f"<title>{status} " in response.text
    with pytest.raises(ValueError):
        response.json()


# --- the operation is applied, its answer lost ----------------------------------------------------------


def test_a_create_whose_answer_is_lost_still_makes_the_meeting(sandbox):
    headers = zoom_headers(sandbox)
    configure(sandbox, applyThenFailNext={"create": 1})

    lost = create_zoom_meeting(sandbox, headers, agenda="session:lost")
    answered = create_zoom_meeting(sandbox, headers, agenda="session:answered")

    assert_gateway_page(lost, 504)
    assert answered.status_code == 201
    assert [(m["agenda"], m["status"]) for m in sandbox_meetings(sandbox)] == [
        ("session:lost", "active"),
        ("session:answered", "active"),
    ]
    counts = injected(sandbox)
    assert counts["answersLost"] == {**NO_COUNTS, "create": 1}
    assert counts["failed"] == NO_COUNTS
    assert counts["byProvider"]["zoom"]["answersLost"]["create"] == 1
    assert counts["byProvider"]["feishu"]["answersLost"] == NO_COUNTS


def test_a_lost_update_moves_the_meeting_and_a_lost_cancel_cancels_it(sandbox):
    headers = zoom_headers(sandbox)
    meeting_id = create_zoom_meeting(sandbox, headers).json()["id"]
    meeting_url = f"{sandbox.url}/v2/meetings/{meeting_id}"
    configure(sandbox, applyThenFailNext={"update": 1, "cancel": 1})

    updated = requests.patch(meeting_url, json={"start_time": "2099-12-02T03:00:00Z"}, headers=headers, timeout=5)
    moved = requests.get(meeting_url, headers=headers, timeout=5).json()
    cancelled = requests.delete(meeting_url, headers=headers, timeout=5)
    cancelled_again = requests.delete(meeting_url, headers=headers, timeout=5)

    assert_gateway_page(updated, 504)
    assert moved["start_time"] == "2099-12-02T03:00:00Z"
    assert_gateway_page(cancelled, 504)
    # The caller that looks again learns the cancel was done: Zoom's "already gone".
    assert cancelled_again.status_code == 404 and cancelled_again.json()["code"] == 3001
    assert sandbox_meetings(sandbox)[0]["status"] == "cancelled"
    assert injected(sandbox)["answersLost"] == {**NO_COUNTS, "update": 1, "cancel": 1}


def test_a_lost_feishu_reservation_exists_and_the_next_one_is_answered(sandbox):
    headers = feishu_headers(sandbox)
    configure(sandbox, applyThenFailNext={"create": 1}, applyThenFailStatus=502)

    lost = apply_reserve(sandbox, headers)
    answered = apply_reserve(sandbox, headers)

    assert_gateway_page(lost, 502)
    assert "Bad Gateway" in lost.text
    assert answered.status_code == 200 and answered.json()["code"] == 0
    assert [meeting["status"] for meeting in sandbox_meetings(sandbox)] == ["active", "active"]
    assert injected(sandbox)["byProvider"]["feishu"]["answersLost"]["create"] == 1


def test_a_lost_google_insert_with_its_own_id_answers_409_when_repeated(sandbox):
    configure(sandbox, applyThenFailNext={"calendar": 1})

    lost = requests.post(
        f"{sandbox.url}{GOOGLE_EVENTS}", json=google_event("session0123abc"), headers=GOOGLE_HEADERS, timeout=5
    )
    repeated = requests.post(
        f"{sandbox.url}{GOOGLE_EVENTS}", json=google_event("session0123abc"), headers=GOOGLE_HEADERS, timeout=5
    )

    assert_gateway_page(lost, 504)
    assert repeated.status_code == 409
    assert [(event["id"], event["status"]) for event in sandbox_events(sandbox)] == [("session0123abc", "confirmed")]
    assert injected(sandbox)["byProvider"]["google"]["answersLost"]["calendar"] == 1


def test_with_a_delay_past_the_callers_timeout_the_caller_times_out_on_work_that_was_done(sandbox):
    headers = zoom_headers(sandbox)
    configure(sandbox, applyThenFailNext={"create": 1}, applyThenDelayMs=1500)

    started = time.monotonic()
    with pytest.raises(requests.Timeout):
        create_zoom_meeting(sandbox, headers, timeout=0.3)
    seen = sandbox_meetings(sandbox)

    # Applied before the wait, and visible during it: the sandbox does not hold its lock while it waits.
    assert time.monotonic() - started < 1.5
    assert [meeting["status"] for meeting in seen] == ["active"]
    assert injected(sandbox)["answersLost"]["create"] == 1


def test_the_lost_answer_comes_after_the_delay(sandbox):
    headers = zoom_headers(sandbox)
    configure(sandbox, applyThenFailNext={"create": 1}, applyThenDelayMs=400)

    started = time.monotonic()
    lost = create_zoom_meeting(sandbox, headers)

    assert time.monotonic() - started >= 0.4
    assert_gateway_page(lost, 504)


def test_a_refused_call_keeps_its_answer_and_does_not_use_up_the_count(sandbox):
    headers = zoom_headers(sandbox)
    meeting_id = create_zoom_meeting(sandbox, headers).json()["id"]
    configure(sandbox, applyThenFailNext={"cancel": 1})

    unknown = requests.delete(f"{sandbox.url}/v2/meetings/81000000000", headers=headers, timeout=5)
    invalid = requests.delete(f"{sandbox.url}/v2/meetings/{meeting_id}", headers={}, timeout=5)
    done = requests.delete(f"{sandbox.url}/v2/meetings/{meeting_id}", headers=headers, timeout=5)

    assert unknown.status_code == 404 and unknown.json()["code"] == 3001
    assert invalid.status_code == 401 and invalid.json()["code"] == 124
    assert_gateway_page(done, 504)
    assert injected(sandbox)["answersLost"]["cancel"] == 1


def test_a_feishu_answer_with_a_non_zero_code_is_a_refusal_and_keeps_its_answer(sandbox):
    headers = feishu_headers(sandbox)
    configure(sandbox, applyThenFailNext={"cancel": 1})

    refused = requests.delete(f"{sandbox.url}/open-apis/vc/v1/reserves/6900000000000000001", headers=headers, timeout=5)

    assert refused.status_code == 404 and refused.json()["code"] == 121004
    assert configure(sandbox)["applyThenFailNext"]["cancel"] == 1


def test_a_call_failed_before_applying_is_not_applied_and_the_next_is_applied_then_lost(sandbox):
    headers = zoom_headers(sandbox)
    configure(sandbox, failNext={"create": 1}, applyThenFailNext={"create": 1})

    failed = create_zoom_meeting(sandbox, headers, agenda="session:1")
    assert failed.status_code == 500 and failed.json()["code"] == 500  # Zoom's own JSON
    assert sandbox_meetings(sandbox) == []

    lost = create_zoom_meeting(sandbox, headers, agenda="session:2")
    answered = create_zoom_meeting(sandbox, headers, agenda="session:3")

    assert_gateway_page(lost, 504)
    assert answered.status_code == 201
    assert [meeting["agenda"] for meeting in sandbox_meetings(sandbox)] == ["session:2", "session:3"]
    counts = injected(sandbox)
    assert counts["failed"] == {**NO_COUNTS, "create": 1}
    assert counts["answersLost"] == {**NO_COUNTS, "create": 1}


def test_apply_then_fail_rate_one_loses_every_answer_but_never_a_token(sandbox):
    configure(sandbox, applyThenFailRate=1.0)
    zoom, feishu = zoom_headers(sandbox), feishu_headers(sandbox)

    answers = [
        create_zoom_meeting(sandbox, zoom),
        apply_reserve(sandbox, feishu),
        requests.post(f"{sandbox.url}{GOOGLE_EVENTS}", json=google_event(), headers=GOOGLE_HEADERS, timeout=5),
    ]

    for answer in answers:
        assert_gateway_page(answer, 504)
    assert len(sandbox_meetings(sandbox)) == 2 and len(sandbox_events(sandbox)) == 1
    assert injected(sandbox)["answersLost"] == {**NO_COUNTS, "create": 2, "calendar": 1}


def test_fail_provider_limits_lost_answers_to_that_provider(sandbox):
    zoom, feishu = zoom_headers(sandbox), feishu_headers(sandbox)
    configure(sandbox, applyThenFailRate=1.0, failProvider="zoom")

    zoom_answer = create_zoom_meeting(sandbox, zoom)
    feishu_answer = apply_reserve(sandbox, feishu)
    google_answer = requests.post(
        f"{sandbox.url}{GOOGLE_EVENTS}", json=google_event(), headers=GOOGLE_HEADERS, timeout=5
    )

    assert_gateway_page(zoom_answer, 504)
    assert feishu_answer.status_code == 200 and google_answer.status_code == 200
    assert injected(sandbox)["byProvider"]["zoom"]["answersLost"]["create"] == 1
    assert injected(sandbox)["answersLost"]["create"] == 1


def test_apply_then_fail_operation_limits_the_rate_to_that_operation(sandbox):
    # given: every create's answer is lost, and only creates'
    zoom = zoom_headers(sandbox)
    configure(sandbox, applyThenFailRate=1.0, applyThenFailOperation="create")

    created = create_zoom_meeting(sandbox, zoom)
    event = requests.post(f"{sandbox.url}{GOOGLE_EVENTS}", json=google_event(), headers=GOOGLE_HEADERS, timeout=5)

    assert_gateway_page(created, 504)
    assert event.status_code == 200
    assert injected(sandbox)["answersLost"] == {**NO_COUNTS, "create": 1}


# --- token latency ----------------------------------------------------------------------------------------


def test_token_latency_stalls_token_fetches_only(sandbox):
    headers = zoom_headers(sandbox)
    configure(sandbox, tokenLatencyMs=600)

    started = time.monotonic()
    assert create_zoom_meeting(sandbox, headers).status_code == 201
    call_took = time.monotonic() - started

    started = time.monotonic()
    feishu_headers(sandbox)
    token_took = time.monotonic() - started

    assert call_took < 0.5
    assert token_took >= 0.6
    with pytest.raises(requests.Timeout):
        zoom_headers(sandbox, timeout=0.2)


def test_token_latency_adds_to_latency(sandbox):
    configure(sandbox, latencyMs=200, tokenLatencyMs=300)

    started = time.monotonic()
    zoom_headers(sandbox)

    assert time.monotonic() - started >= 0.5


# --- config, counters, reset --------------------------------------------------------------------------


def test_config_shows_the_answer_loss_settings_once_set_and_reset_clears_them(sandbox):
    classic = config(sandbox)
    assert "applyThenFailNext" not in classic and "tokenLatencyMs" not in classic

    shown = configure(sandbox, applyThenFailRate=0.25, tokenLatencyMs=50)

    assert shown["applyThenFailRate"] == 0.25
    assert shown["applyThenFailNext"] == NO_COUNTS
    assert shown["applyThenFailStatus"] == 504 and shown["applyThenDelayMs"] == 0
    assert shown["tokenLatencyMs"] == 50
    assert config(sandbox) == shown

    requests.post(f"{sandbox.url}/_sandbox/reset", timeout=5).raise_for_status()

    assert config(sandbox) == classic


def test_reset_zeroes_the_injected_counts(sandbox):
    headers = zoom_headers(sandbox)
    configure(sandbox, failNext={"create": 1}, applyThenFailNext={"create": 1})
    create_zoom_meeting(sandbox, headers)
    create_zoom_meeting(sandbox, headers)

    requests.post(f"{sandbox.url}/_sandbox/reset", timeout=5).raise_for_status()

    counts = injected(sandbox)
    assert counts["failed"] == counts["answersLost"] == NO_COUNTS
    assert all(
        counts["byProvider"][provider] == {"failed": NO_COUNTS, "answersLost": NO_COUNTS}
        for provider in ("feishu", "zoom", "google")
    )


@pytest.mark.parametrize(
    "bad",
    [
        {"applyThenFailNext": {"create": -1}},
        {"applyThenFailNext": {"teleport": 1}},
        {"applyThenFailNext": {"create": 1.5}},
        {"applyThenFailNext": [1]},
        {"applyThenFailRate": 1.5},
        {"applyThenFailRate": "half"},
        {"applyThenFailStatus": 200},
        {"applyThenFailStatus": 504.0},
        {"applyThenFailStatus": True},
        {"applyThenDelayMs": -1},
        {"applyThenDelayMs": None},
        {"tokenLatencyMs": -5},
        {"tokenLatencyMs": "slow"},
    ],
)
def test_config_refuses_a_bad_answer_loss_setting_and_changes_nothing(sandbox, bad):
    before = config(sandbox)

    response = requests.post(f"{sandbox.url}/_sandbox/config", json={**bad, "latencyMs": 5}, timeout=5)

    assert response.status_code == 400
    error = response.json()["error"]
    [name] = bad
    assert error["code"] == "VALIDATION_ERROR"
    assert name in error["message"]
    assert list(error["details"]) == [name] and error["details"][name]
    assert config(sandbox) == before  # latencyMs, valid, was not applied either


def test_config_names_every_bad_setting_in_details(sandbox):
    response = requests.post(
        f"{sandbox.url}/_sandbox/config", json={"teleport": 1, "applyThenFailRate": 2, "tokenLatencyMs": -1}, timeout=5
    )

    assert response.status_code == 400
    assert response.json()["error"]["message"] == "Unknown settings: teleport."
    assert set(response.json()["error"]["details"]) == {"teleport", "applyThenFailRate", "tokenLatencyMs"}
