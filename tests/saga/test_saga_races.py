"""Workers that really race for one saga: the row lock and the attempt lease, not luck, make one meeting."""

import json
import threading
import time

import pytest
import responses
from django.db import connection

from meetings_app.models import Meeting
from sessions_app.models import MeetingSaga, OutboxEvent, SagaState, Session, SessionStatus
from sessions_app.saga import saga_advance
from tests.conftest import BOOK_URL, booking_body
from tests.saga.conftest import RESERVE_APPLY, feishu_reserve

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.race]


def advance_at_once(session_id, workers: int) -> list:
    barrier = threading.Barrier(workers)
    steps: list = [None] * workers

    def work(i: int) -> None:
        try:
            barrier.wait()
            steps[i] = saga_advance(session_id=session_id)
        finally:
            connection.close()

    threads = [threading.Thread(target=work, args=(i,)) for i in range(workers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    return steps


def test_eight_workers_advancing_one_saga_make_one_meeting(providers, counselor_api, student, mentor):
    def slow_reserve(request):
        time.sleep(0.3)  # the provider takes its time: the other workers arrive while the call is open
        return 200, {}, json.dumps(feishu_reserve())

    providers.add_callback(responses.POST, RESERVE_APPLY, callback=slow_reserve)
    session_id = counselor_api.post(BOOK_URL, booking_body(student=student, mentor=mentor), format="json").json()[
        "sessionId"
    ]

    steps = advance_at_once(session_id, workers=8)

    assert all(step is not None and step.retry_in is None for step in steps)
    assert len([c for c in providers.calls if c.request.url.startswith(RESERVE_APPLY)]) == 1
    assert Meeting.objects.count() == 1
    session = Session.objects.get(id=session_id)
    assert session.status == SessionStatus.SCHEDULED and session.meeting == Meeting.objects.get()
    assert MeetingSaga.objects.get(session_id=session_id).state == SagaState.SUCCEEDED


def test_workers_racing_through_a_failing_provider_compensate_once(providers, counselor_api, student, mentor):
    providers.post(RESERVE_APPLY, status=400, json={"code": 99992402, "msg": "field validation failed"})
    session_id = counselor_api.post(BOOK_URL, booking_body(student=student, mentor=mentor), format="json").json()[
        "sessionId"
    ]

    advance_at_once(session_id, workers=8)

    session = Session.objects.get(id=session_id)
    assert session.status == SessionStatus.MEETING_FAILED
    results = OutboxEvent.objects.filter(type__endswith=".meeting.operation.result")
    assert [e.payload["status"] for e in results] == ["failed"]
