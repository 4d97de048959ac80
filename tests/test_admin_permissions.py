"""Operators' permissions: each admin action declares the permission it needs, a staff user without it gets 403
and changes nothing, an operator (seed_demo's "operators" group) succeeds; balance edits are checked under the
entitlement's lock and recorded."""

import io
import threading

import pytest
from django.contrib.auth.models import Permission
from django.core.management import call_command
from django.db import connection
from django.test import Client
from django.urls import reverse

from accounts_app.models import User
from accounts_app.services import OPERATORS_GROUP, operator_make
from holds_app.models import BalanceChange, Entitlement, Hold, HoldStatus
from holds_app.services import holds_take
from notifications_app import tasks
from notifications_app.models import DeliveryState, NotificationDelivery
from sessions_app.models import MeetingSaga, Session
from tests.conftest import BOOK_URL, booking_body
from tests.factories import CounselorFactory, StaffFactory, student_for
from tests.notification_factories import GivenUpDeliveryFactory

pytestmark = pytest.mark.django_db

QUEUE = reverse("admin:sessions_app_manualintervention_changelist")
DELIVERIES = reverse("admin:notifications_app_notificationdelivery_changelist")
REMINDERS = reverse("admin:notifications_app_reminder_changelist")
QUEUE_ACTIONS = ["retry_provider_cancel", "retry_meeting_move", "reprovision", "resolve_with_note"]


def logged_in(user: User) -> Client:
    client = Client()
    client.force_login(user)
    return client


def staff_who_may_only_look() -> User:
    """Staff who see the queue and the failed notifications, and hold no permission to act on them."""
    user = StaffFactory()
    user.user_permissions.set(
        Permission.objects.filter(
            codename__in=["view_manualintervention", "view_notificationdelivery", "view_reminder"]
        )
    )
    return User.objects.get(pk=user.pk)  # permissions are cached per instance


@pytest.fixture
def queued(counselor_api, student, mentor) -> MeetingSaga:
    """A session's saga in the manual-intervention queue."""
    session_id = counselor_api.post(BOOK_URL, booking_body(student=student, mentor=mentor), format="json").json()[
        "sessionId"
    ]
    MeetingSaga.objects.filter(session_id=session_id).update(
        requires_manual_intervention=True, manual_intervention_reason="a Feishu reservation may have been left behind"
    )
    return MeetingSaga.objects.get(session_id=session_id)


def run_action(client: Client, url: str, action: str, pk, **extra):
    return client.post(url, {"action": action, "_selected_action": [pk], "index": 0, **extra})


@pytest.mark.parametrize("action", QUEUE_ACTIONS)
@pytest.mark.parametrize("who", ["staff who may look", "staff with no permission"])
def test_staff_without_the_permission_get_403_on_each_queue_action_and_nothing_changes(queued, action, who):
    user = staff_who_may_only_look() if who == "staff who may look" else StaffFactory()
    extra = {"note": "deleted the reservation"} if action == "resolve_with_note" else {}

    response = run_action(logged_in(user), QUEUE, action, queued.pk, **extra)

    assert response.status_code == 403
    saga = MeetingSaga.objects.get(pk=queued.pk)
    assert saga.requires_manual_intervention and saga.resolved_by is None and saga.round == queued.round


def test_staff_who_may_look_see_the_queue_without_its_actions(queued):
    response = logged_in(staff_who_may_only_look()).get(QUEUE)

    assert response.status_code == 200
    assert str(queued.session_id) in response.content.decode()
    assert not any(name in response.content.decode() for name in QUEUE_ACTIONS)


def test_an_operator_resolves_with_a_note(queued):
    operator = operator_make(user=StaffFactory())

    response = run_action(logged_in(operator), QUEUE, "resolve_with_note", queued.pk, note="deleted the reservation")

    assert response.status_code == 302
    saga = MeetingSaga.objects.get(pk=queued.pk)
    assert not saga.requires_manual_intervention
    assert saga.resolved_by == operator and saga.resolution_note == "deleted the reservation"


