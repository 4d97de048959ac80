"""The integration tests' stack (tests/stack.py): package-scoped, so it stops before other packages run."""

from tests.stack import (  # noqa: F401 - fixtures and the report hook are found by name here
    Sandbox,
    Stack,
    _dump_stack_logs_on_failure,
    pytest_runtest_makereport,
    sandbox,
    stack,
    wait_for,
)
