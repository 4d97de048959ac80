"""Demo people and balances, created once and found again on every later run (API.md "Demo data")."""

import json
from datetime import time

from django.conf import settings
from django.core.management.base import BaseCommand
from django.db import transaction
from rest_framework.authtoken.models import Token

from accounts_app.models import Role, User
from accounts_app.services import operator_make, person_create
from booking_project.demo import demo_only
from calendar_app.services import working_hours_give
from holds_app.selectors import balances_for_student
from holds_app.services import entitlement_grant
from sessions_app.types import SESSION_TYPES

UNITS_PER_TYPE = 10

MENTORS = [
    ("mentor.li", "Li", "Wei", "Asia/Shanghai", "google"),
    ("mentor.garcia", "Ana", "Garcia", "Europe/Madrid", "google"),
    ("mentor.chen", "Chen", "Jing", "Asia/Shanghai", "feishu"),
]
# Each mentor's weekly hours, in the mentor's own time zone (Ana Garcia's is Madrid's: the offered times of a
# counselor in Shanghai move by an hour when Spain changes its clocks).
MORNING_AND_AFTERNOON = [(time(9), time(12)), (time(13), time(18))]
WORKING_HOURS = {
    "mentor.li": [(d, s, e) for d in range(5) for s, e in MORNING_AND_AFTERNOON],
    "mentor.garcia": [(d, time(9), time(17)) for d in range(5)],
    "mentor.chen": [(d, s, e) for d in range(5) for s, e in MORNING_AND_AFTERNOON] + [(5, time(10), time(14))],
}
STUDENTS = [
    ("student.zhang", "Zhang", "Min", "Asia/Shanghai", "feishu"),
    ("student.okafor", "Ada", "Okafor", "Europe/London", "google"),
    ("student.wang", "Wang", "Fang", "Asia/Shanghai", "feishu"),
]


class Command(BaseCommand):
    help = "Create (idempotently) demo counselors, mentors and students with balances; --json prints ids and tokens."

    def add_arguments(self, parser):
        parser.add_argument("--json", action="store_true", help="Print the demo ids and tokens as JSON only.")

    def handle(self, *args, **options):
        demo_only("seed_demo", "it makes people whose password is published in the README.")
        password = settings.DEMO_PASSWORD
        with transaction.atomic():
            counselor = _person("counselor", Role.COUNSELOR, "Grace", "Hopper", "Asia/Shanghai", "feishu", password)
            other = _person("counselor.two", Role.COUNSELOR, "Alan", "Turing", "Europe/London", "google", password)
            # An operator, not a superuser: the operators group's permissions (work the queue, retry
            # notifications, look at everything), as a real operator would have. Made so again on every run.
            operator_make(user=_person("operator", Role.STAFF, "Ops", "Desk", "UTC", "google", password))
            mentors = [_person(u, Role.MENTOR, first, last, tz, cal, None) for u, first, last, tz, cal in MENTORS]
            for mentor in mentors:
                working_hours_give(mentor_id=mentor.id, weekly=WORKING_HOURS[mentor.username])
            students = [
                _person(u, Role.STUDENT, first, last, tz, cal, None, counselor=counselor)
                for u, first, last, tz, cal in STUDENTS
            ]
            for student in students:
                for session_type in SESSION_TYPES.values():
                    if session_type.billable:
                        entitlement_grant(student_id=student.id, session_type=session_type.name, units=UNITS_PER_TYPE)
            demo = {
                "counselor": {"id": str(counselor.id), "token": Token.objects.get_or_create(user=counselor)[0].key},
                "otherCounselor": {"id": str(other.id), "token": Token.objects.get_or_create(user=other)[0].key},
                "mentors": [{"id": str(m.id)} for m in mentors],
                "students": [{"id": str(s.id), "balances": _balances(s)} for s in students],
            }
        if options["json"]:
            self.stdout.write(json.dumps(demo, indent=2))
            return
        self.stdout.write(
            "Demo data ready.\n"
            f"  counselor login: counselor / {password}   API token: {demo['counselor']['token']}\n"
            f"  second counselor: counselor.two / {password}\n"
            f"  operator (admin, the operators group): operator / {password}\n"
            f"  mentors: {', '.join(u for u, *_ in MENTORS)}; students: {', '.join(u for u, *_ in STUDENTS)}"
        )


def _balances(student: User) -> dict[str, int]:
    free = balances_for_student(student_id=student.id)
    return {t.name: free.get(t.name, 0) for t in SESSION_TYPES.values() if t.billable}


def _person(username, role, first, last, tz, calendar, password, counselor=None) -> User:
    existing = User.objects.filter(username=username).first()
    if existing is not None:
        return existing
    user = person_create(
        username=username,
        role=role,
        email=f"{username}@example.com",
        first_name=first,
        last_name=last,
        password=password,
        time_zone=tz,
        feishu_open_id=f"ou_{username.replace('.', '_')}",
        zoom_user_id=f"{username}@example.com",
        calendar_provider=calendar,
        counselor=counselor,
    )
    return user
