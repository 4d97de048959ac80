"""Every Prometheus metric of the system, defined here and nowhere else, and the `/metrics` view.

Gunicorn runs several worker processes and Celery another, so counters and histograms are kept in
prometheus_client's multiprocess mode: every process writes its own files under `PROMETHEUS_MULTIPROC_DIR`
(an empty directory per boot, shared by web and worker) and a scrape adds them up. Without the variable
(tests, `manage.py shell`) the process's own registry is served. The gunicorn config
(`booking_project/gunicorn.conf.py`) tells the library when a web worker has died.

Two figures are read at scrape time instead, because they are facts of the database and the broker, not of
one process: sessions waiting for their meeting (and those waiting longer than the alert's threshold), and
the Celery queue's depth.
"""

import hmac
import logging
import os
import time
from datetime import timedelta

from django.conf import settings
from django.http import HttpRequest, HttpResponse, JsonResponse
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
    multiprocess,
)
from prometheus_client.core import GaugeMetricFamily

from booking_project.errors import error_body

logger = logging.getLogger(__name__)

BOOKING_LATENCY = Histogram(
    "booking_request_duration_seconds",
    "Time to answer POST /api/counselor/sessions/book, by HTTP status.",
    ["status"],
    buckets=(0.005, 0.01, 0.015, 0.025, 0.05, 0.075, 0.1, 0.15, 0.25, 0.5, 1.0, 2.5),
)
SAGA_DURATION = Histogram(
    "booking_saga_duration_seconds",
    "From the booking (saga created) to its result (session SCHEDULED or MEETING_FAILED).",
    ["session_type", "provider", "status"],
    buckets=(0.25, 0.5, 1.0, 2.0, 3.0, 5.0, 6.0, 7.5, 10.0, 15.0, 20.0, 30.0, 60.0, 120.0, 300.0),
)
SAGA_OUTCOMES = Counter(
    "booking_saga_outcomes",
    "Meeting provisioning results by session type and status (success, failed; abandoned: cancelled meanwhile).",
    ["session_type", "status"],
)
MEETING_OPERATION_OUTCOMES = Counter(
    "booking_meeting_operation_outcomes",
    "Meeting changes after booking (cancel, update) by session type and status (success, failed).",
    ["session_type", "operation", "status"],
)
PROVIDER_CALL_DURATION = Histogram(
    "booking_provider_call_duration_seconds",
    "Meeting provider calls (MeetingManager), by provider, operation and outcome (ok or the error class).",
    ["provider", "operation", "outcome"],
    buckets=(0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 3.0, 5.0, 6.0, 7.5, 10.0, 20.0, 40.0),
)
PROVIDER_CALL_ERRORS = Counter(
    "booking_provider_call_errors",
    "Failed meeting provider calls, by provider, operation and error class.",
    ["provider", "operation", "error"],
)

PROVIDER_WORK_UNEXPECTED_ERRORS = Counter(
    "booking_provider_work_unexpected_errors",
    "Provider-work steps that raised something other than a provider's answer (a bug, a refused write), by kind.",
    ["kind"],
)

PROVIDER_PAUSE_CHANGES = Counter(
    "booking_provider_pause_changes",
    "Operators' pauses and resumes of a provider (an outage), by provider and action (pause, resume).",
    ["provider", "action"],
)

# Names of the figures collected at scrape time (the alert rules' test checks them too).
PENDING_SESSIONS = "booking_sessions_pending_meeting"
PENDING_SESSIONS_OVER_THRESHOLD = "booking_sessions_pending_meeting_over_threshold"
QUEUE_DEPTH = "booking_queue_depth"
NEEDS_PERSON = "booking_provider_work_needs_person"
PROVIDER_PAUSED = "booking_provider_paused"


def provider_pause_change_observed(*, provider: str, action: str) -> None:
    PROVIDER_PAUSE_CHANGES.labels(provider=provider, action=action).inc()


def provider_work_unexpected_error_observed(*, kind: str) -> None:
    PROVIDER_WORK_UNEXPECTED_ERRORS.labels(kind=kind).inc()


def booking_observed(*, status: int, seconds: float) -> None:
    BOOKING_LATENCY.labels(status=str(status)).observe(seconds)


def saga_result_observed(*, saga, session, status: str) -> None:
    """A saga reached its result (`success` or `failed`): the session's type and provider, booking to result."""
    seconds = (saga.finished_at - saga.created_at).total_seconds()
    SAGA_OUTCOMES.labels(session_type=session.session_type, status=status).inc()
    SAGA_DURATION.labels(session_type=session.session_type, provider=session.meeting_provider, status=status).observe(
        seconds
    )


def meeting_operation_observed(*, session_type: str, operation: str, status: str) -> None:
    MEETING_OPERATION_OUTCOMES.labels(session_type=session_type, operation=operation, status=status).inc()


def provider_call_observed(*, provider: str, operation: str, error: str | None, seconds: float) -> None:
    PROVIDER_CALL_DURATION.labels(provider=provider, operation=operation, outcome=error or "ok").observe(seconds)
    if error:
        PROVIDER_CALL_ERRORS.labels(provider=provider, operation=operation, error=error).inc()


