"""Time from booking to SCHEDULED (the meeting link on the session), with the provider sandbox answering
after 0 ms and after 1 s: what a counselor waits for the link, and our overhead on top of the provider.

Run against a started system (`bin/up`):  .venv/bin/python bench/provisioning_latency.py [-n N]
Books N sessions one after the other per latency, polls each every 10 ms, prints figures, asserts nothing.
The sandbox's latency is restored to what it was.
"""

import argparse
import statistics
import time
from datetime import timedelta

import requests
from common import bench_people, percentile, throttled_hint
from django.utils import timezone


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--url", default="http://127.0.0.1:8000")
    parser.add_argument("--sandbox", default="http://127.0.0.1:8090")
    parser.add_argument("-n", type=int, default=7)
    parser.add_argument("--provider", choices=["feishu", "zoom"], default="feishu")
    args = parser.parse_args()

    people = bench_people(units=10 * args.n)
    http = requests.Session()
    http.headers.update({"Authorization": f"Token {people.token}"})
    first = timezone.now().replace(second=0, microsecond=0) + timedelta(days=1)
    slot = iter(first + timedelta(minutes=15 * i) for i in range(10 * args.n))
    before = requests.get(f"{args.sandbox}/_sandbox/config", timeout=5).json()

    try:
        for latency_ms in (0, 1000):
            requests.post(f"{args.sandbox}/_sandbox/config", json={"latencyMs": latency_ms}, timeout=5)
            waits = []
            for _ in range(args.n):
                body = {
                    "sessionType": "regular_mentoring",
                    "studentId": str(people.student.id),
                    "mentorId": str(people.mentor.id),
                    "scheduledStartTime": next(slot).isoformat(),
                    "duration": 15,
                    "meetingProvider": args.provider,
                }
                started = time.perf_counter()
                response = http.post(f"{args.url}/api/counselor/sessions/book", json=body, timeout=10)
                if response.status_code != 201:
                    throttled_hint([response.status_code])
                    raise SystemExit(f"booking answered {response.status_code}: {response.text[:300]}")
                booked = response.json()
                status = booked["status"]
                while status == "PENDING_MEETING" and time.perf_counter() - started < 60:
                    time.sleep(0.01)
                    status = http.get(f"{args.url}/api/counselor/sessions/{booked['sessionId']}", timeout=10).json()[
                        "status"
                    ]
                waits.append((time.perf_counter() - started) * 1000)
                if status != "SCHEDULED":
                    print(f"  session {booked['sessionId']} ended {status}")
            print(
                f"{args.provider} sandbox latency {latency_ms:4d} ms: booked -> SCHEDULED  n={len(waits)}"
                f"  median={statistics.median(waits):7.1f} ms  min={min(waits):7.1f} ms"
                f"  p95={percentile(waits, 95):7.1f} ms  max={max(waits):7.1f} ms"
            )
    finally:
        requests.post(f"{args.sandbox}/_sandbox/config", json={"latencyMs": before["latencyMs"]}, timeout=5)


if __name__ == "__main__":
    main()
