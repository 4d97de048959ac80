"""The benchmark's people, made through the services like any other: one counselor with a token, and `pairs`
mentor/student pairs, each student with a large balance of `regular_mentoring` units.

Booking number k goes to pair k % pairs at quarter-hour k // pairs of the calendar: two bookings never share a
person at the same time (no conflicts), and no entitlement row is locked by two bookings at once unless more
than `pairs` bookings are in flight.
"""

from dataclasses import dataclass
from datetime import datetime, timedelta
from uuid import UUID

from django.db import transaction
from rest_framework.authtoken.models import Token

from accounts_app.models import Role
from accounts_app.services import person_create
from holds_app.services import entitlement_grant

SESSION_TYPE = "regular_mentoring"
SLOT_MINUTES = 15


@dataclass(frozen=True)
class Pair:
    mentor_id: UUID
    student_id: UUID
    entitlement_id: UUID


@dataclass(frozen=True)
class BenchSeed:
    counselor_id: UUID
    token: str
    pairs: list[Pair]


def bench_seed(*, pairs: int, units: int) -> BenchSeed:
    counselor = person_create(username="bench-counselor", role=Role.COUNSELOR)
    made = []
    for i in range(pairs):
        with transaction.atomic():
            mentor = person_create(
                username=f"bench-mentor-{i}", role=Role.MENTOR, feishu_open_id=f"ou_bench_{i}", zoom_user_id="me"
            )
            student = person_create(username=f"bench-student-{i}", role=Role.STUDENT, counselor=counselor)
            entitlement = entitlement_grant(student_id=student.id, session_type=SESSION_TYPE, units=units)
        made.append(Pair(mentor.id, student.id, entitlement.id))
    return BenchSeed(counselor.id, Token.objects.create(user=counselor).key, made)


class SlotPlan:
    """Hands out (pair, start) for booking after booking, as described above; `first` is a whole quarter-hour."""

    def __init__(self, *, seed: BenchSeed, first: datetime, pairs: int | None = None):
        self.seed = seed
        self.first = first
        self.pairs = pairs or len(seed.pairs)
        self.k = 0

    def next(self) -> tuple[Pair, datetime]:
        k, self.k = self.k, self.k + 1
        return self.seed.pairs[k % self.pairs], self.first + timedelta(minutes=SLOT_MINUTES * (k // self.pairs))

    def body(self) -> dict:
        pair, start = self.next()
        return {
            "sessionType": SESSION_TYPE,
            "studentId": str(pair.student_id),
            "mentorId": str(pair.mentor_id),
            "scheduledStartTime": start.isoformat(),
            "duration": SLOT_MINUTES,
            "meetingProvider": "feishu",
        }
