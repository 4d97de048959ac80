import uuid

import pytest
import responses

from calendar_app.providers import calendar_provider_clients_reset

FEISHU = "https://feishu.test"
GOOGLE = "https://google.test/calendar/v3"


@pytest.fixture(autouse=True)
def calendar_busy_settings(settings):
    """Both calendar providers at `responses` addresses, and a cache of this test's own: the cache is Redis,
    shared with earlier runs and other checkouts, and an answer cached there must not leak into this test."""
    settings.FEISHU_BASE_URL = FEISHU
    settings.FEISHU_APP_ID = "cli_a1b2"
    settings.FEISHU_APP_SECRET = "feishu-app-secret"
    settings.GOOGLE_CALENDAR_BASE_URL = GOOGLE
    settings.GOOGLE_CALENDAR_ACCESS_TOKEN = "ya29.static-token"
    settings.GOOGLE_SERVICE_ACCOUNT_FILE = ""
    settings.CALENDAR_FREEBUSY_TIMEOUT_SECONDS = 2.0
    settings.CALENDAR_FREEBUSY_CACHE_SECONDS = 60
    settings.CACHES = {"default": {**settings.CACHES["default"], "KEY_PREFIX": f"test-busy-{uuid.uuid4().hex}"}}
    calendar_provider_clients_reset()
    yield settings
    calendar_provider_clients_reset()


@pytest.fixture
def provider_api():
    """The providers' HTTP APIs as `responses` answers them; any request nobody registered fails the test."""
    with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
        yield mock
