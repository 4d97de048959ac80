"""The saga tests' `responses` providers serve the lifecycle tests too."""

from tests.saga.conftest import providers  # noqa: F401
