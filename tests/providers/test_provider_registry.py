"""One client per provider per process, shared by every thread, rebuilt when its settings change."""

import json
import threading
import time

import pytest
import responses

from meetings_app.providers import (
    FeishuMeetingClient,
    ZoomMeetingClient,
    meeting_provider_client,
    meeting_provider_clients_reset,
)

FEISHU = "https://feishu.test"


@pytest.fixture
def feishu_settings(settings):
    settings.FEISHU_BASE_URL = FEISHU
    settings.FEISHU_APP_ID = "cli_app"
    settings.FEISHU_APP_SECRET = "secret"
    return settings


def test_each_provider_name_gives_the_same_client_every_time():
    # when
    first, again = meeting_provider_client("feishu"), meeting_provider_client("feishu")
    zoom = meeting_provider_client("zoom")

    # then
    assert first is again
    assert isinstance(first, FeishuMeetingClient) and first.name == "feishu"
    assert isinstance(zoom, ZoomMeetingClient) and zoom.name == "zoom"


def test_an_unknown_provider_is_refused():
    with pytest.raises(ValueError, match="teams"):
        meeting_provider_client("teams")


def test_reset_makes_the_next_call_build_a_new_client():
    # given
    before = meeting_provider_client("zoom")

    # when
    meeting_provider_clients_reset()

    # then
    assert meeting_provider_client("zoom") is not before


def test_changing_a_provider_setting_builds_a_client_that_uses_it(settings, provider_api):
    # given a client made before the base URL changes
    before = meeting_provider_client("feishu")
    settings.FEISHU_BASE_URL = "https://feishu-sandbox.test"
    provider_api.add(
        responses.POST,
        "https://feishu-sandbox.test/open-apis/auth/v3/tenant_access_token/internal",
        json={"code": 0, "tenant_access_token": "t-1", "expire": 7200},
    )
    provider_api.add(
        responses.DELETE,
        "https://feishu-sandbox.test/open-apis/vc/v1/reserves/r-1",
        json={"code": 0, "msg": "success", "data": {}},
    )

    # when
    after = meeting_provider_client("feishu")
    after.cancel("r-1")

    # then
    assert after is not before
    assert len(provider_api.calls) == 2


def test_threads_racing_on_a_cold_client_fetch_the_token_once(feishu_settings, provider_api):
    # given a token endpoint slow enough for every thread to arrive while the first fetch is in flight
    def slow_token(request):
        time.sleep(0.05)
        return 200, {}, json.dumps({"code": 0, "tenant_access_token": "t-shared", "expire": 7200})

    provider_api.add_callback(
        responses.POST, f"{FEISHU}/open-apis/auth/v3/tenant_access_token/internal", callback=slow_token
    )
    provider_api.add(
        responses.DELETE, f"{FEISHU}/open-apis/vc/v1/reserves/r-1", json={"code": 0, "msg": "success", "data": {}}
    )
    start = threading.Barrier(8)
    failures: list[Exception] = []

    def cancel() -> None:
        start.wait()
        try:
            meeting_provider_client("feishu").cancel("r-1")
        except Exception as error:  # reported by the main thread, where pytest sees it
            failures.append(error)

    # when
    threads = [threading.Thread(target=cancel) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=10)

    # then
    assert failures == []
    token_calls = [call for call in provider_api.calls if "tenant_access_token" in call.request.url]
    assert len(token_calls) == 1
    deletes = [call for call in provider_api.calls if call.request.method == "DELETE"]
    assert len(deletes) == 8
    assert {call.request.headers["Authorization"] for call in deletes} == {"Bearer t-shared"}
