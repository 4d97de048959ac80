"""`GET /healthz` and `GET /readyz` (API.md "Health"), for load balancers and orchestrators.

Answered by the first middleware, before host validation, the HTTPS redirect, sessions or authentication:
a load balancer probes each node by its own address, over plain HTTP, and must get the truth about that
node, not a redirect or a 400 for an unknown Host.
"""

import logging

from django.db import connection
from django.http import HttpRequest, HttpResponse, JsonResponse

from booking_project.errors import error_body
from booking_project.redis_connections import broker_reachable

logger = logging.getLogger(__name__)


def health_live() -> HttpResponse:
    """The process serves."""
    return JsonResponse({"status": "ok"}, headers={"Cache-Control": "no-store"})


def health_ready() -> HttpResponse:
    """200 while PostgreSQL answers, whatever the broker does (a booking needs only PostgreSQL; its event is
    published when Redis is back); 503 when PostgreSQL does not answer."""
    database = "ok" if _database_answers() else "down"
    broker = "ok" if broker_reachable() else "down"
    return JsonResponse(
        {"database": database, "broker": broker},
        status=200 if database == "ok" else 503,
        headers={"Cache-Control": "no-store"},
    )


def _database_answers() -> bool:
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
            return cursor.fetchone() == (1,)
    except Exception as error:  # noqa: BLE001 - any failure to reach it means "down"
        logger.warning("health.database_down", extra={"error": repr(error)})
        connection.close()  # a broken connection must not be handed to the next request
        return False


_PROBES = {"/healthz": health_live, "/readyz": health_ready}


class HealthMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        probe = _PROBES.get(request.path_info)
        if probe is None:
            return self.get_response(request)
        if request.method not in ("GET", "HEAD"):
            body = error_body("METHOD_NOT_ALLOWED", f'Method "{request.method}" not allowed.')
            return JsonResponse(body, status=405, headers={"Allow": "GET, HEAD"})
        return probe()
