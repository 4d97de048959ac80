"""The benchmark, in one command:  .venv/bin/python bench/run.py  [--quick] [--help for the flags]

It brings up the real stack on loopback and free ports, with a database and a Redis server of its own (the
demo's data is never touched), runs the phases, stops everything it started, prints one table and writes it
as JSON. Figures are printed, never asserted: targets are reported as met or missed.

Phases, in this order:
1. floor: the booking transaction's SQL (captured from a real booking) run by pgbench at each concurrency;
2. provisioning: a steady rate of bookings (20/s for 60 s) with the sandbox answering after 5 s: booked ->
   SCHEDULED, the same minus the provider latency (our overhead), the queue's depth, what is left pending;
3. fault load: the same with 20% of provider calls failing: every session SCHEDULED or MEETING_FAILED, no
   hold, slot or sandbox meeting leaked;
3b. unknown outcomes: the same rate, half Zoom and half Feishu, with 10% of the creates carried out by the
   sandbox and their answer lost past the client's timeout: meetings left behind at the provider (goal 0 for
   Zoom; every Feishu leftover flagged for a person), and sessions flagged per 100 unknown outcomes;
1b. availability: the cost of one 14-day availability request (queries, median ms), in process;
4. booking API at concurrency 1, 16 and 64, with the worker and beat stopped: the API is measured on its
   own (phases 2 and 3 measure the saga), and the sagas of thousands of bookings do not pile up in front of
   nothing;
5. poll: GET /api/counselor/sessions/{id} (the read the counselor page makes every 2 s) at concurrency 1 and
   16, over the sessions phase 4 booked.
Each API phase prints the CPU per request of the web processes (gunicorn) and of PostgreSQL's backends, and the
table ends with issue 17's goals, each a ratio of two figures of this run, met or missed.
"""

import argparse
import itertools
import json
import os
import platform
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

# The poll reads the sessions the booking API phases made (the last ones, round robin).
POLLED_SESSIONS = 500

TARGETS = {
    "api_c16_share_of_floor": 0.25,
    "api_c16_p99_ms": 150.0,
    "api_c1_p50_ms": 15.0,
    "provisioning_overhead_p95_ms": 500.0,
    "provisioning_left_pending": 0,
}


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="short phases: the whole run in about 3 minutes")
    parser.add_argument("--api-seconds", type=float, help="measured seconds per API concurrency (default 15)")
    parser.add_argument("--floor-seconds", type=float, help="pgbench seconds per concurrency (default 10)")
    parser.add_argument("--concurrency", default="1,16,64", help="API and floor concurrencies (default 1,16,64)")
    parser.add_argument("--poll-concurrency", default="1,16", help="poll phase concurrencies (default 1,16)")
    parser.add_argument("--rate", type=float, default=20.0, help="bookings per second in phases 2-3 (default 20)")
    parser.add_argument("--provision-seconds", type=float, help="seconds of bookings in phases 2-3 (default 60)")
    parser.add_argument("--latency-ms", type=float, default=5000, help="sandbox latency in phases 2-3 (5000)")
    parser.add_argument("--fail-rate", type=float, default=0.2, help="provider failure rate in phase 3 (0.2)")
    parser.add_argument(
        "--unknown-rate", type=float, default=0.1, help="creates whose answer is lost in phase 3b (0.1)"
    )
    parser.add_argument(
        "--skip", default="", help="phases to leave out: floor,availability,provisioning,fault,unknown,api,poll"
    )
    parser.add_argument("--pairs", type=int, default=256, help="mentor/student pairs seeded (default 256)")
    parser.add_argument("--json", type=Path, help="where to write the JSON (default var/bench/<time>.json)")
    parser.add_argument("--keep", action="store_true", help="keep the database and logs for a look afterwards")
    parser.add_argument(
        "--database-url", default=os.environ.get("BENCH_DATABASE_SERVER", "postgres://root@127.0.0.1:5432")
    )
    args = parser.parse_args()
    quick = args.quick
    args.api_seconds = args.api_seconds or (5.0 if quick else 15.0)
    args.floor_seconds = args.floor_seconds or (3.0 if quick else 10.0)
    args.provision_seconds = args.provision_seconds or (15.0 if quick else 60.0)
    args.concurrency = [int(c) for c in args.concurrency.split(",")]
    args.poll_concurrency = [int(c) for c in args.poll_concurrency.split(",")]
    args.skip = set(filter(None, args.skip.split(",")))
    return args


