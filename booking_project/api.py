"""Pieces every API view shares: role permissions, the error body's schema, strict input serializers."""

import json
from typing import Any

from drf_spectacular.utils import OpenApiResponse
from rest_framework import parsers, permissions, serializers
from rest_framework.exceptions import ParseError

from accounts_app.models import Role


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


class StrictJSONParser(parsers.JSONParser):
    """JSON that Python parses but the app cannot handle is malformed input too (400, never 500): nesting
    deep enough to exhaust the recursion limit, and lone surrogate escapes ("\\ud800"), which are not
    Unicode text and break every later echo, fingerprint or write of the string."""

    def parse(self, stream, media_type=None, parser_context=None):
        try:
            data = super().parse(stream, media_type, parser_context)
            json.dumps(data, ensure_ascii=False).encode("utf-8")
        except RecursionError:
            raise ParseError("JSON parse error - nested too deeply.") from None
        except UnicodeEncodeError:
            raise ParseError("JSON parse error - a string holds a lone surrogate escape, which is not text.") from None
        return data


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
        429: "THROTTLED: over a rate limit; Retry-After says when to come back.",
    }
    return {status: OpenApiResponse(ErrorSerializer, description=descriptions[status]) for status in statuses}
