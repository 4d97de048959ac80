"""A provider paused by an operator: the providers answered by `responses` (tests/saga's), an operator."""

import pytest

from accounts_app.services import operator_make
from tests.factories import StaffFactory
from tests.saga.conftest import booked, providers  # noqa: F401 - fixtures shared with the saga's tests


@pytest.fixture
def operator(db):
    return operator_make(user=StaffFactory())
