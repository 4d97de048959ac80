import pytest
import responses

from meetings_app.providers import meeting_provider_clients_reset


class FakeClock:
    """A monotonic clock that moves only when a test says so."""

    def __init__(self, now: float = 10_000.0):
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture(autouse=True)
def fresh_provider_clients():
    meeting_provider_clients_reset()
    yield
    meeting_provider_clients_reset()


@pytest.fixture
def provider_api():
    """The providers' HTTP APIs as `responses` answers them; any request nobody registered fails the test."""
    with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
        yield mock


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()
