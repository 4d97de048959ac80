"""Idempotency-Key handling for booking: one booking per (counselor, key), the first answer replayed.

The key is claimed with a transaction-scoped advisory lock, so a second request with the same key
while the first is still running is told so at once (409), and the record is written in the same
transaction as the booking: a crash can never leave a booking without its record or the reverse.
"""

import hashlib
import json
import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID

from django.conf import settings
from django.db import connection, transaction
from django.utils import timezone

from booking_project.errors import IdempotencyKeyInUse, IdempotencyKeyReused
from sessions_app.models import IdempotencyRecord, Session

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class IdempotentRequest:
    key: str
    fingerprint: str
    # Renders the first answer inside the booking transaction, so the record and the booking commit together.
    render: Callable[[Session], dict[str, Any]]
    response_status: int = 201


def booking_fingerprint(data: dict[str, Any]) -> str:
    """What makes two booking requests the same booking: their parsed, validated bodies, not their bytes. A
    start written with `Z` or `+00:00` or `+08:00` is one instant; `studentId` is `studentIds` of one; a
    missing provider or topic is the default one."""
    return _fingerprint(
        {
            "sessionType": data["sessionType"],
            "studentIds": [str(student_id) for student_id in data["studentIds"]],
            "mentorId": str(data["mentorId"]),
            "start": data["scheduledStartTime"].astimezone(UTC).isoformat(),
            "duration": data["duration"],
            "meetingProvider": data.get("meetingProvider") or settings.DEFAULT_MEETING_PROVIDER,
            "topic": data.get("topic") or None,
        }
    )


def _fingerprint(body: dict[str, Any]) -> str:
    canonical = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode()).hexdigest()


def idempotency_claim(*, counselor_id: UUID, request: IdempotentRequest) -> IdempotencyRecord | None:
    """Inside the booking transaction: lock the key and return the remembered answer, if any.

    Raises IdempotencyKeyInUse while another transaction holds the key, IdempotencyKeyReused when the
    key was first used with another body.
    """
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT pg_try_advisory_xact_lock(hashtextextended(%s, 0))", [f"idempotency:{counselor_id}:{request.key}"]
        )
        (locked,) = cursor.fetchone()
    if not locked:
        raise IdempotencyKeyInUse()
    record = IdempotencyRecord.objects.filter(counselor_id=counselor_id, key=request.key).first()
    if record is None:
        return None
    if record.created_at < timezone.now() - timedelta(hours=settings.IDEMPOTENCY_KEY_TTL_HOURS):
        record.delete()  # expired: the key is free again
        return None
    if record.request_fingerprint != request.fingerprint:
        raise IdempotencyKeyReused()
    return record


def idempotency_remember(*, counselor_id: UUID, request: IdempotentRequest, session: Session) -> None:
    idempotency_record_new(counselor_id=counselor_id, request=request, session=session).save(force_insert=True)


def idempotency_record_new(*, counselor_id: UUID, request: IdempotentRequest, session: Session) -> IdempotencyRecord:
    """The unsaved record `idempotency_remember` writes (the answer rendered now), for a booking written in one
    statement."""
    return IdempotencyRecord(
        counselor_id=counselor_id,
        key=request.key,
        request_fingerprint=request.fingerprint,
        session=session,
        response_status=request.response_status,
        response_body=request.render(session),
    )


def idempotency_records_expire(*, now: datetime | None = None, batch_size: int = 1000) -> int:
    """Delete the records older than IDEMPOTENCY_KEY_TTL_HOURS (their keys are free again anyway), in batches,
    each claimed with SKIP LOCKED: two clean-ups at once (two beats) delete each row once and never wait on
    each other or on a booking that holds one. Returns how many this call deleted."""
    cutoff = (now or timezone.now()) - timedelta(hours=settings.IDEMPOTENCY_KEY_TTL_HOURS)
    deleted = 0
    while True:
        with transaction.atomic():
            batch = list(
                IdempotencyRecord.objects.select_for_update(skip_locked=True)
                .filter(created_at__lt=cutoff)
                .values_list("id", flat=True)[:batch_size]
            )
            if batch:
                deleted += IdempotencyRecord.objects.filter(id__in=batch).delete()[0]
        if len(batch) < batch_size:
            break
    if deleted:
        logger.info("idempotency.records_expired", extra={"deleted": deleted})
    return deleted
