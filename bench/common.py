"""What the bench scripts share: Django set up against the configured database, fresh people to book
with (so nothing conflicts with earlier runs), and percentiles."""

import os
import sys
import uuid
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "booking_project.settings")

import django  # noqa: E402

django.setup()

from rest_framework.authtoken.models import Token  # noqa: E402

from accounts_app.models import Role, User  # noqa: E402
from accounts_app.services import person_create  # noqa: E402
from holds_app.services import entitlement_grant  # noqa: E402


@dataclass(frozen=True)
class BenchPeople:
    counselor: User
    mentor: User
    student: User
    token: str


def bench_people(*, units: int) -> BenchPeople:
    run = uuid.uuid4().hex[:8]
    counselor = person_create(username=f"bench-counselor-{run}", role=Role.COUNSELOR)
    mentor = person_create(
        username=f"bench-mentor-{run}", role=Role.MENTOR, feishu_open_id=f"ou_bench_{run}", zoom_user_id="me"
    )
    student = person_create(username=f"bench-student-{run}", role=Role.STUDENT, counselor=counselor)
    entitlement_grant(student_id=student.id, session_type="regular_mentoring", units=units)
    return BenchPeople(counselor, mentor, student, Token.objects.create(user=counselor).key)


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(p / 100 * (len(ordered) - 1))))]


def throttled_hint(statuses: list[int]) -> None:
    if 429 in statuses:
        print("Some bookings answered 429: start the system with THROTTLE_BOOK_RATE=none for the benchmarks.")
