"""Pieces every API view shares: role permissions, the error body's schema, strict input serializers."""

import io
import json
import unicodedata
from typing import Any

from django.conf import settings
from django.http import JsonResponse
from drf_spectacular.extensions import OpenApiSerializerExtension
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse
from rest_framework import parsers, permissions, serializers
from rest_framework.exceptions import ParseError

from accounts_app.models import Role
from booking_project.errors import PayloadTooLarge, error_body


class IsCounselor(permissions.BasePermission):
    message = "Only counselors may do this."

    def has_permission(self, request, view) -> bool:
        return bool(request.user and request.user.is_authenticated and request.user.role == Role.COUNSELOR)


class IsCounselorOrStaff(permissions.BasePermission):
    message = "Only counselors and staff may do this."

    def has_permission(self, request, view) -> bool:
        user = request.user
        return bool(user and user.is_authenticated and (user.role in (Role.COUNSELOR, Role.STAFF) or user.is_superuser))


class StrictSerializer(serializers.Serializer):
    """Rejects fields it does not know, so a misspelt field is an error instead of silently ignored."""

    def to_internal_value(self, data: Any) -> Any:
        if isinstance(data, dict):
            unknown = sorted(set(data) - set(self.fields))
            if unknown:
                raise serializers.ValidationError({name: ["Unknown field."] for name in unknown})
        return super().to_internal_value(data)


class StrictSerializerSchema(OpenApiSerializerExtension):
    """The OpenAPI document says what StrictSerializer does: no property beyond the declared ones."""

    target_class = StrictSerializer
    match_subclasses = True

    def map_serializer(self, auto_schema, direction):
        schema = auto_schema._map_basic_serializer(self.target, direction)
        return {**schema, "additionalProperties": False}


class StrictJSONParser(parsers.JSONParser):
    """JSON that Python parses but the app cannot handle is malformed input too (400, never 500): nesting
    deep enough to exhaust the recursion limit, and lone surrogate escapes ("\\ud800"), which are not
    Unicode text and break every later echo, fingerprint or write of the string."""

    def parse(self, stream, media_type=None, parser_context=None):
        # Never read more than the limit, whatever Content-Length said (RequestBodyLimitMiddleware has already
        # refused a declared length over it): a body that goes on past it is refused, not parsed.
        limit = settings.API_MAX_BODY_BYTES
        raw = stream.read(limit + 1) if stream is not None else b""
        if len(raw) > limit:
            raise PayloadTooLarge(details={"maxBytes": limit})
        try:
            data = super().parse(io.BytesIO(raw), media_type, parser_context)
            json.dumps(data, ensure_ascii=False).encode("utf-8")
        except RecursionError:
            raise ParseError("JSON parse error - nested too deeply.") from None
        except UnicodeEncodeError:
            raise ParseError("JSON parse error - a string holds a lone surrogate escape, which is not text.") from None
        return data


class RequestBodyLimitMiddleware:
    """Refuses an API request body over `API_MAX_BODY_BYTES` with 413 before anything reads it: by its
    declared Content-Length, or, for a body without one (chunked), because its size cannot be bounded before
    reading it (Django's WSGI request would otherwise read it as empty)."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        if request.path_info.startswith("/api/"):
            refusal = self._refusal(request.META)
            if refusal is not None:
                return refusal
        return self.get_response(request)

    @staticmethod
    def _refusal(meta: dict[str, Any]) -> JsonResponse | None:
        limit = settings.API_MAX_BODY_BYTES
        chunked = "chunked" in meta.get("HTTP_TRANSFER_ENCODING", "").lower()
        if chunked:
            too_large = True
        else:
            try:
                too_large = int(meta.get("CONTENT_LENGTH") or 0) > limit
            except ValueError:
                too_large = False  # Django reads no body at all then
        if not too_large:
            return None
        error = PayloadTooLarge(details={"maxBytes": limit})
        if chunked:
            error.message = f"Send the request body with a Content-Length of at most {limit} bytes, not chunked."
        response = JsonResponse(error_body(error.code, error.message, error.details), status=error.status_code)
        # Answered before the rest of the stack (which would add it): the client can read the answer whole
        # even while the server is still draining or dropping the body it sent.
        response["Content-Length"] = str(len(response.content))
        return response


def control_characters_refuse(value: str) -> None:
    """Text that ends up in an email subject or a calendar title must be one line of printable characters: a
    line break there ends the header (Django refuses to send it, so every email of the session would fail)."""
    if any(unicodedata.category(c) in _CONTROL_CATEGORIES for c in value):
        raise serializers.ValidationError("Control characters (such as a line break or a tab) are not allowed.")


# Cc: C0 and C1 controls (\n, \r, \t, NEL...); Zl, Zp: the Unicode line and paragraph separators.
_CONTROL_CATEGORIES = {"Cc", "Zl", "Zp"}


class UUIDStringField(serializers.UUIDField):
    """Ids are UUID strings in the contract; DRF would also read the number 5 as a UUID."""

    def to_internal_value(self, data: Any):
        if not isinstance(data, str):
            self.fail("invalid", value=data)
        return super().to_internal_value(data)


class WholeNumberField(serializers.IntegerField):
    """A JSON integer: "60", 60.0 and true are not minutes."""

    def to_internal_value(self, data: Any):
        if isinstance(data, bool) or not isinstance(data, int):
            self.fail("invalid")
        return super().to_internal_value(data)


class AwareDateTimeField(serializers.DateTimeField):
    """An ISO-8601 time that must carry its offset: a bare local time is ambiguous around DST changes."""

    default_error_messages = {"naive": "Give the time with an offset, e.g. 2026-12-01T10:00:00+08:00."}

    def to_internal_value(self, value: Any):
        parsed = super().to_internal_value(value)
        if isinstance(value, str) and not _has_offset(value):
            self.fail("naive")
        return parsed


def _has_offset(text: str) -> bool:
    from django.utils.dateparse import parse_datetime

    try:
        parsed = parse_datetime(text.strip())
    except ValueError:
        return False
    return parsed is not None and parsed.tzinfo is not None


class ErrorDetailSerializer(serializers.Serializer):
    code = serializers.CharField()
    message = serializers.CharField()
    details = serializers.DictField()


class ErrorSerializer(serializers.Serializer):
    error = ErrorDetailSerializer()


def error_responses(*statuses: int) -> dict[int, OpenApiResponse]:
    descriptions = {
        400: "VALIDATION_ERROR: malformed or missing fields; details maps field to messages.",
        401: "UNAUTHENTICATED: no or bad credentials.",
        403: "FORBIDDEN: authenticated but not a counselor.",
        404: "NOT_FOUND: unknown (or not yours) session, student or mentor.",
        405: "METHOD_NOT_ALLOWED.",
        409: "SLOT_CONFLICT, INSUFFICIENT_BALANCE, INVALID_STATE or IDEMPOTENCY_KEY_IN_USE.",
        422: "IDEMPOTENCY_KEY_REUSED: same Idempotency-Key, different body.",
        413: "PAYLOAD_TOO_LARGE: the request body is over the size limit (or chunked, so of unknown size).",
        429: "THROTTLED: over a rate limit; Retry-After says when to come back.",
    }
    return {status: OpenApiResponse(ErrorSerializer, description=descriptions[status]) for status in statuses}


# The header a 429 carries (API.md "Limits"); an operation that can answer 429 lists it in its parameters.
RETRY_AFTER_HEADER = OpenApiParameter(
    "Retry-After",
    OpenApiTypes.INT,
    OpenApiParameter.HEADER,
    response=[429],
    required=True,
    description="Seconds to wait before trying again.",
)
