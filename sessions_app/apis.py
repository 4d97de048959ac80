"""HTTP in, service call, HTTP out. No business rule lives here."""

from typing import Any
from uuid import UUID

from django.conf import settings
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import (
    OpenApiParameter,
    extend_schema,
    extend_schema_field,
    extend_schema_serializer,
    extend_schema_view,
)
from rest_framework import serializers
from rest_framework.pagination import PageNumberPagination
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from booking_project.api import (
    RETRY_AFTER_HEADER,
    AwareDateTimeField,
    IsCounselor,
    IsCounselorOrStaff,
    StrictSerializer,
    UUIDStringField,
    WholeNumberField,
    control_characters_refuse,
    error_responses,
)
from booking_project.errors import ApplicationError, NotFound
from booking_project.throttles import ActionThrottle, BookThrottle
from meetings_app.models import MeetingProvider
from sessions_app.idempotency import IdempotentRequest, booking_fingerprint
from sessions_app.models import Session, SessionStatus
from sessions_app.selectors import (
    session_get_for_actor,
    session_get_for_viewer,
    session_joinable_meeting,
    session_list_for_viewer,
)
from sessions_app.services import (
    session_book,
    session_cancel,
    session_complete,
    session_reschedule,
    session_retry,
)
from sessions_app.types import SESSION_TYPES, session_type_get

MAX_CLASS_SIZE = max(t.max_students for t in SESSION_TYPES.values())


class SessionOutputSerializer(serializers.Serializer):
    """The session's shape, answered by every session endpoint (API.md "Book" and "Read")."""

    sessionId = serializers.UUIDField(source="id")
    sessionType = serializers.ChoiceField(source="session_type", choices=list(SESSION_TYPES))
    status = serializers.ChoiceField(choices=SessionStatus.choices)
    studentId = serializers.SerializerMethodField()
    studentIds = serializers.ListField(source="student_ids", child=serializers.UUIDField())
    mentorId = serializers.UUIDField(source="mentor_id")
    counselorId = serializers.UUIDField(source="counselor_id")
    scheduledAt = serializers.DateTimeField(source="scheduled_at")
    duration = serializers.IntegerField(source="duration_minutes")
    meetingProvider = serializers.ChoiceField(source="meeting_provider", choices=MeetingProvider.choices)
    topic = serializers.CharField()
    meetingId = serializers.SerializerMethodField()
    meetingNo = serializers.SerializerMethodField()
    meetingUrl = serializers.SerializerMethodField()
    requiresManualIntervention = serializers.BooleanField(source="requires_manual_intervention")
    failureReason = serializers.CharField(source="failure_reason", allow_null=True)
    startedAt = serializers.DateTimeField(source="started_at", allow_null=True)
    endedAt = serializers.DateTimeField(source="ended_at", allow_null=True)

    @extend_schema_field(serializers.UUIDField(allow_null=True))
    def get_studentId(self, session: Session) -> str | None:
        return str(session.student_ids[0]) if len(session.student_ids) == 1 else None

    @extend_schema_field(serializers.UUIDField(allow_null=True))
    def get_meetingId(self, session: Session) -> str | None:
        meeting = session_joinable_meeting(session)
        return str(meeting.id) if meeting else None

    @extend_schema_field(serializers.CharField(allow_null=True))
    def get_meetingNo(self, session: Session) -> str | None:
        meeting = session_joinable_meeting(session)
        return meeting.meeting_no if meeting else None

    @extend_schema_field(serializers.URLField(allow_null=True))
    def get_meetingUrl(self, session: Session) -> str | None:
        meeting = session_joinable_meeting(session)
        return meeting.join_url if meeting else None


def session_representation(session: Session) -> dict[str, Any]:
    return SessionOutputSerializer(session).data


def _session_location(session_id: UUID) -> str:
    return f"/api/counselor/sessions/{session_id}"


IDEMPOTENCY_KEY_HEADER = OpenApiParameter(
    "Idempotency-Key",
    {"type": "string", "minLength": 1, "maxLength": 255},
    OpenApiParameter.HEADER,
    required=False,
    description="At most 255 characters, scoped to the counselor. The same key with the same body "
    "within 24 h returns the first response and books nothing new.",
)


