"""The cost of one availability request (API.md "Availability") for 14 days: queries and milliseconds, the
median of `requests` in-process requests through DRF's test client against the bench's database (no HTTP,
no web process: the view, its selector and PostgreSQL)."""

import statistics
import time
from datetime import UTC, datetime, timedelta


def availability_cost(*, seed, requests: int = 20) -> dict:
    from django.db import connection
    from django.test.utils import CaptureQueriesContext, override_settings
    from rest_framework.test import APIClient

    pair = seed.pairs[0]
    start = datetime.now(UTC).replace(second=0, microsecond=0)
    params = {
        "mentorId": str(pair.mentor_id),
        "studentId": str(pair.student_id),
        "duration": 60,
        "from": start.isoformat(),
        "to": (start + timedelta(days=14)).isoformat(),
    }
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {seed.token}")
    timings, queries, slots = [], [], 0
    with override_settings(THROTTLE_AVAILABILITY_RATE="none", ALLOWED_HOSTS=["*"]):
        for _ in range(requests + 1):
            with CaptureQueriesContext(connection) as captured:
                began = time.perf_counter()
                response = client.get("/api/counselor/availability", params)
                elapsed = (time.perf_counter() - began) * 1000
            assert response.status_code == 200, response.content
            slots = len(response.json()["slots"])
            timings.append(elapsed)
            queries.append(len(captured.captured_queries))
    timings, queries = timings[1:], queries[1:]  # the first one warms the process up
    return {
        "requests": requests,
        "days": 14,
        "slotsOffered": slots,
        "queries": max(queries),
        "p50Ms": round(statistics.median(timings), 2),
    }