def pct(values: list[float], p: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(p / 100 * (len(ordered) - 1))))]


def load_average() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


def main() -> int:  # noqa: PLR0915 - one script, read top to bottom
    args = parse_args()
    run_id = uuid.uuid4().hex[:8]
    db_name = f"bench_{run_id}"
    server = args.database_url.rstrip("/")
    web_port, sandbox_port, redis_port = (str(p) for p in _free_ports(3))
    log_dir = Path(tempfile.mkdtemp(prefix=f"bench-{run_id}-"))
    multiproc_dir = log_dir / "prometheus"
    multiproc_dir.mkdir()
    sandbox = f"http://127.0.0.1:{sandbox_port}"
    env = {
        **os.environ,
        "DATABASE_URL": f"{server}/{db_name}",
        "REDIS_URL": f"redis://127.0.0.1:{redis_port}/0",
        "BEAT_SCHEDULE_FILE": str(log_dir / "celerybeat-schedule"),
        "WEB_PORT": web_port,
        "SANDBOX_PORT": sandbox_port,
        "SANDBOX_LATENCY_MS": "0",
        "THROTTLE_BOOK_RATE": "none",
        # The sandbox lands a lost create within its latency: look for leftovers soon after, not 2 minutes later.
        "SAGA_LEFTOVER_SETTLE_SECONDS": "5",
        "PROMETHEUS_MULTIPROC_DIR": str(multiproc_dir),
        "FEISHU_BASE_URL": sandbox,
        "FEISHU_APP_ID": "cli_bench",
        "FEISHU_APP_SECRET": "bench-secret",
        "ZOOM_API_BASE_URL": f"{sandbox}/v2",
        "ZOOM_OAUTH_URL": f"{sandbox}/oauth/token",
        "ZOOM_ACCOUNT_ID": "bench",
        "ZOOM_CLIENT_ID": "bench",
        "ZOOM_CLIENT_SECRET": "bench-secret",
        "GOOGLE_CALENDAR_BASE_URL": f"{sandbox}/calendar/v3",
        "LOG_LEVEL": os.environ.get("BENCH_LOG_LEVEL", "INFO"),
    }
    os.environ.update({k: env[k] for k in ("DATABASE_URL", "REDIS_URL", "THROTTLE_BOOK_RATE", "FEISHU_BASE_URL")})
    os.environ["LOG_LEVEL"] = "WARNING"  # this process's own bookings (the SQL capture) log nothing
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "booking_project.settings")

    import psycopg

    with psycopg.connect(f"{server}/postgres", autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{db_name}"')
    (ROOT / "var").mkdir(exist_ok=True)

    from stack import Stack

    stack = Stack(env=env, log_dir=log_dir)
    report: dict = {
        "started": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(), "loadBefore": load_average()},
        "settings": {k: v for k, v in vars(args).items() if k not in ("json", "database_url")},
        "procfile": {},
        "floor": {},
        "api": {},
        "poll": {},
    }
    report["settings"]["skip"] = sorted(args.skip)
    try:
        import django

        django.setup()
        from django.core.management import call_command
        from django.db import connection, connections
        from stack import procfile_commands

        report["procfile"] = {k: v for k, v in procfile_commands().items() if k in ("web", "worker", "notifier")}
        say(f"database {db_name}: migrating and seeding {args.pairs} mentor/student pairs")
        call_command("migrate", verbosity=0)
        from seed import SLOT_MINUTES, SlotPlan, bench_seed

        seed = bench_seed(pairs=args.pairs + 1, units=1_000_000)
        first = (datetime.now(UTC) + timedelta(hours=2)).replace(minute=0, second=0, microsecond=0)
        capture_pair = seed.pairs[-1]
        plan = SlotPlan(seed=seed, first=first, pairs=args.pairs)

        if "floor" not in args.skip:
            statements = _capture_booking_sql(seed, capture_pair, first, SLOT_MINUTES)
            _disconnect(connections)  # CREATE DATABASE ... TEMPLATE needs the template to itself
            report["floor"] = _floor(args, server, db_name, seed, capture_pair, statements, first)
            report["floorPgbenchMode"] = report["floor"].pop("pgbenchMode")
            report["floorStatements"] = len(statements)
        if "availability" not in args.skip:
            from availability import availability_cost

            say("availability: one 14-day request, in process")
            report["availability"] = availability_cost(seed=seed)
        connection.close()

        say("starting redis, sandbox, web (gunicorn), worker, notifier and beat")
        stack.start_redis()
        stack.start_together("sandbox", "web", "worker", "notifier", "beat")
        report["loadStackUp"] = load_average()

        if not {"provisioning", "fault", "unknown"} <= args.skip:
            _warm_up(stack, seed, plan)
        for phase, fail_rate, unknown_rate in (
            ("provisioning", 0.0, 0.0),
            ("fault", args.fail_rate, 0.0),
            ("unknown", 0.0, args.unknown_rate),
        ):
            if phase in args.skip:
                continue
            say(f"{phase}: {args.rate:g} bookings/s for {args.provision_seconds:g} s, sandbox latency "
                f"{args.latency_ms:g} ms, failure rate {fail_rate:g}, "
                f"creates' answers lost {unknown_rate:g}")  # fmt: skip
            report[phase] = _provisioning(args, stack, seed, plan, fail_rate=fail_rate, unknown_rate=unknown_rate)
            report[phase]["loadAfter"] = load_average()

        if "api" not in args.skip:
            stack.stop("beat", "worker", "notifier")
            stack.redis().flushdb()  # the API phases' sagas are not provisioned (see the docstring)
            booked: list[str] = []
            for concurrency in args.concurrency:
                say(f"booking API at concurrency {concurrency} for {args.api_seconds:g} s")
                report["api"][str(concurrency)] = _api(args, stack, seed, plan, concurrency, booked)
            if "poll" not in args.skip and booked:
                for concurrency in args.poll_concurrency:
                    say(f"poll (GET a session) at concurrency {concurrency} for {args.api_seconds:g} s")
                    report["poll"][str(concurrency)] = _poll(args, stack, seed, booked[-POLLED_SESSIONS:], concurrency)
        report["metricsSample"] = _metrics_sample(stack)
    finally:
        say("stopping everything the bench started")
        stack.stop_all()
        from django.db import connections

        _disconnect(connections)
        if not args.keep:
            with psycopg.connect(f"{server}/postgres", autocommit=True) as admin:
                admin.execute(f'DROP DATABASE IF EXISTS "{db_name}" WITH (FORCE)')
                admin.execute(f'DROP DATABASE IF EXISTS "{db_name}_floor" WITH (FORCE)')
    report["loadAfter"] = load_average()
    report["targets"] = _targets(report)
    report["goals"] = _goals(report)
    print(_table(report))
    path = args.json or ROOT / "var" / "bench" / f"{datetime.now(UTC):%Y%m%dT%H%M%SZ}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(report, indent=2))
    print(f"\nJSON: {path}" + (f"   logs: {log_dir}   database: {db_name}" if args.keep else ""))
    if not args.keep:
        subprocess.run(["rm", "-rf", str(log_dir)], check=False)
    return 0