class SessionBookApi(APIView):
    permission_classes = [IsCounselor]
    throttle_classes = [BookThrottle]

    class InputSerializer(StrictSerializer):
        sessionType = serializers.ChoiceField(choices=list(SESSION_TYPES))
        studentId = UUIDStringField(required=False)
        studentIds = serializers.ListField(
            child=UUIDStringField(), required=False, min_length=1, max_length=MAX_CLASS_SIZE
        )
        mentorId = UUIDStringField()
        scheduledStartTime = AwareDateTimeField()
        duration = WholeNumberField(min_value=15, max_value=240)
        meetingProvider = serializers.ChoiceField(choices=MeetingProvider.choices, required=False)
        topic = serializers.CharField(
            max_length=200, required=False, allow_blank=True, validators=[control_characters_refuse]
        )

        def validate(self, data: dict[str, Any]) -> dict[str, Any]:
            single, several = data.get("studentId"), data.get("studentIds")
            if single is None and several is None:
                field = "studentIds" if session_type_get(data["sessionType"]).max_students > 1 else "studentId"
                raise serializers.ValidationError({field: ["This field is required."]})
            if single is not None and several is not None and several != [single]:
                raise serializers.ValidationError({"studentId": ["Give studentId or studentIds, not both."]})
            data["studentIds"] = several if several is not None else [single]
            return data

    @extend_schema(
        operation_id="session_book",
        request=InputSerializer,
        parameters=[IDEMPOTENCY_KEY_HEADER, RETRY_AFTER_HEADER],
        responses={201: SessionOutputSerializer, **error_responses(400, 401, 403, 404, 409, 413, 422, 429)},
    )
    def post(self, request: Request) -> Response:
        key = self._idempotency_key(request)
        body = self.InputSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        data = body.validated_data
        idempotency = None
        if key is not None:
            idempotency = IdempotentRequest(
                key=key, fingerprint=booking_fingerprint(data), render=session_representation
            )
        outcome = session_book(
            counselor=request.user,
            session_type=session_type_get(data["sessionType"]),
            student_ids=data["studentIds"],
            mentor_id=data["mentorId"],
            start=data["scheduledStartTime"],
            duration_minutes=data["duration"],
            meeting_provider=data.get("meetingProvider") or settings.DEFAULT_MEETING_PROVIDER,
            topic=data.get("topic") or None,
            idempotency=idempotency,
        )
        headers = {"Location": _session_location(outcome.session.id)}
        if outcome.replayed_response is not None:
            headers["Idempotent-Replayed"] = "true"
            return Response(outcome.replayed_response, status=201, headers=headers)
        return Response(session_representation(outcome.session), status=201, headers=headers)

    @staticmethod
    def _idempotency_key(request: Request) -> str | None:
        key = request.headers.get("Idempotency-Key")
        if key is not None and not 1 <= len(key) <= 255:
            raise ApplicationError(details={"Idempotency-Key": ["Use 1 to 255 characters."]})
        return key


class SessionListPagination(PageNumberPagination):
    page_size = 20
    page_size_query_param = "pageSize"
    max_page_size = 100


class SessionListApi(APIView):
    permission_classes = [IsCounselorOrStaff]
    pagination_class = SessionListPagination  # read by the schema generator: the answer is a page

    class FilterSerializer(StrictSerializer):
        status = serializers.ChoiceField(choices=SessionStatus.choices, required=False)
        sessionType = serializers.ChoiceField(choices=list(SESSION_TYPES), required=False)
        # "from"/"to" are Python keywords, hence the explicit field names below.
        page = serializers.IntegerField(min_value=1, required=False)
        pageSize = serializers.IntegerField(min_value=1, max_value=SessionListPagination.max_page_size, required=False)

        def get_fields(self):
            fields = super().get_fields()
            fields["from"] = AwareDateTimeField(required=False)
            fields["to"] = AwareDateTimeField(required=False)
            return fields

    @extend_schema(
        operation_id="session_list",
        parameters=[
            OpenApiParameter("status", OpenApiTypes.STR, enum=SessionStatus.values),
            OpenApiParameter("sessionType", OpenApiTypes.STR, enum=list(SESSION_TYPES)),
            OpenApiParameter("from", OpenApiTypes.DATETIME, description="Sessions starting at or after."),
            OpenApiParameter("to", OpenApiTypes.DATETIME, description="Sessions starting before."),
            OpenApiParameter("page", {"type": "integer", "minimum": 1}),
            OpenApiParameter(
                "pageSize", {"type": "integer", "minimum": 1, "maximum": SessionListPagination.max_page_size}
            ),
        ],
        responses={200: SessionOutputSerializer(many=True), **error_responses(400, 401, 403, 404, 413)},
    )
    def get(self, request: Request) -> Response:
        filters = self.FilterSerializer(data=request.query_params.dict())
        filters.is_valid(raise_exception=True)
        f = filters.validated_data
        sessions = session_list_for_viewer(
            viewer=request.user,
            status=f.get("status"),
            session_type=f.get("sessionType"),
            starts_from=f.get("from"),
            starts_before=f.get("to"),
        )
        paginator = SessionListPagination()
        page = paginator.paginate_queryset(sessions, request, view=self)
        return paginator.get_paginated_response(SessionOutputSerializer(page, many=True).data)


