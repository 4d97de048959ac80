"""The integration tests' stack (tests/stack.py): package-scoped, so it stops before other packages run."""

import uuid

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
    """Who the integration tests book for: a counselor with a funded student on Google Calendar, and a mentor
    on Feishu Calendar, both with an email address (so every notification channel is exercised)."""
    from accounts_app.models import Profile
    from tests.conftest import funded_student
    from tests.factories import CounselorFactory, MentorFactory

    counselor = CounselorFactory()
    student = funded_student(counselor)
    mentor = MentorFactory()
    tag = uuid.uuid4().hex[:8]
    student.email, mentor.email = f"student-{tag}@example.com", f"mentor-{tag}@example.com"
    student.save(update_fields=["email"])
    mentor.save(update_fields=["email"])
    Profile.objects.filter(user=student).update(calendar_provider="google")
    return {"counselor": counselor, "student": student, "mentor": mentor}
