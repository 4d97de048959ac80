"""The route table and the life of one request: `/_sandbox/...` goes to the control API at once; a provider
call is counted, waits the configured latency (token fetches: plus tokenLatencyMs), is authorised, may fail
on purpose (changing nothing), and only then is applied by its provider's handler. Once applied, its answer
may still be lost on purpose: the caller then gets a gateway's error page instead, after applyThenDelayMs."""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from http import HTTPStatus
from urllib.parse import unquote

from meetings_app.sandbox.control import control
from meetings_app.sandbox.feishu import (
    FEISHU_ROUTES,
    feishu_authorize,
    feishu_injected_failure,
    feishu_meeting_operation,
)
from meetings_app.sandbox.google import GOOGLE_ROUTES, google_authorize, google_injected_failure
from meetings_app.sandbox.state import ProviderRequest, Reply, SandboxState, control_error
from meetings_app.sandbox.zoom import ZOOM_ROUTES, zoom_authorize, zoom_injected_failure

Action = Callable[..., Reply]


@dataclass(frozen=True)
class Route:
    method: str
    pattern: re.Pattern
    provider: str
    operation: str  # one of COUNTED
    action: Action


AUTHORIZERS: dict[str, Callable[[SandboxState, ProviderRequest], Reply | None]] = {
    "feishu": feishu_authorize,
    "zoom": zoom_authorize,
    "google": google_authorize,
}

INJECTED_FAILURES: dict[str, Callable[[str, int], Reply]] = {
    "feishu": feishu_injected_failure,
    "zoom": zoom_injected_failure,
    "google": google_injected_failure,
}

ROUTES = [
    Route(method, re.compile(f"^{path}$"), provider, operation, action)
    for provider, routes in (("feishu", FEISHU_ROUTES), ("zoom", ZOOM_ROUTES), ("google", GOOGLE_ROUTES))
    for method, path, operation, action in routes
]


def injected_failure(provider: str, operation: str, status: int) -> Reply:
    """The answer a provider gives when it is overloaded or broken, in that provider's words."""
    return INJECTED_FAILURES[provider](operation, status)


def find_route(method: str, path: str) -> tuple[Route, list[str]] | None:
    for route in ROUTES:
        if route.method == method and (match := route.pattern.match(path)):
            return route, [unquote(value) for value in match.groups()]
    return None


def took_effect(provider: str, reply: Reply) -> bool:
    """Whether a provider's answer says the call was done (for Feishu: HTTP 2xx and code 0)."""
    if not 200 <= reply.status < 300:
        return False
    return provider != "feishu" or (isinstance(reply.body, dict) and reply.body.get("code") == 0)


def gateway_failure(status: int) -> Reply:
    """What a gateway in front of the provider answers when it gives up on the provider's answer: its own
    HTML error page, not the provider's JSON."""
    try:
        reason = HTTPStatus(status).phrase
    except ValueError:
        reason = "Error"
    if status == HTTPStatus.GATEWAY_TIMEOUT:
        reason = "Gateway Time-out"  # nginx's spelling
    page = (
        f"<html>\r\n<head><title>{status} {reason}</title></head>\r\n<body>\r\n"
        f"<center><h1>{status} {reason}</h1></center>\r\n<hr><center>nginx</center>\r\n</body>\r\n</html>\r\n"
    )
    return Reply(status, page.encode(), content_type="text/html")


def operation_of(state: SandboxState, route: Route, request: ProviderRequest, params: list[str]) -> str:
    """What the call is, for counting and injected faults: the route's operation, except that a Feishu calendar
    call making, moving or ending a video meeting is a meeting create, update or cancel."""
    if route.provider == "feishu":
        return feishu_meeting_operation(state, request, route.operation, params)
    return route.operation


def perform(
    state: SandboxState, route: Route, request: ProviderRequest, params: list[str], operation: str | None = None
) -> Reply:
    """Apply one provider call: authorise it, maybe fail it on purpose (changing nothing), else act; then,
    if it took effect, maybe lose its answer on purpose (the change stays)."""
    operation = operation or route.operation
    with state.lock:
        if route.operation == "token":
            return route.action(state, request, *params)
        if refusal := AUTHORIZERS[route.provider](state, request):
            return refusal
        if state.should_fail(operation, route.provider):
            return injected_failure(route.provider, operation, state.config["failStatus"])
        reply = route.action(state, request, *params)
        # Only a call that was done can lose its answer: a refusal is answered as usual and uses up no count.
        if not (took_effect(route.provider, reply) and state.should_lose_answer(operation, route.provider)):
            return reply
        delay = state.config["applyThenDelayMs"] / 1000
        lost = gateway_failure(state.config["applyThenFailStatus"])
    if delay > 0:
        time.sleep(delay)  # without the lock: the applied change is visible meanwhile
    return lost


def serve(state: SandboxState, request: ProviderRequest) -> Reply:
    """The whole life of one request: control endpoints at once, provider calls after the latency."""
    if request.path == "/_sandbox" or request.path.startswith("/_sandbox/"):
        return control(state, request)
    found = find_route(request.method, request.path)
    if found is None:
        return control_error(404, "NOT_FOUND", f"No endpoint {request.method} {request.path}.")
    route, params = found
    operation = operation_of(state, route, request, params)
    state.count(operation)
    if (latency := state.latency_seconds(operation)) > 0:
        time.sleep(latency)
    return perform(state, route, request, params, operation)