def _disconnect(connections) -> None:
    for connection in connections.all():
        connection.close()
        if getattr(connection, "pool", None) is not None:
            connection.close_pool()


def say(message: str) -> None:
    print(f"[bench {datetime.now():%H:%M:%S}] {message}", flush=True)


def _free_ports(n: int) -> list[int]:
    import socket

    sockets = [socket.socket() for _ in range(n)]
    try:
        for s in sockets:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in sockets]
    finally:
        for s in sockets:
            s.close()


def _capture_booking_sql(seed, pair, first, minutes) -> tuple[list[str], datetime]:
    """One real booking through the service, its SQL from BEGIN to COMMIT."""
    from django.contrib.auth import get_user_model
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from sessions_app.services import session_book
    from sessions_app.types import session_type_get

    counselor = get_user_model().objects.get(id=seed.counselor_id)
    start = first + timedelta(days=1)
    with CaptureQueriesContext(connection) as queries:
        session_book(
            counselor=counselor,
            session_type=session_type_get("regular_mentoring"),
            student_ids=[pair.student_id],
            mentor_id=pair.mentor_id,
            start=start,
            duration_minutes=minutes,
            meeting_provider="feishu",
        )
    sql = [q["sql"] for q in queries.captured_queries]
    return sql[sql.index("BEGIN") : sql.index("COMMIT") + 1], start