def test_an_operator_reprovisions_and_retries(queued, django_capture_on_commit_callbacks):
    operator = operator_make(user=StaffFactory())
    client = logged_in(operator)

    for action in ("reprovision", "retry_provider_cancel", "retry_meeting_move"):
        response = run_action(client, QUEUE, action, queued.pk)

        # then the action ran and said what it did (a pending session is re-driven; there is nothing to cancel
        # or move yet: the saga made no meeting)
        assert response.status_code == 302, action
        said = [str(m) for m in response.wsgi_request._messages]
        assert said and all(message.startswith(str(queued.session_id)) for message in said), (action, said)
    assert Session.objects.get(id=queued.session_id).status == "PENDING_MEETING"


@pytest.mark.parametrize("action", ["retry", "resolve"])
def test_staff_without_the_permission_get_403_on_the_notification_actions(monkeypatch, action):
    given_up = GivenUpDeliveryFactory()
    sent = []
    monkeypatch.setattr(tasks.deliver_notification, "apply_async", lambda kwargs, **_: sent.append(kwargs))

    response = run_action(logged_in(staff_who_may_only_look()), DELIVERIES, action, given_up.pk)

    assert response.status_code == 403
    given_up.refresh_from_db()
    assert given_up.state == DeliveryState.GIVEN_UP and given_up.requires_manual_intervention and sent == []


def test_staff_without_the_permission_get_403_on_a_reminders_retry():
    from tests.notification_factories import ReminderFactory

    reminder = ReminderFactory(state=DeliveryState.GIVEN_UP, requires_manual_intervention=True)

    response = run_action(logged_in(staff_who_may_only_look()), REMINDERS, "retry", reminder.pk)

    assert response.status_code == 403


def test_an_operator_retries_a_notification_that_gave_up(monkeypatch, django_capture_on_commit_callbacks):
    given_up = GivenUpDeliveryFactory()
    sent = []
    monkeypatch.setattr(tasks.deliver_notification, "apply_async", lambda kwargs, **_: sent.append(kwargs))
    operator = operator_make(user=StaffFactory())

    with django_capture_on_commit_callbacks(execute=True):
        response = run_action(logged_in(operator), DELIVERIES, "retry", given_up.pk)

    assert response.status_code == 302
    given_up.refresh_from_db()
    assert given_up.state == DeliveryState.PENDING and given_up.resolved_by == operator
    assert sent == [{"delivery_id": str(given_up.id)}]


def test_an_operator_resolves_a_notification_that_gave_up():
    given_up = GivenUpDeliveryFactory()
    operator = operator_make(user=StaffFactory())

    response = run_action(logged_in(operator), DELIVERIES, "resolve", given_up.pk)

    assert response.status_code == 302
    assert not NotificationDelivery.objects.get(pk=given_up.pk).requires_manual_intervention


def test_seed_demo_makes_the_demo_operator_an_operator_not_a_superuser():
    # given an operator left a superuser by an older seed
    call_command("seed_demo", stdout=io.StringIO())
    User.objects.filter(username="operator").update(is_superuser=True)

    # when the demo is seeded again
    call_command("seed_demo", stdout=io.StringIO())

    # then the operator is staff, not a superuser, in the operators group, with its permissions
    operator = User.objects.get(username="operator")
    assert operator.is_staff and not operator.is_superuser
    assert list(operator.groups.values_list("name", flat=True)) == [OPERATORS_GROUP]
    assert operator.has_perms(
        [
            "sessions_app.retry_manualintervention",
            "sessions_app.reprovision_manualintervention",
            "sessions_app.resolve_manualintervention",
            "notifications_app.retry_notification",
            "notifications_app.resolve_notification",
            "sessions_app.view_manualintervention",
            "sessions_app.view_session",
        ]
    )
    assert not operator.has_perm("holds_app.change_entitlement")
    assert not operator.has_perm("accounts_app.change_user")


def test_operators_group_command_makes_a_user_an_operator():
    user = StaffFactory(is_superuser=True)
    out = io.StringIO()

    call_command("operators_group", "--add", user.username, stdout=out)

    user.refresh_from_db()
    assert not user.is_superuser and user.groups.filter(name=OPERATORS_GROUP).exists()
    assert user.username in out.getvalue()


