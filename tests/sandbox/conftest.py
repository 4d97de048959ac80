import pytest

from meetings_app.sandbox import ProviderSandbox


@pytest.fixture
def sandbox():
    """A sandbox of this test's own, on a free port."""
    server = ProviderSandbox(port=0).start()
    yield server
    server.stop()
