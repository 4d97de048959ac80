"""The providers' webhooks (API.md "Provider events (webhooks)"): Zoom and Feishu tell us when a meeting really
starts and ends. Nobody logs in for these: the provider's signature or token is the only credential, checked on
the raw body before anything is read from it (meetings_app/event_verification.py)."""

import logging
import time

from django.conf import settings
from django.utils.decorators import method_decorator
from django.views.decorators.csrf import csrf_exempt
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import serializers
from rest_framework.permissions import AllowAny
from rest_framework.response import Response
from rest_framework.views import APIView

from booking_project.api import RETRY_AFTER_HEADER, ErrorSerializer, error_responses
from booking_project.errors import error_body
from booking_project.throttles import ProviderEventsThrottle
from meetings_app.event_verification import feishu_request_open, zoom_request_verify, zoom_url_validation_answer
from meetings_app.provider_events import (
    ProviderEventNotice,
    feishu_event_read,
    provider_event_record,
    zoom_event_read,
)

logger = logging.getLogger(__name__)

# What to tell a provider when its event could not be recorded now: try again (both redeliver on a non-2xx).
RETRY_LATER_SECONDS = 30


# What a webhook can answer besides 200. Never 403 or 404: nobody logs in, and no id is in the path.
EVENT_ERRORS = {
    **error_responses(400, 401, 413, 429),
    503: OpenApiResponse(
        ErrorSerializer, description="UNAVAILABLE: not recorded now (nothing changed); deliver it again later."
    ),
}


class ProviderEventApi(APIView):
    authentication_classes: list = []
    permission_classes = [AllowAny]
    throttle_classes = [ProviderEventsThrottle]
    # The body is read raw (its bytes are what is signed), never through a parser.
    parser_classes: list = []

    def record(self, notice: ProviderEventNotice | None) -> Response:
        if notice is None:
            return Response({"received": True, "recorded": False})
        try:
            recorded = provider_event_record(notice=notice)
        except Exception:
            # The database or a listener failed: the event's record went with every write made for it, so the
            # provider's redelivery (Zoom and Feishu redeliver on a non-2xx) tries again.
            logger.exception("provider_event.not_recorded", extra={"provider": notice.provider})
            return self.retry_later()
        return Response({"received": True, "recorded": recorded is not None})

    @staticmethod
    def retry_later() -> Response:
        body = error_body("UNAVAILABLE", "The event could not be recorded now; deliver it again later.")
        return Response(body, status=503, headers={"Retry-After": str(RETRY_LATER_SECONDS)})

    @staticmethod
    def now() -> float:
        return time.time()


class ZoomEventsAnswer(serializers.Serializer):
    plainToken = serializers.CharField(required=False)
    encryptedToken = serializers.CharField(required=False)
    received = serializers.BooleanField(required=False)
    recorded = serializers.BooleanField(required=False)


@method_decorator(csrf_exempt, name="dispatch")
class ZoomEventsApi(ProviderEventApi):
    @extend_schema(
        operation_id="provider_events_zoom",
        summary="Zoom's webhook: endpoint.url_validation, meeting.started, meeting.ended",
        request={"application/json": {"type": "object"}},
        parameters=[RETRY_AFTER_HEADER],
        responses={200: OpenApiResponse(ZoomEventsAnswer), **EVENT_ERRORS},
        auth=[],
    )
    def post(self, request):
        secret = settings.ZOOM_WEBHOOK_SECRET_TOKEN
        event = zoom_request_verify(
            raw_body=request.body,
            timestamp=request.headers.get("x-zm-request-timestamp"),
            signature=request.headers.get("x-zm-signature"),
            secret=secret,
            now=self.now(),
            max_age_seconds=settings.PROVIDER_EVENT_MAX_AGE_SECONDS,
            refuse_empty=settings.PRODUCTION,
        )
        if event.get("event") == "endpoint.url_validation":
            return Response(zoom_url_validation_answer(event, secret=secret))
        return self.record(zoom_event_read(event))


class FeishuEventsAnswer(serializers.Serializer):
    challenge = serializers.CharField(required=False)
    received = serializers.BooleanField(required=False)
    recorded = serializers.BooleanField(required=False)


@method_decorator(csrf_exempt, name="dispatch")
class FeishuEventsApi(ProviderEventApi):
    @extend_schema(
        operation_id="provider_events_feishu",
        summary="Feishu's event subscription (v2 schema): url_verification, vc.meeting.all_meeting_started_v1/ended",
        request={"application/json": {"type": "object"}},
        parameters=[RETRY_AFTER_HEADER],
        responses={200: OpenApiResponse(FeishuEventsAnswer), **EVENT_ERRORS},
        auth=[],
    )
    def post(self, request):
        event = feishu_request_open(
            raw_body=request.body,
            timestamp=request.headers.get("X-Lark-Request-Timestamp"),
            nonce=request.headers.get("X-Lark-Request-Nonce"),
            signature=request.headers.get("X-Lark-Signature"),
            verification_token=settings.FEISHU_EVENT_VERIFICATION_TOKEN,
            encrypt_key=settings.FEISHU_EVENT_ENCRYPT_KEY,
            now=self.now(),
            max_age_seconds=settings.PROVIDER_EVENT_MAX_AGE_SECONDS,
            refuse_empty=settings.PRODUCTION,
        )
        if event.get("type") == "url_verification":
            challenge = event.get("challenge")
            return Response({"challenge": challenge if isinstance(challenge, str) else ""})
        return self.record(feishu_event_read(event))
