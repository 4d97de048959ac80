"""HTTP in, service call, HTTP out. No business rule lives here."""

from datetime import timedelta
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
from booking_project.throttles import ActionThrottle, AvailabilityThrottle, BookThrottle
from meetings_app.models import MeetingProvider
from sessions_app.availability import (
    AVAILABILITY_MAX_DAYS,
    STEP_DEFAULT_MINUTES,
    free_times_read,
)
from sessions_app.idempotency import IdempotentRequest, booking_fingerprint
from sessions_app.models import Session, SessionStatus
from sessions_app.selectors import (
    MEETING_SHOWN_STATUSES,
    session_get_for_actor,
    session_get_for_viewer,
    session_joinable_meeting,
    session_list_for_viewer,
    session_poll_for_viewer,
)
from sessions_app.services import (
    booking_participants_get,
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
    """The session's shape (SessionOutputSerializer's answer, field for field) without the serializer's
    machinery, which cost a booking about a tenth of its CPU: every action and the booking answer with it."""
    meeting = session.meeting if session.meeting_id else None
    return session_poll_representation(
        {
            "id": session.id,
            "session_type": session.session_type,
            "status": session.status,
            "student_ids": session.student_ids,
            "mentor_id": session.mentor_id,
            "counselor_id": session.counselor_id,
            "scheduled_at": session.scheduled_at,
            "duration_minutes": session.duration_minutes,
            "meeting_provider": session.meeting_provider,
            "topic": session.topic,
            "meeting_id": session.meeting_id,
            "meeting_no": meeting.meeting_no if meeting else None,
            "join_url": meeting.join_url if meeting else None,
            "requires_manual_intervention": session.requires_manual_intervention,
            "failure_reason": session.failure_reason,
            "started_at": session.started_at,
            "ended_at": session.ended_at,
        }
    )


# The serializer's own datetime field, so the lean read formats times exactly as every other answer does.
_DATETIME = serializers.DateTimeField()


def _datetime(value) -> str | None:
    return None if value is None else _DATETIME.to_representation(value)


def session_poll_representation(row: dict[str, Any]) -> dict[str, Any]:
    """SessionOutputSerializer's answer, field for field, built from session_poll_for_viewer's row without the
    serializer's machinery: the read the counselor page makes every 2 s (tested equal for every status)."""
    student_ids = row["student_ids"]
    shown = row["status"] in MEETING_SHOWN_STATUSES and row["meeting_id"] is not None
    return {
        "sessionId": str(row["id"]),
        "sessionType": row["session_type"],
        "status": row["status"],
        "studentId": str(student_ids[0]) if len(student_ids) == 1 else None,
        "studentIds": [str(i) for i in student_ids],
        "mentorId": str(row["mentor_id"]),
        "counselorId": str(row["counselor_id"]),
        "scheduledAt": _datetime(row["scheduled_at"]),
        "duration": int(row["duration_minutes"]),
        "meetingProvider": row["meeting_provider"],
        "topic": str(row["topic"]),
        "meetingId": str(row["meeting_id"]) if shown else None,
        "meetingNo": row["meeting_no"] if shown else None,
        "meetingUrl": row["join_url"] if shown else None,
        "requiresManualIntervention": bool(row["requires_manual_intervention"]),
        "failureReason": None if row["failure_reason"] is None else str(row["failure_reason"]),
        "startedAt": _datetime(row["started_at"]),
        "endedAt": _datetime(row["ended_at"]),
    }


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
        return paginator.get_paginated_response([session_representation(session) for session in page])


class SessionDetailApi(APIView):
    permission_classes = [IsCounselorOrStaff]

    @extend_schema(
        operation_id="session_read",
        parameters=[OpenApiParameter("session_id", OpenApiTypes.UUID, OpenApiParameter.PATH)],
        responses={200: SessionOutputSerializer, **error_responses(401, 403, 404, 413)},
    )
    def get(self, request: Request, session_id: str) -> Response:
        row = session_poll_for_viewer(viewer=request.user, session_id=_parse_session_id(session_id))
        return Response(session_poll_representation(row))


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


class _FreeTimeSerializer(serializers.Serializer):
    start = serializers.DateTimeField()
    end = serializers.DateTimeField()


class AvailabilityApi(APIView):
    """`GET /api/counselor/availability` (API.md "Availability"): the free starts of a mentor and students.

    Queries, whatever the range's length: the token, the people (one), the counselor's time zone (one), the
    mentor's working hours and exceptions (two), the booked slots (one) and whether the mentor's calendar
    provider is paused (one): seven, asserted in tests/availability/test_availability_api.py; one more when the
    mentor's calendar answers busy times (our own events among them are left out), and at most one provider
    request (none while its answer is cached, calendar_app/busy.py)."""

    permission_classes = [IsCounselor]
    throttle_classes = [AvailabilityThrottle]

    class FilterSerializer(StrictSerializer):
        mentorId = serializers.UUIDField()
        studentId = serializers.UUIDField(required=False)
        studentIds = serializers.CharField(required=False, help_text="Comma-separated student ids.")
        duration = serializers.IntegerField(min_value=15, max_value=240)
        step = serializers.IntegerField(min_value=5, max_value=60, required=False)
        meetingProvider = serializers.ChoiceField(choices=MeetingProvider.choices, required=False)

        def get_fields(self):
            fields = super().get_fields()
            # "from" is a Python keyword, hence the fields added by name.
            fields["from"] = AwareDateTimeField()
            fields["to"] = AwareDateTimeField()
            return fields

        def validate_studentIds(self, value: str) -> list[UUID]:
            parts = [p.strip() for p in value.split(",")]
            if not 1 <= len(parts) <= MAX_CLASS_SIZE:
                raise serializers.ValidationError(f"Give 1 to {MAX_CLASS_SIZE} student ids.")
            try:
                ids = [UUID(p) for p in parts]
            except ValueError:
                raise serializers.ValidationError("Give student ids (UUIDs) separated by commas.") from None
            if len(set(ids)) != len(ids):
                raise serializers.ValidationError("A student is listed twice.")
            return ids

        def validate(self, data: dict[str, Any]) -> dict[str, Any]:
            single, several = data.get("studentId"), data.get("studentIds")
            if single is None and several is None:
                raise serializers.ValidationError({"studentIds": ["Give studentId or studentIds."]})
            if single is not None and several is not None and several != [single]:
                raise serializers.ValidationError({"studentId": ["Give studentId or studentIds, not both."]})
            data["studentIds"] = several if several is not None else [single]
            if data["mentorId"] in data["studentIds"]:
                raise serializers.ValidationError({"mentorId": ["The mentor cannot also be a student."]})
            try:
                data["from"] - timedelta(days=1), data["to"] + timedelta(days=1)
            except OverflowError:
                raise serializers.ValidationError({"to": ["Give times between the years 1 and 9999."]}) from None
            if data["to"] <= data["from"]:
                raise serializers.ValidationError({"to": ["Must be after from."]})
            if data["to"] - data["from"] > timedelta(days=AVAILABILITY_MAX_DAYS):
                raise serializers.ValidationError({"to": [f"At most {AVAILABILITY_MAX_DAYS} days after from."]})
            return data

    class OutputSerializer(serializers.Serializer):
        timeZone = serializers.CharField()
        slots = _FreeTimeSerializer(many=True)
        calendarsChecked = serializers.ListField(
            child=serializers.CharField(), help_text="The mentor's calendars whose busy times were left out."
        )
        calendarsSkipped = serializers.ListField(
            child=serializers.CharField(),
            help_text="The mentor's calendars that did not answer in time, or may not be read: not counted.",
        )

    @extend_schema(
        operation_id="availability_read",
        description="The starts (on the `step` grid of the counselor's time zone, in the future, within the "
        "booking horizon and the mentor's working hours) at which the mentor and every student are free for "
        "`duration` minutes, answered in the counselor's time zone.",
        parameters=[
            OpenApiParameter("mentorId", OpenApiTypes.UUID, required=True),
            OpenApiParameter("studentId", OpenApiTypes.UUID),
            OpenApiParameter("studentIds", OpenApiTypes.STR, description="Comma-separated student ids."),
            OpenApiParameter("duration", {"type": "integer", "minimum": 15, "maximum": 240}, required=True),
            OpenApiParameter("from", OpenApiTypes.DATETIME, required=True, description="With an offset."),
            OpenApiParameter(
                "to", OpenApiTypes.DATETIME, required=True, description="After from, at most 14 days later."
            ),
            OpenApiParameter(
                "step", {"type": "integer", "minimum": 5, "maximum": 60}, description="Minutes; 15 unless given."
            ),
            OpenApiParameter(
                "meetingProvider",
                OpenApiTypes.STR,
                enum=MeetingProvider.values,
                description="Whose booking window applies; the server's default provider unless given.",
            ),
            RETRY_AFTER_HEADER,
        ],
        responses={200: OutputSerializer, **error_responses(400, 401, 403, 404, 413, 429)},
    )
    def get(self, request: Request) -> Response:
        filters = self.FilterSerializer(data=request.query_params.dict())
        filters.is_valid(raise_exception=True)
        f = filters.validated_data
        mentor = booking_participants_get(counselor=request.user, mentor_id=f["mentorId"], student_ids=f["studentIds"])
        free = free_times_read(
            reader=request.user,
            mentor=mentor,
            student_ids=f["studentIds"],
            duration_minutes=f["duration"],
            start=f["from"],
            end=f["to"],
            step_minutes=f.get("step") or STEP_DEFAULT_MINUTES,
            meeting_provider=f.get("meetingProvider"),
        )
        return Response(
            {
                "timeZone": free.time_zone,
                "slots": free.slots,
                "calendarsChecked": free.calendar.checked,
                "calendarsSkipped": free.calendar.skipped,
            }
        )
