"""A quick measurement of one booking: SQL statements, time in the service, time over HTTP.

Run against a started system (`bin/up`):  .venv/bin/python bench/booking_latency.py [--url URL] [-n N]
It creates its own mentor and student each run (free slots, no conflicts) and prints figures;
it asserts nothing. The full benchmark (pgbench floor, concurrency, the saga) is bench/'s next step.
"""

import argparse
import statistics
import time
from datetime import timedelta

import requests
from common import bench_people, percentile, throttled_hint
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from sessions_app.services import session_book
from sessions_app.types import session_type_get


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--url", default="http://127.0.0.1:8000")
    parser.add_argument("-n", type=int, default=300)
    args = parser.parse_args()

    people = bench_people(units=10 * args.n + 10)
    counselor, mentor, student, token = people.counselor, people.mentor, people.student, people.token
    first = timezone.now().replace(second=0, microsecond=0) + timedelta(days=1)
    slot = iter(first + timedelta(minutes=15 * i) for i in range(10 * args.n + 10))

    def book_in_process():
        return session_book(
            counselor=counselor,
            session_type=session_type_get("regular_mentoring"),
            student_ids=[student.id],
            mentor_id=mentor.id,
            start=next(slot),
            duration_minutes=15,
            meeting_provider="feishu",
        )

    with CaptureQueriesContext(connection) as queries:
        book_in_process()
    service_ms = []
    for _ in range(args.n):
        started = time.perf_counter()
        book_in_process()
        service_ms.append((time.perf_counter() - started) * 1000)

    http = requests.Session()
    http.headers.update({"Authorization": f"Token {token}"})
    http_ms, statuses = [], []
    wall = time.perf_counter()
    for _ in range(args.n):
        body = {
            "sessionType": "regular_mentoring",
            "studentId": str(student.id),
            "mentorId": str(mentor.id),
            "scheduledStartTime": next(slot).isoformat(),
            "duration": 15,
        }
        started = time.perf_counter()
        response = http.post(f"{args.url}/api/counselor/sessions/book", json=body, timeout=10)
        http_ms.append((time.perf_counter() - started) * 1000)
        statuses.append(response.status_code)
    wall = time.perf_counter() - wall

    print(f"SQL statements per booking in the service (BEGIN and COMMIT included): {len(queries)}")
    for name, values in (("service, in process", service_ms), ("HTTP, concurrency 1", http_ms)):
        print(
            f"{name:22s} n={len(values):4d}  p50={percentile(values, 50):6.2f} ms"
            f"  p95={percentile(values, 95):6.2f} ms  p99={percentile(values, 99):6.2f} ms"
            f"  mean={statistics.mean(values):6.2f} ms"
        )
    errors = sum(status != 201 for status in statuses)
    print(f"HTTP throughput at concurrency 1: {args.n / wall:.0f} bookings/s, errors: {errors}")
    throttled_hint(statuses)


if __name__ == "__main__":
    main()