class BookingLatencyMiddleware:
    """Times POST /api/counselor/sessions/book from the first middleware on: body limit, authentication,
    throttling, parsing, the booking and error answers all count, as the counselor waits for them."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        started = time.perf_counter()
        response = self.get_response(request)
        match = request.resolver_match
        if match is not None and match.url_name == "session-book":
            booking_observed(status=response.status_code, seconds=time.perf_counter() - started)
        return response


class ScrapeTimeCollector:
    """Sessions waiting for their meeting and the broker queue's depth, read when Prometheus scrapes."""

    def collect(self):
        from meetings_app.models import PausableProvider
        from meetings_app.selectors import providers_paused
        from sessions_app.selectors import sessions_pending_meeting_count

        paused = providers_paused()
        threshold = settings.METRICS_PENDING_THRESHOLD_SECONDS
        # A session waiting for a provider an operator paused is not late: the pause gauge says why it waits.
        total, late = sessions_pending_meeting_count(
            older_than=timedelta(seconds=threshold), excluding_providers=paused
        )
        yield GaugeMetricFamily(PENDING_SESSIONS, "Sessions in PENDING_MEETING.", value=total)
        over = GaugeMetricFamily(
            PENDING_SESSIONS_OVER_THRESHOLD,
            "Sessions in PENDING_MEETING booked longer ago than the threshold (not counting a paused provider's).",
            labels=["threshold_seconds"],
        )
        over.add_metric([f"{threshold:g}"], late)
        yield over
        from booking_project.provider_work import rows_needing_person_counts

        needs_person = GaugeMetricFamily(
            NEEDS_PERSON, "Provider work that gave up and waits for a person, by kind.", labels=["kind"]
        )
        for kind, count in rows_needing_person_counts().items():
            needs_person.add_metric([kind], count)
        yield needs_person
        pauses = GaugeMetricFamily(
            PROVIDER_PAUSED,
            "1 while an operator has paused the provider (its work waits), else 0.",
            labels=["provider"],
        )
        for provider in PausableProvider.values:
            pauses.add_metric([provider], 1 if provider in paused else 0)
        yield pauses
        depths = _queue_depths()
        if depths is not None:
            family = GaugeMetricFamily(
                QUEUE_DEPTH, "Celery messages waiting in the broker, by queue.", labels=["queue"]
            )
            for queue, depth in depths.items():
                family.add_metric([queue], depth)
            yield family


# kombu's Redis transport keeps a queue's messages of priority p > 0 in a list named queue + SEP + p.
_PRIORITY_SEP = "\x06\x16"
_PRIORITY_STEPS = (0, 3, 6, 9)


def _queue_depths() -> dict[str, int] | None:
    """LLEN of each Celery queue (all its priority lists) on the broker the app publishes to."""
    from booking_project.celery import app

    queues = [app.conf.task_default_queue, settings.CELERY_NOTIFICATIONS_QUEUE]
    try:
        with app.connection_for_read() as connection:
            pipe = connection.default_channel.client.pipeline(transaction=False)
            for queue in queues:
                for step in _PRIORITY_STEPS:
                    pipe.llen(queue if step == 0 else f"{queue}{_PRIORITY_SEP}{step}")
            lengths = pipe.execute()
    except Exception as error:  # noqa: BLE001 - a scrape must answer even with the broker down
        logger.warning("metrics.queue_depth_unavailable", extra={"error": repr(error)})
        return None
    per_queue = len(_PRIORITY_STEPS)
    return {queue: sum(lengths[i * per_queue : (i + 1) * per_queue]) for i, queue in enumerate(queues)}


def metrics_exposition() -> bytes:
    scrape = CollectorRegistry()
    scrape.register(ScrapeTimeCollector())
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        processes = CollectorRegistry()
        multiprocess.MultiProcessCollector(processes)
        return generate_latest(processes) + generate_latest(scrape)
    return generate_latest(REGISTRY) + generate_latest(scrape)


def metrics_view(request: HttpRequest) -> HttpResponse:
    """GET /metrics. With METRICS_TOKEN set (production requires it), only `Authorization: Bearer <token>` is
    answered; any other credential, however malformed, is 401."""
    token = settings.METRICS_TOKEN
    if token and not bearer_token_matches(request.headers.get("Authorization", ""), token):
        error = error_body("UNAUTHENTICATED", "Send Authorization: Bearer <METRICS_TOKEN>.")
        return JsonResponse(error, status=401, headers={"WWW-Authenticate": 'Bearer realm="metrics"'})
    if request.method not in ("GET", "HEAD"):
        error = error_body("METHOD_NOT_ALLOWED", f'Method "{request.method}" not allowed.')
        return JsonResponse(error, status=405, headers={"Allow": "GET, HEAD"})
    return HttpResponse(metrics_exposition(), content_type=CONTENT_TYPE_LATEST)


def bearer_token_matches(header: str, token: str) -> bool:
    """Whether an Authorization header carries this bearer token, compared in constant time. The header is
    compared as bytes: a str with a character beyond ASCII would make compare_digest raise (a 500)."""
    scheme, _, credential = header.strip().partition(" ")
    if scheme.lower() != "bearer":
        return False
    given = credential.strip().encode("utf-8", errors="replace")
    return hmac.compare_digest(given, token.encode("utf-8"))
