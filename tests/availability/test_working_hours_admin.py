"""Working hours are edited in the admin, on the mentor, by whoever holds the permissions; seed_demo gives
the demo mentors theirs once."""

import io
from datetime import time

import pytest
from django.contrib.auth.models import Permission
from django.core.management import call_command
from django.test import Client
from django.urls import reverse

from accounts_app.models import Role, User
from calendar_app.models import MentorSchedule, WorkingHours
from tests.factories import MentorFactory, StaffFactory, UserFactory

pytestmark = pytest.mark.django_db


def logged_in(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


def inline_form(mentor, **row) -> dict:
    return {
        "working_hours-TOTAL_FORMS": "1",
        "working_hours-INITIAL_FORMS": "0",
        "working_hours-0-weekday": row.get("weekday", 0),
        "working_hours-0-starts_at": row.get("starts_at", "09:00"),
        "working_hours-0-ends_at": row.get("ends_at", "12:00"),
        "working_hours_exceptions-TOTAL_FORMS": "0",
        "working_hours_exceptions-INITIAL_FORMS": "0",
    }


def test_an_admin_gives_a_mentor_weekly_hours_on_the_mentors_page():
    mentor = MentorFactory()
    admin = logged_in(UserFactory(role=Role.STAFF, is_staff=True, is_superuser=True))
    url = reverse("admin:calendar_app_mentorschedule_change", args=[mentor.pk])

    response = admin.post(url, inline_form(mentor))

    assert response.status_code == 302, response.content.decode()[:2000]
    assert list(WorkingHours.objects.filter(mentor=mentor).values_list("weekday", "starts_at", "ends_at")) == [
        (0, time(9), time(12))
    ]
    # A range that ends before it starts is refused on the form, not by the database.
    response = admin.post(url, inline_form(mentor, weekday=1, starts_at="12:00", ends_at="09:00"))
    assert response.status_code == 200 and WorkingHours.objects.filter(mentor=mentor).count() == 1


def test_staff_who_may_only_look_cannot_change_them():
    mentor = MentorFactory()
    staff = StaffFactory()
    staff.user_permissions.add(
        *Permission.objects.filter(codename__in=["view_mentorschedule", "view_workinghours"]),
    )
    url = reverse("admin:calendar_app_mentorschedule_change", args=[mentor.pk])

    assert logged_in(staff).get(url).status_code == 200
    response = logged_in(staff).post(url, inline_form(mentor))

    assert response.status_code == 403
    assert not WorkingHours.objects.filter(mentor=mentor).exists()


def test_the_mentors_page_lists_mentors_only():
    mentor, student = MentorFactory(), UserFactory(role=Role.STUDENT)

    assert set(MentorSchedule.objects.values_list("id", flat=True)) == {mentor.id}
    admin = logged_in(UserFactory(role=Role.STAFF, is_staff=True, is_superuser=True))
    url = reverse("admin:calendar_app_mentorschedule_change", args=[student.pk])
    assert admin.get(url).status_code == 302  # not a mentor: "doesn't exist"


def test_seed_demo_gives_every_demo_mentor_hours_once():
    for _ in range(2):
        call_command("seed_demo", "--json", stdout=io.StringIO())

    mentors = User.objects.filter(role=Role.MENTOR)
    assert mentors.count() >= 3
    for mentor in mentors:
        hours = WorkingHours.objects.filter(mentor=mentor)
        assert hours.exists() and hours.count() == len(set(hours.values_list("weekday", "starts_at")))
    assert {m.profile.time_zone for m in mentors} > {"Asia/Shanghai"}
