"""Idempotency-Key on booking (API.md "Book")."""

import threading
from datetime import UTC, timedelta

import pytest
from django.db import connection
from django.utils import timezone

from sessions_app.models import IdempotencyRecord, OutboxEvent, Session
from tests.conftest import BOOK_URL, api_client_for, booking_body, table_counts
from tests.factories import future


def test_same_key_and_body_twice_books_once_and_answers_the_same(counselor_api, mentor, student):
    body = booking_body(student=student, mentor=mentor)

    first = counselor_api.post(BOOK_URL, body, format="json", headers={"Idempotency-Key": "k-1"})
    second = counselor_api.post(BOOK_URL, body, format="json", headers={"Idempotency-Key": "k-1"})

    assert (first.status_code, second.status_code) == (201, 201)
    assert second.json() == first.json()
    assert second["Location"] == first["Location"]
    assert Session.objects.count() == 1 and OutboxEvent.objects.count() == 1


def test_replay_answers_the_first_response_even_after_the_session_moved_on(counselor_api, mentor, student):
    body = booking_body(student=student, mentor=mentor)
    first = counselor_api.post(BOOK_URL, body, format="json", headers={"Idempotency-Key": "k-2"})
    Session.objects.filter(id=first.json()["sessionId"]).update(failure_reason="changed later")

    second = counselor_api.post(BOOK_URL, body, format="json", headers={"Idempotency-Key": "k-2"})

    assert second.json() == first.json()


def test_same_key_with_another_body_is_422_and_books_nothing(counselor_api, mentor, student):
    first = counselor_api.post(
        BOOK_URL, booking_body(student=student, mentor=mentor), format="json", headers={"Idempotency-Key": "k-3"}
    )
    assert first.status_code == 201
    before = table_counts()

    other = counselor_api.post(
        BOOK_URL,
        booking_body(student=student, mentor=mentor, start=future(hours=80)),
        format="json",
        headers={"Idempotency-Key": "k-3"},
    )

    assert other.status_code == 422
    assert other.json()["error"]["code"] == "IDEMPOTENCY_KEY_REUSED"
    assert table_counts() == before


def test_keys_are_scoped_to_the_counselor(counselor_api, other_counselor, mentor, student):
    from tests.conftest import funded_student

    other_student = funded_student(other_counselor)
    mine = counselor_api.post(
        BOOK_URL, booking_body(student=student, mentor=mentor), format="json", headers={"Idempotency-Key": "shared"}
    )
    theirs = api_client_for(other_counselor).post(
        BOOK_URL,
        booking_body(student=other_student, mentor=mentor, start=future(hours=90)),
        format="json",
        headers={"Idempotency-Key": "shared"},
    )

    assert (mine.status_code, theirs.status_code) == (201, 201)
    assert Session.objects.count() == 2


def test_a_validation_error_is_not_remembered(counselor_api, mentor, student):
    bad = booking_body(student=student, mentor=mentor, duration=5)
    good = booking_body(student=student, mentor=mentor)

    refused = counselor_api.post(BOOK_URL, bad, format="json", headers={"Idempotency-Key": "k-4"})
    fixed = counselor_api.post(BOOK_URL, good, format="json", headers={"Idempotency-Key": "k-4"})

    assert (refused.status_code, fixed.status_code) == (400, 201)


def test_a_refused_booking_is_not_remembered(counselor_api, mentor, student):
    from tests.factories import MentorFactory

    start = future()
    counselor_api.post(BOOK_URL, booking_body(student=student, mentor=mentor, start=start), format="json")
    body = booking_body(student=student, mentor=MentorFactory(), start=start)

    conflict = counselor_api.post(BOOK_URL, body, format="json", headers={"Idempotency-Key": "k-5"})
    body["scheduledStartTime"] = future(hours=100).isoformat()
    retried = counselor_api.post(BOOK_URL, body, format="json", headers={"Idempotency-Key": "k-5"})

    assert (conflict.status_code, retried.status_code) == (409, 201)
    assert IdempotencyRecord.objects.count() == 1


def test_a_key_older_than_a_day_is_free_again(counselor_api, mentor, student):
    body = booking_body(student=student, mentor=mentor)
    counselor_api.post(BOOK_URL, body, format="json", headers={"Idempotency-Key": "k-6"})
    IdempotencyRecord.objects.update(created_at=timezone.now() - timedelta(hours=25))

    again = counselor_api.post(
        BOOK_URL,
        booking_body(student=student, mentor=mentor, start=future(hours=60)),
        format="json",
        headers={"Idempotency-Key": "k-6"},
    )

    assert again.status_code == 201
    assert Session.objects.count() == 2


