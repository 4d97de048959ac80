"""The operators' list of failed notifications and its "retry" action."""

import pytest
from django.test import Client
from django.urls import reverse

from notifications_app.models import FailedNotification, FailedNotificationStatus
from tests.factories import StaffFactory
from tests.notification_factories import FailedNotificationFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def operator():
    return StaffFactory(is_superuser=True)


def test_retry_enqueues_each_parked_notification_again_and_records_who_and_when(
    operator, monkeypatch, django_capture_on_commit_callbacks
):
    # given
    parked = FailedNotificationFactory()
    already = FailedNotificationFactory(status=FailedNotificationStatus.RETRIED)
    sent = []
    monkeypatch.setattr("celery.current_app.send_task", lambda name, kwargs: sent.append((name, kwargs)))
    client = Client()
    client.force_login(operator)
    url = reverse("admin:notifications_app_failednotification_changelist")
    assert parked.error[:40] in client.get(url).content.decode()

    # when
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(url, {"action": "retry", "_selected_action": [parked.id, already.id]}, follow=True)

    # then
    assert response.status_code == 200
    parked.refresh_from_db()
    assert parked.status == FailedNotificationStatus.RETRIED
    assert parked.retried_by == operator and parked.retried_at is not None
    assert sent == [(parked.task, parked.payload)]
    assert FailedNotification.objects.get(id=already.id).retried_by is None