def _floor(args, server, db_name, seed, capture_pair, captured, first) -> dict:
    import psycopg
    from floor import floor_prepare, floor_run, floor_script

    statements, start = captured
    floor_db = f"{db_name}_floor"
    with psycopg.connect(f"{server}/postgres", autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{floor_db}" TEMPLATE "{db_name}"')
    known = {
        "counselor": seed.counselor_id.hex,
        "mentor": capture_pair.mentor_id.hex,
        "student": capture_pair.student_id.hex,
        "entitlement": capture_pair.entitlement_id.hex,
    }
    rows = [
        {"counselor": str(seed.counselor_id), "mentor": str(p.mentor_id), "student": str(p.student_id),
         "entitlement": str(p.entitlement_id)}
        for p in seed.pairs[: args.pairs]
    ]  # fmt: skip
    floor_prepare(dsn=f"{server}/{floor_db}", rows=rows)
    # The floor books far beyond the API's calendar: its own copy of the database, but the same rules.
    # The floor speaks to PostgreSQL as the application does: prepared statements when it uses them.
    from django.db import connection

    options = connection.settings_dict.get("OPTIONS", {})
    prepared = bool(options.get("server_side_binding") and options.get("prepare_threshold") is not None)
    mode = "prepared" if prepared else "simple"
    script = floor_script(
        statements=statements, known=known, start=start, minutes=15, pairs=args.pairs, first=first, prepared=prepared
    )
    conn = psycopg.conninfo.conninfo_to_dict(f"{server}/{floor_db}")
    results = {}
    for concurrency in args.concurrency:
        say(f"floor: pgbench at concurrency {concurrency} for {args.floor_seconds:g} s")
        result = floor_run(
            script=script,
            db=floor_db,
            host=conn.get("host", "127.0.0.1"),
            port=int(conn.get("port", 5432)),
            user=conn.get("user", "root"),
            concurrency=concurrency,
            seconds=args.floor_seconds,
            mode=mode,
        )
        results[str(concurrency)] = {
            "tps": round(result.tps, 1),
            "transactions": result.transactions,
            "failed": result.failed,
            "p50Ms": round(result.p50_ms, 2),
            "p99Ms": round(result.p99_ms, 2),
        }
    results["pgbenchMode"] = mode
    (ROOT / "var" / "bench").mkdir(parents=True, exist_ok=True)
    (ROOT / "var" / "bench" / "floor.sql").write_text(script.text)
    with psycopg.connect(f"{server}/postgres", autocommit=True) as admin:
        admin.execute(f'DROP DATABASE "{floor_db}" WITH (FORCE)')
    return results


def _api(args, stack, seed, plan, concurrency, booked: list[str]) -> dict:
    """The booking API in a closed loop at `concurrency`; the sessions it booked are added to `booked`."""
    from load import closed_loop

    result, measured = _measured(
        stack,
        lambda: closed_loop(
            url=stack.web_url, token=seed.token, next_body=plan.body, concurrency=concurrency, seconds=args.api_seconds
        ),
    )
    booked.extend(session_id for session_id, _ in result.booked)
    return measured


def _poll(args, stack, seed, session_ids: list[str], concurrency) -> dict:
    """GET /api/counselor/sessions/{id} (the counselor page's poll) in a closed loop at `concurrency`, over the
    sessions the booking phases made."""
    from load import closed_loop_reads

    ids = itertools.cycle(session_ids)
    _, measured = _measured(
        stack,
        lambda: closed_loop_reads(
            url=stack.web_url,
            token=seed.token,
            next_path=lambda: f"/api/counselor/sessions/{next(ids)}",
            concurrency=concurrency,
            seconds=args.api_seconds,
        ),
    )
    return measured


def _measured(stack, run) -> tuple:
    """Run a closed loop and measure it: throughput, latency, errors, and the CPU the web processes (gunicorn)
    and the database's backends spent per request."""
    from stack import database_cpu_seconds

    web, db = stack.cpu_seconds("web"), database_cpu_seconds(stack.env["DATABASE_URL"].rsplit("/", 1)[1])
    started = time.perf_counter()
    result = run()
    wall = time.perf_counter() - started
    web = stack.cpu_seconds("web") - web
    db = database_cpu_seconds(stack.env["DATABASE_URL"].rsplit("/", 1)[1]) - db
    answered = max(1.0, result.count * wall / result.wall_seconds)  # the warm-up's requests used CPU too
    lat = result.latencies_ms
    return result, {
        "requests": result.count,
        "throughput": round(result.count / result.wall_seconds, 1),
        "p50Ms": _r(pct(lat, 50)),
        "p95Ms": _r(pct(lat, 95)),
        "p99Ms": _r(pct(lat, 99)),
        "errors": result.failed,
        "statuses": {str(k): v for k, v in result.statuses.items()},
        "errorSamples": result.errors[:5],
        # "PerBooking" kept for the JSON of earlier runs; for the poll phase it is per read
        "webCpuMsPerBooking": round(web / answered * 1000, 2),
        "webCoresUsed": round(web / wall, 2),
        "dbCpuMsPerBooking": round(db / answered * 1000, 2),
        "load": load_average(),
    }


def _warm_up(stack, seed, plan) -> None:
    """One booking provisioned at no latency before the measured phases: the worker then holds the provider's
    access token (cached for hours in production) and its connections, as it does in steady state."""
    from load import open_loop

    from sessions_app.models import MeetingSaga

    stack.sandbox_configure(latencyMs=0, failRate=0)
    result = open_loop(url=stack.web_url, token=seed.token, next_body=plan.body, rate=4, seconds=1)
    ids = [s for s, _ in result.booked]
    deadline = time.monotonic() + 30
    while MeetingSaga.objects.filter(session_id__in=ids, finished_at__isnull=True).exists():
        if time.monotonic() > deadline:
            raise RuntimeError("the warm-up bookings were not provisioned within 30 s: see the worker's log")
        time.sleep(0.2)


def _provisioning(args, stack, seed, plan, *, fail_rate: float, unknown_rate: float = 0.0) -> dict:
    from load import open_loop

    from sessions_app.models import MeetingSaga

    lost_before = stack.sandbox_injected()["answersLost"]["create"]
    stack.sandbox_configure(latencyMs=args.latency_ms, failRate=fail_rate)
    next_body = plan.body
    if unknown_rate:
        # The sandbox carries the create out, then answers only after the client has given up (a timeout).
        timeout_ms = float(stack.env.get("PROVIDER_TIMEOUT_SECONDS", 10)) * 1000
        stack.sandbox_configure(
            applyThenFailRate=unknown_rate,
            applyThenFailOperation="create",
            applyThenDelayMs=max(0, int(timeout_ms - args.latency_ms + 1000)),
        )
        providers = itertools.cycle(["zoom", "feishu"])
        counter = itertools.count()

        def next_body() -> dict:
            # A topic of its own per booking: a meeting left at the provider names the session it was made for.
            return {**plan.body(), "meetingProvider": next(providers), "topic": f"bench unknown {next(counter)}"}

    redis = stack.redis()
    depth = {"max": 0}
    sampling = threading.Event()

    def sample_queue() -> None:
        while not sampling.is_set():
            depth["max"] = max(depth["max"], redis.llen("celery"))
            time.sleep(0.2)

    sampler = threading.Thread(target=sample_queue, daemon=True)
    sampler.start()
    worker_cpu = stack.cpu_seconds("worker")
    result = open_loop(
        url=stack.web_url, token=seed.token, next_body=next_body, rate=args.rate, seconds=args.provision_seconds
    )
    booked = dict(result.booked)
    # Wait for every saga: three attempts at the provider's latency (or the timeout), the backoffs, a margin.
    timeout_s = float(stack.env.get("PROVIDER_TIMEOUT_SECONDS", 10)) if unknown_rate else 0
    deadline = time.monotonic() + 3 * max(args.latency_ms / 1000, timeout_s) + 30
    while time.monotonic() < deadline:
        # Final, not only finished: a saga checking for a lost create's leftover is still at work.
        unfinished = (
            MeetingSaga.objects.filter(session_id__in=booked).exclude(state__in=["succeeded", "failed"]).count()
        )
        if not unfinished:
            break
        time.sleep(0.5)
    sampling.set()
    sampler.join()
    worker_cpu = stack.cpu_seconds("worker") - worker_cpu
    finished = {
        str(s): (state, f.timestamp() if f else None)
        for s, state, f in MeetingSaga.objects.filter(session_id__in=booked).values_list(
            "session_id", "state", "finished_at"
        )
    }
    waits_ms = [(finished[s][1] - t) * 1000 for s, t in booked.items() if finished.get(s, (0, None))[1]]
    scheduled = [(finished[s][1] - t) * 1000 for s, t in booked.items() if finished.get(s, ("", 0))[0] == "succeeded"]
    overhead = [w - args.latency_ms for w in scheduled]
    out = {
        "booked": len(booked),
        "bookingErrors": result.failed,
        "bookingP99Ms": _r(pct(result.latencies_ms, 99)),
        "achievedRate": round(len(booked) / result.wall_seconds, 1),
        "scheduled": len(scheduled),
        "p50Ms": _r(pct(scheduled, 50)),
        "p95Ms": _r(pct(scheduled, 95)),
        "p99Ms": _r(pct(scheduled, 99)),
        "overheadP50Ms": _r(pct(overhead, 50)),
        "overheadP95Ms": _r(pct(overhead, 95)),
        "overheadP99Ms": _r(pct(overhead, 99)),
        "allResultsP99Ms": _r(pct(waits_ms, 99)),
        "maxQueueDepth": depth["max"],
        "workerCpuMsPerSaga": round(worker_cpu / max(1, len(booked)) * 1000, 2),
    }
    out.update(_end_state(stack, booked))
    if unknown_rate:
        out.update(_unknown_outcomes(stack, booked, lost_before=lost_before))
    stack.sandbox_configure(
        latencyMs=0, failRate=0, applyThenFailRate=0, applyThenFailOperation=None, applyThenDelayMs=0
    )
    return out


def _unknown_outcomes(stack, booked: dict, *, lost_before: int) -> dict:
    """What the lost answers left: meetings at the provider that no scheduled session of the phase uses (Zoom's
    goal is none; a Feishu one must have its session flagged), and how many sessions wait for a person."""
    from sessions_app.models import MeetingSaga, Session, SessionStatus

    sessions = {str(s.id): s for s in Session.objects.filter(id__in=booked).select_related("meeting")}
    by_topic = {s.topic: s for s in sessions.values()}
    used = {
        s.meeting.provider_meeting_id for s in sessions.values() if s.status == SessionStatus.SCHEDULED and s.meeting
    }
    flagged = set(
        str(i)
        for i in MeetingSaga.objects.filter(session_id__in=booked, requires_manual_intervention=True).values_list(
            "session_id", flat=True
        )
    )
    left = [
        m
        for m in stack.sandbox_meetings()
        if m.get("status") == "active" and m.get("topic") in by_topic and _meeting_key(m) not in used
    ]
    lost = stack.sandbox_injected()["answersLost"]["create"] - lost_before
    feishu_left = [m for m in left if m["provider"] == "feishu"]
    return {
        "answersLost": lost,
        "leftBehindZoom": sum(1 for m in left if m["provider"] == "zoom"),
        "leftBehindFeishu": len(feishu_left),
        "leftBehindFeishuUnflagged": sum(1 for m in feishu_left if str(by_topic[m["topic"]].id) not in flagged),
        "flaggedSessions": len(flagged),
        "flaggedPer100Unknown": round(100 * len(flagged) / lost, 1) if lost else None,
    }


def _end_state(stack, booked: dict) -> dict:
    """Where every session of the phase ended, and what the whole database and sandbox still hold that they
    should not: active holds or live slots of failed sessions, slots of scheduled ones without the meeting,
    sandbox meetings no scheduled session uses."""
    from calendar_app.models import CalendarSlot
    from holds_app.models import Hold
    from sessions_app.models import Session, SessionStatus

    statuses: dict[str, int] = {}
    for status in Session.objects.filter(id__in=booked).values_list("status", flat=True):
        statuses[status] = statuses.get(status, 0) + 1
    failed = Session.objects.filter(status=SessionStatus.MEETING_FAILED)
    scheduled = Session.objects.filter(status=SessionStatus.SCHEDULED)
    failed_slot_ids = [i for ids in failed.values_list("slot_ids", flat=True) for i in ids]
    scheduled_slot_ids = [i for ids in scheduled.values_list("slot_ids", flat=True) for i in ids]
    used_meetings = set(scheduled.values_list("meeting__provider_meeting_id", flat=True))
    active_meetings = [m for m in stack.sandbox_meetings() if m.get("status") == "active"]
    return {
        "endStatuses": statuses,
        "leftPending": statuses.get(SessionStatus.PENDING_MEETING, 0),
        "leakedHolds": Hold.objects.filter(session_id__in=failed.values("id"), status="active").count(),
        "leakedSlots": CalendarSlot.objects.filter(id__in=failed_slot_ids).exclude(status="cancelled").count(),
        "scheduledSlotsWithoutMeeting": CalendarSlot.objects.filter(id__in=scheduled_slot_ids, meeting_id=None).count(),
        "leakedSandboxMeetings": sum(1 for m in active_meetings if _meeting_key(m) not in used_meetings),
        "sandboxActiveMeetings": len(active_meetings),
    }


def _meeting_key(meeting: dict) -> str:
    """The id our meetings table keeps for a sandbox meeting (a Feishu calendar meeting: its calendar and event)."""
    if meeting.get("source") == "calendar":
        from meetings_app.providers.feishu import calendar_meeting_id

        return calendar_meeting_id(meeting["calendarId"], meeting["eventId"])
    return str(meeting["id"])


def _metrics_sample(stack) -> dict:
    import requests

    text = requests.get(f"{stack.web_url}/metrics", timeout=10).text
    wanted = ("booking_saga_outcomes_total", "booking_queue_depth", "booking_sessions_pending_meeting")
    return {
        line.split(" ")[0]: line.split(" ")[-1]
        for line in text.splitlines()
        if line.startswith(wanted) and not line.startswith("#")
    }


def _r(value: float | None) -> float | None:
    return None if value is None else round(value, 1)


def _targets(report: dict) -> dict:
    api, floor = report.get("api", {}), report.get("floor", {})
    prov = report.get("provisioning", {})
    c16, c1 = api.get("16", {}), api.get("1", {})
    floor16 = floor.get("16", {}).get("tps")
    share = c16["throughput"] / floor16 if c16 and floor16 else None

    def check(value, target, *, below: bool) -> dict:
        met = None if value is None else (value < target if below else value >= target)
        return {"value": None if value is None else round(value, 3), "target": target, "met": met}

    return {
        "API c=16 throughput / floor c=16 >= 25%": check(share, TARGETS["api_c16_share_of_floor"], below=False),
        "API c=16 p99 < 150 ms": check(c16.get("p99Ms"), TARGETS["api_c16_p99_ms"], below=True),
        "API c=1 p50 < 15 ms": check(c1.get("p50Ms"), TARGETS["api_c1_p50_ms"], below=True),
        "provisioning overhead p95 < 500 ms": check(
            prov.get("overheadP95Ms"), TARGETS["provisioning_overhead_p95_ms"], below=True
        ),
        "provisioning: nothing left pending": check(
            None if not prov else prov.get("leftPending", 0) + (prov["booked"] - prov["scheduled"]), 1, below=True
        ),
    }


def _goals(report: dict) -> dict:
    """Issue 17's goals: each a ratio of two figures measured in this run (hosts differ, ratios less so)."""
    api, floor, poll = report.get("api", {}), report.get("floor", {}), report.get("poll", {})
    c16, c1, poll16 = api.get("16", {}), api.get("1", {}), poll.get("16", {})
    floor16 = floor.get("16", {}).get("tps")

    def ratio(a, b):
        return a / b if a is not None and b else None

    def goal(value, target, *, at_most: bool) -> dict:
        met = None if value is None else (value <= target if at_most else value >= target)
        return {"value": None if value is None else round(value, 3), "target": target, "met": met}

    return {
        "booking c=16 / floor c=16 >= 0.25": goal(ratio(c16.get("throughput"), floor16), 0.25, at_most=False),
        "web CPU / PostgreSQL CPU per booking (c=16) <= 2": goal(
            ratio(c16.get("webCpuMsPerBooking"), c16.get("dbCpuMsPerBooking")), 2.0, at_most=True
        ),
        "poll c=16 / booking c=16 >= 4": goal(
            ratio(poll16.get("throughput"), c16.get("throughput")), 4.0, at_most=False
        ),
        "booking c=16 p99 / c=1 p50 <= 8": goal(ratio(c16.get("p99Ms"), c1.get("p50Ms")), 8.0, at_most=True),
    }


def _table(report: dict) -> str:
    lines = []
    floor, api = report.get("floor", {}), report.get("api", {})
    lines.append("")
    lines.append(f"{'phase':<26}{'throughput/s':>13}{'vs floor':>9}{'p50 ms':>9}{'p95 ms':>9}{'p99 ms':>9}  errors")
    for c, f in floor.items():
        lines.append(f"{'floor pgbench c=' + c:<26}{f['tps']:>13.1f}{'1.00':>9}{f['p50Ms']:>9.2f}{'':>9}"
                     f"{f['p99Ms']:>9.2f}  {f['failed']}")  # fmt: skip
    for c, a in api.items():
        ratio = f"{a['throughput'] / floor[c]['tps']:.2f}" if c in floor else "-"
        lines.append(f"{'booking API c=' + c:<26}{a['throughput']:>13.1f}{ratio:>9}{_f(a['p50Ms'])}{_f(a['p95Ms'])}"
                     f"{_f(a['p99Ms'])}  {a['errors']}")  # fmt: skip
        lines.append(f"    CPU per booking: web {a['webCpuMsPerBooking']} ms ({a['webCoresUsed']} cores busy), "
                     f"PostgreSQL {a['dbCpuMsPerBooking']} ms")  # fmt: skip
    for c, a in report.get("poll", {}).items():
        lines.append(f"{'poll GET session c=' + c:<26}{a['throughput']:>13.1f}{'-':>9}{_f(a['p50Ms'])}{_f(a['p95Ms'])}"
                     f"{_f(a['p99Ms'])}  {a['errors']}")  # fmt: skip
        lines.append(f"    CPU per read: web {a['webCpuMsPerBooking']} ms ({a['webCoresUsed']} cores busy), "
                     f"PostgreSQL {a['dbCpuMsPerBooking']} ms")  # fmt: skip
    if report.get("availability"):
        a = report["availability"]
        lines.append(f"{'availability 14 days':<26}{'':>13}{'':>9}{_f(a['p50Ms'])}{'':>18}  "
                     f"{a['queries']} queries, {a['slotsOffered']} starts (median of {a['requests']})")  # fmt: skip
    for phase in ("provisioning", "fault", "unknown"):
        p = report.get(phase)
        if not p:
            continue
        lines.append(f"{phase + ' booked->SCHEDULED':<26}{p['achievedRate']:>13.1f}{'':>9}{_f(p['p50Ms'])}"
                     f"{_f(p['p95Ms'])}{_f(p['p99Ms'])}  {p['bookingErrors']}")  # fmt: skip
        lines.append(f"{phase + ' our overhead':<26}{'':>13}{'':>9}{_f(p['overheadP50Ms'])}{_f(p['overheadP95Ms'])}"
                     f"{_f(p['overheadP99Ms'])}")  # fmt: skip
        lines.append(
            f"    {p['booked']} booked, ended {p['endStatuses']}, max queue depth {p['maxQueueDepth']}, "
            f"left pending {p['leftPending']}, leaked holds {p['leakedHolds']}, slots {p['leakedSlots']}, "
            f"sandbox meetings {p['leakedSandboxMeetings']}, worker CPU per saga {p['workerCpuMsPerSaga']} ms"
        )
        if "answersLost" in p:
            lines.append(
                f"    {p['answersLost']} creates' answers lost: meetings left behind Zoom {p['leftBehindZoom']}, "
                f"Feishu {p['leftBehindFeishu']} ({p['leftBehindFeishuUnflagged']} unflagged); "
                f"{p['flaggedSessions']} sessions flagged, {p['flaggedPer100Unknown']} per 100 unknown outcomes"
            )
    lines.append("")
    lines.append("targets:")
    for name, t in report["targets"].items():
        verdict = "n/a" if t["met"] is None else ("MET" if t["met"] else "MISSED")
        lines.append(f"  {verdict:<7} {name}  (got {t['value']})")
    lines.append("goals (issue 17, ratios of this run):")
    for name, t in report.get("goals", {}).items():
        verdict = "n/a" if t["met"] is None else ("MET" if t["met"] else "MISSED")
        lines.append(f"  {verdict:<7} {name}  (got {t['value']})")
    lines.append(f"load average before {report['machine']['loadBefore']}, after {report['loadAfter']} "
                 f"on {report['machine']['cpus']} CPUs")  # fmt: skip
    return "\n".join(lines)


def _f(value: float | None) -> str:
    return f"{'-':>9}" if value is None else f"{value:>9.1f}"


if __name__ == "__main__":
    sys.exit(main())
