"""Where a pause shows: the admin (an operator with the permission pauses and resumes, audited; anyone else is
refused and changes nothing; the index says what is paused), /metrics, and the counselor's pages in both
languages."""

import pytest
from django.contrib.auth.models import Permission
from django.test import Client
from django.urls import reverse

from accounts_app.models import User
from meetings_app.models import PauseAction, ProviderPause, ProviderPauseChange
from meetings_app.services import provider_pause, provider_resume
from sessions_app.models import Session
from tests.conftest import BOOK_URL, booking_body
from tests.factories import StaffFactory
from tests.pages.test_pages import logged_in as counselor_logged_in
from tests.test_metrics import scrape, value

pytestmark = pytest.mark.django_db

PAUSES = reverse("admin:meetings_app_providerpause_changelist")
NOTICE = "Zoom is paused by an operator; the meeting will be created when it resumes."
NOTICE_ZH = "Zoom 已被运维人员暂停；恢复后将创建会议。"


def admin_client(user: User) -> Client:
    client = Client()
    client.force_login(user)
    return client


def pause_zoom_in_the_admin(client: Client, reason: str = "Zoom outage"):
    return client.post(PAUSES, {"action": "pause", "_selected_action": ["zoom"], "reason": reason})


def test_an_operator_pauses_and_resumes_zoom_in_the_admin_and_both_are_audited(operator):
    client = admin_client(operator)

    asking = client.post(PAUSES, {"action": "pause", "_selected_action": ["zoom"]})
    paused = pause_zoom_in_the_admin(client)
    index = client.get(reverse("admin:index"))
    resumed = client.post(PAUSES, {"action": "resume", "_selected_action": ["zoom"], "reason": "back"})

    assert asking.status_code == 200 and b'name="reason"' in asking.content  # the reason is asked for first
    assert paused.status_code == 302 and resumed.status_code == 302
    assert 'data-provider="zoom" data-paused="1"' in index.content.decode()
    assert not ProviderPause.objects.get(provider="zoom").paused
    changes = ProviderPauseChange.objects.order_by("at", "id")
    assert [(c.provider, c.action, c.actor_id, c.reason) for c in changes] == [
        ("zoom", PauseAction.PAUSE, operator.id, "Zoom outage"),
        ("zoom", PauseAction.RESUME, operator.id, "back"),
    ]
    audit = client.get(reverse("admin:meetings_app_providerpausechange_changelist"))
    assert audit.status_code == 200 and "Zoom outage" in audit.content.decode()


def test_staff_without_the_permission_is_refused_and_nothing_is_paused(db):
    user = StaffFactory()
    user.user_permissions.set(Permission.objects.filter(codename__in=["view_providerpause"]))
    client = admin_client(User.objects.get(pk=user.pk))

    assert client.get(PAUSES).status_code == 200  # may look
    response = pause_zoom_in_the_admin(client)

    assert response.status_code == 403
    assert not ProviderPause.objects.filter(paused=True).exists()
    assert not ProviderPauseChange.objects.exists()


def test_metrics_say_which_provider_is_paused_and_count_the_changes(operator, counselor_api, student, mentor):
    before = scrape()
    body = booking_body(student=student, mentor=mentor, meetingProvider="zoom")
    assert counselor_api.post(BOOK_URL, body, format="json").status_code == 201
    Session.objects.update(created_at=Session.objects.get().created_at.replace(year=2020))  # long pending
    provider_pause(provider="zoom", actor=operator, reason="outage")

    during = scrape()
    provider_resume(provider="zoom", actor=operator)
    after = scrape()

    assert value(during, "booking_provider_paused", provider="zoom") == 1
    assert value(during, "booking_provider_paused", provider="feishu") == 0
    assert value(after, "booking_provider_paused", provider="zoom") == 0
    # A session waiting for a paused provider is not counted late (no alert for what an operator decided).
    assert value(during, "booking_sessions_pending_meeting_over_threshold", threshold_seconds="10") == 0
    assert value(after, "booking_sessions_pending_meeting_over_threshold", threshold_seconds="10") == 1
    changes = "booking_provider_pause_changes_total"
    for action in ("pause", "resume"):
        grown = value(after, changes, provider="zoom", action=action) - value(
            before, changes, provider="zoom", action=action
        )
        assert grown == 1


def test_the_counselors_pages_say_zoom_is_paused_in_both_languages(operator, counselor, student, mentor):
    client = counselor_logged_in(counselor)
    body = booking_body(student=student, mentor=mentor, meetingProvider="zoom")
    session_id = client.post(BOOK_URL, body, content_type="application/json").json()["sessionId"]
    page = f"/app/sessions/{session_id}/"
    assert NOTICE not in client.get(page).content.decode()

    provider_pause(provider="zoom", actor=operator, reason="outage")
    english = client.get(page).content.decode()
    listed = client.get(reverse("counselor-sessions")).content.decode()
    client.post("/i18n/setlang/", {"language": "zh-hans", "next": "/app/"})
    chinese = client.get(page).content.decode()

    assert NOTICE in english
    assert f'data-session-id="{session_id}" data-waits="create"' in listed
    assert "Zoom is paused by an operator; its meetings will be created or changed when it resumes." in listed
    assert NOTICE_ZH in chinese
