"""The one error family of the domain and the one place that turns any error into the contract's body.

Every error body is {"error": {"code", "message", "details"}} (API.md "Errors").
"""

from __future__ import annotations

from typing import Any

from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.core.exceptions import RequestDataTooBig
from django.http import Http404, JsonResponse
from rest_framework import exceptions as drf
from rest_framework.response import Response


class ApplicationError(Exception):
    status_code = 400
    code = "VALIDATION_ERROR"
    message = "The request is not valid."

    def __init__(self, message: str | None = None, *, details: dict[str, Any] | None = None):
        self.message = message or self.message
        self.details = details or {}
        super().__init__(self.message)


class NotFound(ApplicationError):
    status_code = 404
    code = "NOT_FOUND"
    message = "Not found."


class SlotConflict(ApplicationError):
    status_code = 409
    code = "SLOT_CONFLICT"
    message = "The mentor or a student is already booked at that time."


class InsufficientBalance(ApplicationError):
    status_code = 409
    code = "INSUFFICIENT_BALANCE"
    message = "The student has no free unit of this session type."


class InvalidState(ApplicationError):
    status_code = 409
    code = "INVALID_STATE"
    message = "The action is not allowed in the session's status."


class IdempotencyKeyInUse(ApplicationError):
    status_code = 409
    code = "IDEMPOTENCY_KEY_IN_USE"
    message = "A request with this Idempotency-Key is still being processed."


class IdempotencyKeyReused(ApplicationError):
    status_code = 422
    code = "IDEMPOTENCY_KEY_REUSED"
    message = "This Idempotency-Key was used with a different request body."


class PayloadTooLarge(ApplicationError):
    status_code = 413
    code = "PAYLOAD_TOO_LARGE"
    message = "The request body is over the size limit."


def error_body(code: str, message: str, details: dict[str, Any] | None = None) -> dict[str, Any]:
    return {"error": {"code": code, "message": message, "details": details or {}}}


# DRF's own exceptions, by class, mapped to the contract's status and code. Order matters: first match wins.
_DRF_ERRORS: list[tuple[type[Exception], int, str]] = [
    (drf.ValidationError, 400, "VALIDATION_ERROR"),
    (drf.ParseError, 400, "VALIDATION_ERROR"),
    # The contract has no 415: a body that is not JSON is malformed input.
    (drf.UnsupportedMediaType, 400, "VALIDATION_ERROR"),
    (drf.NotAuthenticated, 401, "UNAUTHENTICATED"),
    (drf.AuthenticationFailed, 401, "UNAUTHENTICATED"),
    (drf.PermissionDenied, 403, "FORBIDDEN"),
    (drf.NotFound, 404, "NOT_FOUND"),
    (drf.MethodNotAllowed, 405, "METHOD_NOT_ALLOWED"),
    (drf.NotAcceptable, 406, "NOT_ACCEPTABLE"),
    (drf.Throttled, 429, "THROTTLED"),
]


def _validation_details(detail: Any) -> dict[str, Any]:
    if isinstance(detail, dict):
        return {field: _messages(msgs) for field, msgs in detail.items()}
    return {"non_field_errors": _messages(detail)}


def _messages(detail: Any, prefix: str = "") -> list[str]:
    """Plain-text messages, flattening DRF's nested errors (e.g. a list field's {index: [...]}) instead of
    sending their Python repr."""
    if isinstance(detail, dict):
        return [m for key, sub in detail.items() for m in _messages(sub, f"{prefix}[{key}] ")]
    if isinstance(detail, list):
        return [m for sub in detail for m in _messages(sub, prefix)]
    return [f"{prefix}{detail}"]


def api_exception_handler(exc: Exception, context: dict[str, Any]) -> Response | None:
    if isinstance(exc, RequestDataTooBig):
        # Django's own cap (DATA_UPLOAD_MAX_MEMORY_SIZE) met while reading the body: too large, not a bug.
        exc = PayloadTooLarge()
    if isinstance(exc, ApplicationError):
        return Response(error_body(exc.code, exc.message, exc.details), status=exc.status_code)
    if isinstance(exc, Http404):
        exc = drf.NotFound()
    elif isinstance(exc, DjangoPermissionDenied):
        exc = drf.PermissionDenied()

    mapped = next(((status, code) for cls, status, code in _DRF_ERRORS if isinstance(exc, cls)), None)
    if mapped is None:
        return None  # a bug: let Django log it and answer 500
    status, code = mapped

    headers: dict[str, str] = {}
    if isinstance(exc, drf.ValidationError):
        message, details = "The request is not valid.", _validation_details(exc.detail)
    else:
        message, details = str(exc.detail), {}
    if isinstance(exc, (drf.NotAuthenticated, drf.AuthenticationFailed)):
        headers["WWW-Authenticate"] = 'Token realm="api"'
    if isinstance(exc, drf.Throttled) and exc.wait is not None:
        headers["Retry-After"] = str(int(exc.wait) + (0 if float(exc.wait).is_integer() else 1))
        details = {"retryAfterSeconds": int(headers["Retry-After"])}
    if isinstance(exc, drf.MethodNotAllowed):
        allow = context.get("view").allowed_methods if context.get("view") else []
        headers["Allow"] = ", ".join(allow)
    return Response(error_body(code, message, details), status=status, headers=headers)


def api_not_found(request, exception=None) -> JsonResponse:
    """Unknown URLs answer in the contract's shape too, not Django's HTML page."""
    return JsonResponse(error_body("NOT_FOUND", "No such resource."), status=404)


def api_bad_request(request, exception=None) -> JsonResponse:
    """What Django itself refuses as a bad request (a body over DATA_UPLOAD_MAX_MEMORY_SIZE, a host not in
    ALLOWED_HOSTS, ...) answers in the contract's shape too, not Django's HTML page."""
    if isinstance(exception, RequestDataTooBig):
        error = PayloadTooLarge()
        return JsonResponse(error_body(error.code, error.message), status=error.status_code)
    return JsonResponse(error_body("VALIDATION_ERROR", "The request is not valid."), status=400)


def api_server_error(request) -> JsonResponse:
    return JsonResponse(error_body("INTERNAL_ERROR", "An unexpected error occurred."), status=500)
