"""The operators' view of notifications that gave up (deliveries needing a person) and its "retry" action."""

import pytest
from django.test import Client
from django.urls import reverse

from notifications_app import tasks
from notifications_app.models import DeliveryState, NotificationDelivery
from tests.factories import StaffFactory
from tests.notification_factories import GivenUpDeliveryFactory, NotificationDeliveryFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def operator():
    return StaffFactory(is_superuser=True)


def test_retry_sends_each_given_up_notification_again_and_records_who_and_when(
    operator, monkeypatch, django_capture_on_commit_callbacks
):
    # given: one delivery that gave up, one still on its way
    given_up = GivenUpDeliveryFactory()
    pending = NotificationDeliveryFactory()
    sent = []
    monkeypatch.setattr(tasks.deliver_notification, "apply_async", lambda kwargs, **_: sent.append(kwargs))
    client = Client()
    client.force_login(operator)
    url = reverse("admin:notifications_app_notificationdelivery_changelist")
    page = client.get(url, {"requires_manual_intervention__exact": "1"}).content.decode()
    assert given_up.last_error[:40] in page and str(pending.session_id) not in page

    # when
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(url, {"action": "retry", "_selected_action": [given_up.id, pending.id]}, follow=True)

    # then: the one that gave up starts again with fresh attempts, its courier on the way; the other is untouched
    assert response.status_code == 200
    given_up.refresh_from_db()
    assert (given_up.state, given_up.attempts) == (DeliveryState.PENDING, 0)
    assert not given_up.requires_manual_intervention
    assert given_up.resolved_by == operator and given_up.resolved_at is not None
    assert sent == [{"delivery_id": str(given_up.id)}]
    assert NotificationDelivery.objects.get(id=pending.id).resolved_by is None