class SessionDetailApi(APIView):
    permission_classes = [IsCounselorOrStaff]

    @extend_schema(
        operation_id="session_read",
        parameters=[OpenApiParameter("session_id", OpenApiTypes.UUID, OpenApiParameter.PATH)],
        responses={200: SessionOutputSerializer, **error_responses(401, 403, 404, 413)},
    )
    def get(self, request: Request, session_id: str) -> Response:
        session = session_get_for_viewer(viewer=request.user, session_id=_parse_session_id(session_id))
        return Response(session_representation(session))


def _action_schema(operation_id: str, description: str, request=None):
    """The OpenAPI entry of a session action: its body (if any), the session's shape, the action's errors."""
    return extend_schema(
        operation_id=operation_id,
        description=description,
        request=request,
        parameters=[OpenApiParameter("session_id", OpenApiTypes.UUID, OpenApiParameter.PATH), RETRY_AFTER_HEADER],
        responses={
            200: SessionOutputSerializer,
            **error_responses(*((400,) if request else ()), 401, 403, 404, 409, 413, 429),
        },
    )


class SessionActionApi(APIView):
    """`POST /api/counselor/sessions/{id}/<action>`: the viewer's session, one service call, the session's
    shape back. Subclasses run the service in `act`."""

    permission_classes = [IsCounselorOrStaff]
    throttle_classes = [ActionThrottle]

    def act(self, request: Request, session: Session) -> None:
        raise NotImplementedError

    def post(self, request: Request, session_id: str) -> Response:
        session = session_get_for_actor(actor=request.user, session_id=_parse_session_id(session_id))
        self.act(request, session)
        return Response(session_representation(session_get_for_viewer(viewer=request.user, session_id=session.id)))


@extend_schema_serializer(component_name="SessionRetry")
class _RetryInputSerializer(StrictSerializer):
    scheduledStartTime = AwareDateTimeField(required=False)
    duration = WholeNumberField(min_value=15, max_value=240, required=False)


@extend_schema_view(
    post=_action_schema(
        "session_retry",
        "MEETING_FAILED → PENDING_MEETING: a new hold and new slots (409 if no longer free), provisioned again; "
        "at the session's own time, or at the `scheduledStartTime` / `duration` given. The booking rules apply: "
        "a start that has passed or is beyond the horizon is 400, and nothing changes.",
        request=_RetryInputSerializer,
    )
)
class SessionRetryApi(SessionActionApi):
    InputSerializer = _RetryInputSerializer

    def act(self, request: Request, session: Session) -> None:
        body = self.InputSerializer(data=request.data or {})
        body.is_valid(raise_exception=True)
        session_retry(
            session_id=session.id,
            actor=request.user,
            start=body.validated_data.get("scheduledStartTime"),
            duration_minutes=body.validated_data.get("duration"),
        )


@extend_schema_view(
    post=_action_schema(
        "session_cancel",
        "PENDING_MEETING, SCHEDULED or MEETING_FAILED → CANCELLED: the hold released and the slots freed at "
        "once; the meeting, calendar events and reminders cancelled in the background.",
    )
)
class SessionCancelApi(SessionActionApi):
    def act(self, request: Request, session: Session) -> None:
        session_cancel(session_id=session.id, actor=request.user)


@extend_schema_view(
    post=_action_schema(
        "session_complete",
        "SCHEDULED or IN_PROGRESS → COMPLETED, once the session has started: the hold is spent.",
    )
)
class SessionCompleteApi(SessionActionApi):
    def act(self, request: Request, session: Session) -> None:
        session_complete(session_id=session.id, actor=request.user)


@extend_schema_serializer(component_name="SessionReschedule")
class _RescheduleInputSerializer(StrictSerializer):
    scheduledStartTime = AwareDateTimeField()
    duration = WholeNumberField(min_value=15, max_value=240)


@extend_schema_view(
    post=_action_schema(
        "session_reschedule",
        "Move a SCHEDULED session: its slots are moved at once (409 SLOT_CONFLICT changes nothing); the meeting, "
        "calendar events and reminders follow in the background.",
        request=_RescheduleInputSerializer,
    )
)
class SessionRescheduleApi(SessionActionApi):
    InputSerializer = _RescheduleInputSerializer

    def act(self, request: Request, session: Session) -> None:
        body = self.InputSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        session_reschedule(
            session_id=session.id,
            actor=request.user,
            start=body.validated_data["scheduledStartTime"],
            duration_minutes=body.validated_data["duration"],
        )


def _parse_session_id(raw: str) -> UUID:
    try:
        return UUID(raw)
    except ValueError:
        raise NotFound("No such session.") from None
