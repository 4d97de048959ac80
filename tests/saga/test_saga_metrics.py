"""The saga's metrics: outcomes, durations and provider calls move as the saga runs (providers by `responses`)."""

import uuid

import pytest

from sessions_app.saga import saga_advance
from tests.conftest import BOOK_URL, booking_body
from tests.saga.conftest import RESERVE_APPLY, feishu_reserve
from tests.test_metrics import scrape, value


@pytest.mark.django_db
def test_a_provisioned_meeting_counts_an_outcome_a_saga_duration_and_a_provider_call(
    providers, counselor_api, student, mentor
):
    providers.post(RESERVE_APPLY, json=feishu_reserve())
    session_id = counselor_api.post(BOOK_URL, booking_body(student=student, mentor=mentor), format="json").json()[
        "sessionId"
    ]
    before = scrape()

    saga_advance(session_id=uuid.UUID(session_id))

    after = scrape()
    outcome = {"session_type": "regular_mentoring", "status": "success"}
    assert (
        value(after, "booking_saga_outcomes_total", **outcome)
        == value(before, "booking_saga_outcomes_total", **outcome) + 1
    )
    duration = {**outcome, "provider": "feishu"}
    assert (
        value(after, "booking_saga_duration_seconds_count", **duration)
        == value(before, "booking_saga_duration_seconds_count", **duration) + 1
    )
    call = {"provider": "feishu", "operation": "create", "outcome": "ok"}
    assert (
        value(after, "booking_provider_call_duration_seconds_count", **call)
        == value(before, "booking_provider_call_duration_seconds_count", **call) + 1
    )


@pytest.mark.django_db
def test_a_failed_provider_call_is_counted_as_an_error(providers, counselor_api, student, mentor):
    providers.post(RESERVE_APPLY, status=503)
    session_id = counselor_api.post(BOOK_URL, booking_body(student=student, mentor=mentor), format="json").json()[
        "sessionId"
    ]
    before = scrape()

    saga_advance(session_id=uuid.UUID(session_id))

    # A bare 503 is a gateway's answer: the outcome is unknown, and counted so.
    error = {"provider": "feishu", "operation": "create", "error": "OutcomeUnknownError"}
    assert (
        value(scrape(), "booking_provider_call_errors_total", **error)
        == value(before, "booking_provider_call_errors_total", **error) + 1
    )