# --- balances -----------------------------------------------------------------------------------------------


@pytest.fixture
def balance_editor() -> Client:
    return logged_in(StaffFactory(is_superuser=True))


def change_units(client: Client, entitlement: Entitlement, units: int):
    url = reverse("admin:holds_app_entitlement_change", args=[entitlement.pk])
    return client.post(url, {"units_bought": units, **_empty_inlines()})


def _empty_inlines() -> dict[str, int]:
    return {
        f"{prefix}-{field}": 0
        for prefix in ("holds", "balance_changes")
        for field in ("TOTAL_FORMS", "INITIAL_FORMS", "MIN_NUM_FORMS", "MAX_NUM_FORMS")
    }


def test_a_balance_edit_is_recorded_with_who_and_from_what_to_what(balance_editor):
    entitlement = Entitlement.objects.create(
        student=student_for(CounselorFactory()), session_type="gap_analysis", units_bought=4
    )

    response = change_units(balance_editor, entitlement, 7)

    assert response.status_code == 302, response.content.decode()[:2000]
    entitlement.refresh_from_db()
    assert entitlement.units_bought == 7
    change = BalanceChange.objects.get()
    assert (change.units_before, change.units_after, change.units_spent, change.via) == (4, 7, 0, "admin")
    assert change.actor == response.wsgi_request.user


def test_a_balance_below_what_is_held_is_refused_and_not_recorded(balance_editor):
    entitlement = Entitlement.objects.create(
        student=student_for(CounselorFactory()), session_type="gap_analysis", units_bought=2
    )
    Hold.objects.create(entitlement=entitlement, session_id="00000000-0000-0000-0000-000000000001")

    response = change_units(balance_editor, entitlement, 0)

    assert response.status_code == 200
    assert "1 units are already held or consumed" in response.content.decode()
    entitlement.refresh_from_db()
    assert entitlement.units_bought == 2 and not BalanceChange.objects.exists()


@pytest.mark.race
@pytest.mark.django_db(transaction=True)
def test_a_balance_edit_waits_for_a_booking_holding_a_unit_and_then_counts_it(balance_editor):
    # given a student with 2 units, one held, and a booking in flight that holds the second (its transaction
    # holds the entitlement's lock and has not committed yet)
    entitlement = Entitlement.objects.create(
        student=student_for(CounselorFactory()), session_type="gap_analysis", units_bought=2
    )
    Hold.objects.create(entitlement=entitlement, session_id="00000000-0000-0000-0000-000000000001")
    locked, commit = threading.Event(), threading.Event()

    def booking_in_flight():
        from django.db import transaction

        try:
            with transaction.atomic():
                holds_take(session_id="00000000-0000-0000-0000-000000000002", student_ids=[entitlement.student_id],
                           session_type="gap_analysis")  # fmt: skip
                locked.set()
                commit.wait(timeout=30)
        finally:
            connection.close()

    booking = threading.Thread(target=booking_in_flight)
    booking.start()
    assert locked.wait(timeout=10)

    # when an operator lowers the balance to 1 meanwhile
    answers = []
    edit = threading.Thread(
        target=lambda: (answers.append(change_units(balance_editor, entitlement, 1)), connection.close())
    )
    edit.start()
    _wait_until_someone_waits_for_a_lock()
    commit.set()
    booking.join(timeout=30)
    edit.join(timeout=30)

    # then the edit waited for the booking, counted both held units and was refused: the balance never went below 0
    assert answers[0].status_code == 200
    assert "2 units are already held or consumed" in answers[0].content.decode()
    entitlement.refresh_from_db()
    assert entitlement.units_bought == 2
    assert Hold.objects.filter(entitlement=entitlement, status=HoldStatus.ACTIVE).count() == 2


def _wait_until_someone_waits_for_a_lock(timeout: float = 10) -> None:
    import time

    deadline = time.monotonic() + timeout
    with connection.cursor() as cursor:
        while time.monotonic() < deadline:
            cursor.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock'"
            )
            if cursor.fetchone()[0]:
                return
            time.sleep(0.02)
    pytest.fail("the balance edit never waited for the booking's lock")
