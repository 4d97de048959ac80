"""The integration tests' stack (tests/stack.py): package-scoped, so it stops before other packages run."""

import pytest

from tests import stack as shared_stack
from tests.stack import Sandbox, Stack, wait_for  # noqa: F401 - imported from here by the integration tests

# The shared stack's fixtures and report hook, found by name in this conftest (one stack for this package).
stack = shared_stack.stack
sandbox = shared_stack.sandbox
_dump_stack_logs_on_failure = shared_stack._dump_stack_logs_on_failure
_worker_idle_after_test = shared_stack._worker_idle_after_test
pytest_runtest_makereport = shared_stack.pytest_runtest_makereport


@pytest.fixture
def people(stack):
    """A counselor with a funded student, and a mentor: who the integration tests book for."""
    from tests.conftest import funded_student
    from tests.factories import CounselorFactory, MentorFactory

    counselor = CounselorFactory()
    return {"counselor": counselor, "student": funded_student(counselor), "mentor": MentorFactory()}
