"""The operators' one queue (/admin/queue/): every kind of provider work that gave up, in one place, with the
same two actions (retry, resolve with a note), each under its permission."""

import pytest
from django.contrib.auth.models import Permission
from django.urls import reverse

from accounts_app.models import User
from accounts_app.services import operator_make
from notifications_app.models import DeliveryState, NotificationDelivery, Reminder
from sessions_app.models import AuditAction, AuditEntry, MeetingSaga
from tests.conftest import BOOK_URL, booking_body
from tests.factories import StaffFactory
from tests.notification_factories import GivenUpDeliveryFactory, ReminderFactory
from tests.test_admin_permissions import logged_in

pytestmark = pytest.mark.django_db

QUEUE = reverse("admin-work-queue")


@pytest.fixture
def operator() -> User:
    return User.objects.get(pk=operator_make(user=StaffFactory()).pk)


@pytest.fixture
def flagged_saga(counselor_api, student, mentor) -> MeetingSaga:
    session_id = counselor_api.post(BOOK_URL, booking_body(student=student, mentor=mentor), format="json").json()[
        "sessionId"
    ]
    MeetingSaga.objects.filter(session_id=session_id).update(
        requires_manual_intervention=True, manual_intervention_reason="a Feishu reservation may have been left behind"
    )
    return MeetingSaga.objects.get(session_id=session_id)


@pytest.fixture
def given_up_reminder(flagged_saga) -> Reminder:
    reminder = ReminderFactory(session_id=flagged_saga.session_id)
    Reminder.objects.filter(id=reminder.id).update(
        state=DeliveryState.GIVEN_UP, requires_manual_intervention=True, manual_intervention_reason="SMTP refused"
    )
    return Reminder.objects.get(id=reminder.id)


def test_every_kind_that_waits_for_a_person_is_listed_in_one_place(operator, flagged_saga, given_up_reminder):
    delivery = GivenUpDeliveryFactory()

    page = logged_in(operator).get(QUEUE)

    assert page.status_code == 200
    body = page.content.decode()
    assert f"meeting_saga:{flagged_saga.session_id}" in body
    assert f"notification_delivery:{delivery.id}" in body
    assert f"reminder:{given_up_reminder.id}" in body
    assert "a Feishu reservation may have been left behind" in body
    # and the admin's index leads there
    assert QUEUE in logged_in(operator).get(reverse("admin:index")).content.decode()


def test_resolving_with_a_note_works_every_kind_alike_and_is_recorded(operator, flagged_saga, given_up_reminder):
    delivery = GivenUpDeliveryFactory()
    chosen = [
        f"meeting_saga:{flagged_saga.session_id}",
        f"notification_delivery:{delivery.id}",
        f"reminder:{given_up_reminder.id}",
    ]

    response = logged_in(operator).post(QUEUE, {"action": "resolve", "rows": chosen, "note": "checked by hand"})

    assert response.status_code == 302
    for row in (
        MeetingSaga.objects.get(pk=flagged_saga.pk),
        NotificationDelivery.objects.get(pk=delivery.pk),
        Reminder.objects.get(pk=given_up_reminder.pk),
    ):
        assert not row.requires_manual_intervention
        assert row.resolved_by_id == operator.id and row.resolution_note == "checked by hand"
    assert AuditEntry.objects.filter(
        session_id=flagged_saga.session_id, action=AuditAction.INTERVENTION_RESOLVED, actor=operator
    ).exists()
    assert "Nothing waits for a person." in logged_in(operator).get(QUEUE).content.decode()


def test_resolving_needs_a_note_and_changes_nothing_without_one(operator, flagged_saga):
    logged_in(operator).post(QUEUE, {"action": "resolve", "rows": [f"meeting_saga:{flagged_saga.session_id}"]})

    assert MeetingSaga.objects.get(pk=flagged_saga.pk).requires_manual_intervention


def test_retrying_a_delivery_sends_it_again(operator):
    delivery = GivenUpDeliveryFactory()

    logged_in(operator).post(QUEUE, {"action": "retry", "rows": [f"notification_delivery:{delivery.id}"]})

    delivery.refresh_from_db()
    assert delivery.state == DeliveryState.PENDING and delivery.attempts == 0
    assert not delivery.requires_manual_intervention and delivery.resolved_by_id == operator.id


@pytest.mark.parametrize("action", ["retry", "resolve"])
def test_staff_without_the_permission_get_403_and_nothing_changes(flagged_saga, action):
    looker = StaffFactory()
    looker.user_permissions.set(Permission.objects.filter(codename="view_manualintervention"))
    looker = User.objects.get(pk=looker.pk)
    delivery = GivenUpDeliveryFactory()
    chosen = [f"meeting_saga:{flagged_saga.session_id}", f"notification_delivery:{delivery.id}"]

    response = logged_in(looker).post(QUEUE, {"action": action, "rows": chosen, "note": "n"})

    assert response.status_code == 403
    assert MeetingSaga.objects.get(pk=flagged_saga.pk).requires_manual_intervention
    assert NotificationDelivery.objects.get(pk=delivery.pk).state == DeliveryState.GIVEN_UP


def test_staff_see_only_the_kinds_they_may_view(flagged_saga):
    looker = StaffFactory()
    looker.user_permissions.set(Permission.objects.filter(codename="view_notificationdelivery"))
    delivery = GivenUpDeliveryFactory()

    body = logged_in(User.objects.get(pk=looker.pk)).get(QUEUE).content.decode()

    assert f"notification_delivery:{delivery.id}" in body
    assert str(flagged_saga.session_id) not in body


def test_the_queue_is_for_staff_only(counselor):
    response = logged_in(counselor).get(QUEUE)

    assert response.status_code == 302 and "/admin/login/" in response["Location"]