def test_the_same_instant_written_another_way_is_the_same_request(counselor_api, mentor, student):
    # given a booking whose start is written in UTC with "Z"
    start = future().astimezone(UTC)
    body = booking_body(student=student, mentor=mentor, start=start)
    body["scheduledStartTime"] = start.isoformat().replace("+00:00", "Z")
    first = counselor_api.post(BOOK_URL, body, format="json", headers={"Idempotency-Key": "k-instant"})
    assert first.status_code == 201, first.content

    # when it is sent again with the same key, the start written as +00:00, then as +08:00, and the student as
    # a list of one
    plus_zero = {**body, "scheduledStartTime": start.isoformat()}
    as_list = {k: v for k, v in body.items() if k != "studentId"} | {
        "scheduledStartTime": start.astimezone(timezone.get_fixed_timezone(8 * 60)).isoformat(),
        "studentIds": [str(student.id)],
    }
    again = [
        counselor_api.post(BOOK_URL, other, format="json", headers={"Idempotency-Key": "k-instant"})
        for other in (plus_zero, as_list)
    ]

    # then it is the first booking, answered again, not a reused key
    assert [r.status_code for r in again] == [201, 201], [r.content for r in again]
    assert all(r.json() == first.json() and r["Idempotent-Replayed"] == "true" for r in again)
    assert Session.objects.count() == 1


def test_a_bare_body_difference_that_means_another_booking_is_still_422(counselor_api, mentor, student):
    body = booking_body(student=student, mentor=mentor, topic="Resume review")
    assert counselor_api.post(BOOK_URL, body, format="json", headers={"Idempotency-Key": "k-topic"}).status_code == 201

    other = counselor_api.post(
        BOOK_URL, {**body, "topic": "Mock interview"}, format="json", headers={"Idempotency-Key": "k-topic"}
    )

    assert other.status_code == 422
    assert other.json()["error"]["code"] == "IDEMPOTENCY_KEY_REUSED"


def _records(counselor, session_id, *, count: int, age: timedelta) -> None:
    IdempotencyRecord.objects.bulk_create(
        IdempotencyRecord(
            counselor=counselor, key=f"old-{age}-{n}", request_fingerprint="f" * 64, session_id=session_id,
            response_status=201, response_body={},
        )
        for n in range(count)
    )  # fmt: skip
    IdempotencyRecord.objects.filter(key__startswith=f"old-{age}-").update(created_at=timezone.now() - age)


def test_the_periodic_clean_up_deletes_records_older_than_a_day_and_keeps_the_others(
    counselor_api, counselor, mentor, student, settings
):
    # given a fresh record (a booking just made) and records 23 h and 25 h old
    booked = counselor_api.post(
        BOOK_URL, booking_body(student=student, mentor=mentor), format="json", headers={"Idempotency-Key": "fresh"}
    ).json()
    _records(counselor, booked["sessionId"], count=3, age=timedelta(hours=23))
    _records(counselor, booked["sessionId"], count=5, age=timedelta(hours=25))

    # when beat's clean-up runs
    entry = next(
        e for e in settings.CELERY_BEAT_SCHEDULE.values() if e["task"] == "sessions.idempotency_records_expire"
    )
    from booking_project.celery import app

    deleted = app.tasks[entry["task"]]()

    # then the records over a day old are gone, the others kept
    assert deleted == 5
    assert sorted(IdempotencyRecord.objects.values_list("key", flat=True)) == sorted(
        ["fresh", *(f"old-{timedelta(hours=23)}-{n}" for n in range(3))]
    )


@pytest.mark.race
@pytest.mark.django_db(transaction=True)
def test_two_clean_ups_at_once_delete_each_record_once():
    from sessions_app.idempotency import idempotency_records_expire
    from tests.conftest import funded_student
    from tests.factories import CounselorFactory, MentorFactory

    counselor = CounselorFactory()
    booked = api_client_for(counselor).post(
        BOOK_URL, booking_body(student=funded_student(counselor), mentor=MentorFactory()), format="json"
    )
    _records(counselor, booked.json()["sessionId"], count=400, age=timedelta(days=2))
    barrier = threading.Barrier(2)
    counts: list[int] = []

    def clean_up() -> None:
        try:
            barrier.wait(timeout=10)
            counts.append(idempotency_records_expire(batch_size=25))
        finally:
            connection.close()

    threads = [threading.Thread(target=clean_up) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)

    assert sum(counts) == 400 and len(counts) == 2
    assert not IdempotencyRecord.objects.exists()
