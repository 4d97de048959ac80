"""The operator's Django admin: every page a superuser opens renders (200), with data present."""

import uuid

import pytest
from django.contrib import admin
from django.contrib.auth.models import Group
from django.test import Client
from django.urls import reverse

from accounts_app.models import Role
from holds_app.models import Entitlement
from holds_app.services import entitlement_units_set
from meetings_app.models import Meeting, ProviderEvent
from meetings_app.services import provider_pause, provider_resume
from sessions_app.models import ManualIntervention, MeetingOperation, Session
from tests.conftest import BOOK_URL, booking_body
from tests.factories import UserFactory, future
from tests.notification_factories import (
    CalendarEventFactory,
    GivenUpDeliveryFactory,
    NotificationDeliveryFactory,
    ReminderFactory,
)

REGISTERED = sorted(admin.site._registry, key=lambda model: model._meta.label)
MODEL_IDS = [model._meta.label for model in REGISTERED]
SEARCHABLE_BY_ID = [model for model in REGISTERED if "id" in admin.site._registry[model].search_fields]


def _url(model, view: str, *args) -> str:
    return reverse(f"admin:{model._meta.app_label}_{model._meta.model_name}_{view}", args=args)


@pytest.fixture
def booked(counselor_api, student, mentor) -> dict:
    """One booked session (with its hold, slots, outbox event and idempotency record), so every list has rows."""
    response = counselor_api.post(
        BOOK_URL, booking_body(student=student, mentor=mentor), format="json", HTTP_IDEMPOTENCY_KEY="admin-test"
    )
    assert response.status_code == 201, response.json()
    # Meetings appear only once the (asynchronous) provider call answers, and groups are not used by the
    # booking flow: add one of each so that their pages have a row to show too.
    meeting = Meeting.objects.create(
        provider="zoom",
        provider_meeting_id="85512345678",
        meeting_no="85512345678",
        join_url="https://zoom.us/j/85512345678",
        start_time=future(),
        duration_minutes=60,
        topic="Resume review",
    )
    # A provider's webhook about that meeting (meetings_app/provider_events.py).
    ProviderEvent.objects.create(
        provider="zoom",
        event_key="admin-test",
        kind="started",
        provider_reference="85512345678",
        meeting=meeting,
        happened_at=future(),
        payload={"event": "meeting.started"},
    )
    Group.objects.create(name="operators")
    MeetingOperation.objects.create(session_id=response.json()["sessionId"], kind="cancel")
    # Notifications come from the worker; one row of each so their pages have something to show.
    CalendarEventFactory(session_id=response.json()["sessionId"])
    ReminderFactory(session_id=response.json()["sessionId"])
    NotificationDeliveryFactory(session_id=response.json()["sessionId"])
    GivenUpDeliveryFactory(session_id=response.json()["sessionId"])
    # A balance changed by a person, so the balance changes have a row too.
    entitlement = Entitlement.objects.filter(student=student).first()
    entitlement_units_set(entitlement=entitlement, units_bought=entitlement.units_bought + 1, actor=None, via="admin")
    # A provider paused and resumed by an operator, so the pauses and their audit have rows too.
    provider_pause(provider="zoom", actor=None, reason="admin test")
    provider_resume(provider="zoom", actor=None)
    return response.json()


@pytest.fixture
def operator(db) -> Client:
    superuser = UserFactory(role=Role.STAFF, is_staff=True, is_superuser=True)
    client = Client()
    client.force_login(superuser)
    return client


def test_every_model_that_matters_is_registered():
    labels = set(MODEL_IDS)
    assert {
        "sessions_app.Session",
        "sessions_app.OutboxEvent",
        "sessions_app.IdempotencyRecord",
        "holds_app.Hold",
        "holds_app.Entitlement",
        "calendar_app.CalendarSlot",
        "meetings_app.Meeting",
        "accounts_app.User",
    } <= labels


def test_the_admin_index_renders(operator, booked):
    assert operator.get(reverse("admin:index")).status_code == 200


@pytest.mark.parametrize("model", REGISTERED, ids=MODEL_IDS)
@pytest.mark.parametrize(
    "query",
    ["", f"?q={uuid.uuid4()}", "?q=abc", "?q=%E4%B8%AD", "?q=%00"],
    ids=["plain", "uuid search", "text search", "non-ascii search", "NUL search"],
)
def test_the_changelist_of_every_registered_model_renders(operator, booked, model, query):
    # when the operator opens the list, plain or searching
    response = operator.get(_url(model, "changelist") + query)

    # then it renders (not an error page, not a redirect to ?e=1)
    assert response.status_code == 200, (model, query, response.status_code)


@pytest.mark.parametrize("model", SEARCHABLE_BY_ID, ids=[m._meta.label for m in SEARCHABLE_BY_ID])
def test_searching_by_an_existing_id_finds_it(operator, booked, model):
    # given a row of the model that exists after a booking
    obj = model.objects.first()
    assert obj is not None

    response = operator.get(_url(model, "changelist") + f"?q={obj.pk}")

    assert response.status_code == 200
    assert response.context["cl"].result_count >= 1


@pytest.mark.parametrize("model", REGISTERED, ids=MODEL_IDS)
def test_the_change_page_of_a_row_of_every_model_renders(operator, booked, model):
    obj = model.objects.first()
    assert obj is not None, model
    if model is ManualIntervention:
        # the queue shows only sagas that need a person
        model.objects.filter(pk=obj.pk).update(requires_manual_intervention=True, manual_intervention_reason="x")

    response = operator.get(_url(model, "change", obj.pk))

    assert response.status_code == 200, (model, response.status_code)


def test_the_change_page_of_a_booked_session_renders_it(operator, booked):
    response = operator.get(_url(Session, "change", booked["sessionId"]))

    assert response.status_code == 200
    assert booked["sessionId"] in response.content.decode()
    assert "PENDING_MEETING" in response.content.decode() or "Pending meeting" in response.content.decode()


def test_the_sessions_changelist_filters_by_status_and_type(operator, booked):
    # when the operator filters pending regular mentoring sessions
    response = operator.get(
        _url(Session, "changelist") + "?status__exact=PENDING_MEETING&session_type__exact=regular_mentoring"
    )

    # then the booked session is listed
    assert response.status_code == 200
    assert [str(s.id) for s in response.context["cl"].result_list] == [booked["sessionId"]]


def test_the_sessions_changelist_filter_excludes_other_statuses(operator, booked):
    response = operator.get(_url(Session, "changelist") + "?status__exact=SCHEDULED")

    assert response.status_code == 200
    assert response.context["cl"].result_count == 0


@pytest.mark.parametrize("model", REGISTERED, ids=MODEL_IDS)
def test_the_add_page_renders_where_adding_is_allowed(operator, model):
    response = operator.get(_url(model, "add"))

    allowed = admin.site._registry[model].has_add_permission(response.wsgi_request)
    assert response.status_code == (200 if allowed else 403), (model, response.status_code)
