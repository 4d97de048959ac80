"""Every write of notifications: the delivery rows a meeting result event asks for (written in the transaction
that records the event), each delivery's attempt (claimed compare-and-set with a lease, the provider or SMTP
called outside any transaction, the answer recorded compare-and-set), each participant's calendar event,
emails, reminders, and the hand-over to a person of what gave up. Every delivery converges to the session's
CURRENT state (read through `sessions_app.selectors`), so an event handled twice or out of order sends
nothing twice and leaves nothing behind. Nothing here ever writes a session, hold, slot or meeting.

Deliveries and reminders are rows of the provider-work engine (`booking_project.provider_work`): a lost Celery
message, a notifier that was down, a Redis restarted without persistence delay a notification (the sweep
re-drives a row still unfinished after NOTIFICATION_STUCK_AFTER_SECONDS) and never lose it."""

from __future__ import annotations

import logging
import smtplib
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import partial
from typing import Any
from uuid import UUID

from django.conf import settings
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from accounts_app.models import Profile, User
from booking_project.events import MEETING_OPERATION_RESULT, SESSION_COMPLETED, SESSION_STARTED, event_type_get, records
from booking_project.provider_work import (
    DONE,
    WorkKind,
    WorkStep,
    attempt_lease_held,
    attempt_open,
    needs_person_flag,
    needs_person_resolve,
    not_before_in,
    retry_after_too_long,
    wait_step,
    work_kind_register,
    work_move,
    work_run,
)
from booking_project.providers.http import backoff_seconds
from booking_project.providers.outcomes import OutcomeUnknownError, PermanentProviderError, TransientProviderError
from calendar_app.models import CalendarEvent
from calendar_app.providers.base import CalendarEventRequest
from calendar_app.services import CalendarEventTarget, calendar_event_sync
from notifications_app.emails import SessionInvite, email_send, ends_at, local_time
from notifications_app.models import (
    DELIVERY_FINAL_STATES,
    DELIVERY_TRANSITIONS,
    REMINDER_TRANSITIONS,
    Channel,
    DeliveryState,
    EmailKind,
    NotificationDelivery,
    NotificationWorkRow,
    Reminder,
)
from sessions_app.models import OutboxEvent, Session, SessionStatus
from sessions_app.selectors import outbox_event_get, session_get_current

logger = logging.getLogger(__name__)

# A session in these states has its meeting: calendars show it, reminders are due, invitations make sense.
LIVE_STATUSES = frozenset({SessionStatus.SCHEDULED, SessionStatus.IN_PROGRESS})
# Emails about the session as it is (not worth sending once it is cancelled or over).
EMAILS_FOR_LIVE_SESSIONS = frozenset({EmailKind.INVITATION, EmailKind.RESCHEDULED})
UNFINISHED_STATES = (DeliveryState.PENDING, DeliveryState.RUNNING, DeliveryState.RETRY_WAIT)
# How soon a cancellation email looks again while the recipient's invitation is being sent right now.
INVITATION_IN_FLIGHT_WAIT_SECONDS = 1.0


# ---------------------------------------------------------------------------------------------------------
# What a result event asks for: delivery rows, written with the event


@records(MEETING_OPERATION_RESULT)
def meeting_result_deliveries_record(event: OutboxEvent) -> list[NotificationDelivery]:
    """Write the delivery rows a `{type}.session.meeting.operation.result` event asks for, in the transaction
    that records it (booking_project.events.records): a calendar delivery per participant and one for the
    session's reminders when the session's calendars must follow it, and an email per recipient and kind.
    Recording the same event again adds nothing (unique per event, channel, recipient and email kind)."""
    payload = event.payload
    session_id = UUID(payload["sessionId"])
    participants = [UUID(payload["mentorId"]), *(UUID(s) for s in payload["studentIds"])]
    counselor = UUID(payload["counselorId"])
    operation, succeeded = payload.get("operation"), payload.get("status") == "success"
    if operation == "create" and succeeded:
        touch_calendars, emails = True, [(p, EmailKind.INVITATION) for p in participants]
    elif operation == "create":
        touch_calendars, emails = False, [(counselor, EmailKind.MEETING_FAILED)]
    elif operation == "update":
        # Failed or not, the session keeps its new time: calendars and reminders follow it.
        touch_calendars, emails = True, [(p, EmailKind.RESCHEDULED) for p in participants]
        if not succeeded:
            emails.append((counselor, EmailKind.UPDATE_FAILED))
    elif operation == "cancel":
        # The session is CANCELLED in our system whether or not the provider cancelled its meeting.
        touch_calendars, emails = True, [(p, EmailKind.CANCELLED) for p in participants]
    else:
        logger.warning("notifications.unknown_operation", extra={"eventId": str(event.id), "operation": operation})
        return []
    common = {"event_id": event.id, "session_id": session_id, "event_at": event.created_at}
    rows = [NotificationDelivery(channel=Channel.CALENDAR, recipient_id=p, **common) for p in participants]
    rows = rows if touch_calendars else []
    if touch_calendars:
        rows.append(NotificationDelivery(channel=Channel.REMINDERS, recipient_id=None, **common))
    rows += [
        NotificationDelivery(channel=Channel.EMAIL, recipient_id=r, email_kind=kind, payload=payload, **common)
        for r, kind in emails
    ]
    NotificationDelivery.objects.bulk_create(rows, ignore_conflicts=True)
    logger.info(
        "notifications.recorded",
        extra={
            "eventId": str(event.id),
            "sessionId": str(session_id),
            "operation": operation,
            "status": payload.get("status"),
            "emails": len(emails),
            "calendars": len(participants) if touch_calendars else 0,
        },
    )
    return rows


@records(SESSION_STARTED)
@records(SESSION_COMPLETED)
def session_lived_deliveries_record(event: OutboxEvent) -> list[NotificationDelivery]:
    """Once a session has begun or is over, the reminders not yet sent have nothing left to remind of: one
    delivery of the session's reminder schedule (reminders_sync supersedes them), written with the event."""
    row = NotificationDelivery(
        channel=Channel.REMINDERS,
        recipient_id=None,
        event_id=event.id,
        session_id=UUID(event.payload["sessionId"]),
        event_at=event.created_at,
    )
    NotificationDelivery.objects.bulk_create([row], ignore_conflicts=True)
    return [row]


def meeting_result_deliveries(*, event_id: UUID) -> list[UUID]:
    """The unfinished deliveries of an event (a meeting result, a session started or completed), for its
    couriers. An event recorded before its deliveries were (an older release) gets them now. Empty for an
    event this database does not have."""
    event = outbox_event_get(event_id=event_id)
    if event is None:
        return []
    if not NotificationDelivery.objects.filter(event_id=event.id).exists():
        with transaction.atomic():
            for recorder in event_type_get(event.type).recorders:
                recorder(event)
    return list(
        NotificationDelivery.objects.filter(event_id=event.id, state__in=UNFINISHED_STATES)
        .order_by("channel", "created_at")
        .values_list("id", flat=True)
    )


# ---------------------------------------------------------------------------------------------------------
# One delivery: claim an attempt, call outside any transaction, record the answer


@dataclass(frozen=True)
class _Attempt:
    delivery_id: UUID
    attempt_id: UUID
    channel: str
    session_id: UUID
    recipient_id: UUID | None


class _Superseded(Exception):
    """Nothing to deliver any more: the reason is kept on the row."""


def notification_deliver(*, delivery_id: UUID) -> WorkStep:
    """Do the delivery if it is still to do: claim an attempt (a duplicate courier, or one arriving while
    another is on it, does nothing), call the calendar provider or the email backend outside any transaction
    and without any row lock, then record the answer compare-and-set. Returns when to look again (a retry)."""
    return work_run(NOTIFICATION_WORK, delivery_id, lambda: _deliver(delivery_id))


def _deliver(delivery_id: UUID) -> WorkStep:
    attempt = _claim(delivery_id)
    if isinstance(attempt, WorkStep):
        return attempt
    try:
        if attempt.channel == Channel.CALENDAR:
            row = participant_calendar_sync(session_id=attempt.session_id, user_id=attempt.recipient_id)
            if row is None:
                raise _Superseded("the calendar provider cannot invite the participant (no email, no Feishu open id)")
        elif attempt.channel == Channel.REMINDERS:
            reminders_sync(session_id=attempt.session_id)
        else:
            _email_deliver(attempt)
    except _Superseded as reason:
        return _record(attempt, DeliveryState.SUPERSEDED, error=str(reason))
    except (TransientProviderError, PermanentProviderError, smtplib.SMTPException, OSError) as error:
        return _attempt_failed(attempt, error)
    return _record(attempt, DeliveryState.DELIVERED)


def _claim(delivery_id: UUID) -> _Attempt | WorkStep:
    now = timezone.now()
    with transaction.atomic():
        delivery = NotificationDelivery.objects.select_for_update(of=("self",)).filter(id=delivery_id).first()
        if delivery is None or delivery.state in DELIVERY_FINAL_STATES:
            return DONE
        if delivery.state == DeliveryState.RUNNING and attempt_lease_held(delivery, now=now):
            return DONE  # another courier is on it right now
        if delivery.email_kind == EmailKind.CANCELLED and _invitation_in_flight(delivery, now=now):
            # Whether the recipient was invited is being decided right now: look again once it is.
            return WorkStep(retry_in=INVITATION_IN_FLIGHT_WAIT_SECONDS)
        if delivery.attempts >= settings.NOTIFICATION_MAX_ATTEMPTS:
            # Re-driven after the last attempt's courier died.
            _give_up(delivery, DELIVERY_TRANSITIONS, f"no attempt left ({delivery.last_error or 'none recorded'})")
            return DONE
        attempt_id = attempt_open(
            delivery, DeliveryState.RUNNING, transitions=DELIVERY_TRANSITIONS, now=now, not_before=None
        )
    return _Attempt(
        delivery_id=delivery.id,
        attempt_id=attempt_id,
        channel=delivery.channel,
        session_id=delivery.session_id,
        recipient_id=delivery.recipient_id,
    )


def _invitation_in_flight(delivery: NotificationDelivery, *, now: datetime) -> bool:
    invitations = NotificationDelivery.objects.filter(
        session_id=delivery.session_id,
        recipient_id=delivery.recipient_id,
        channel=Channel.EMAIL,
        email_kind=EmailKind.INVITATION,
        state=DeliveryState.RUNNING,
    )
    return any(attempt_lease_held(invitation, now=now) for invitation in invitations)


def _record(attempt: _Attempt, to: str, *, error: str = "") -> WorkStep:
    with transaction.atomic():
        delivery = _locked(attempt)
        if delivery is None:
            return DONE  # our lease ran out and another courier took over: its answer is the answer
        now = timezone.now()
        work_move(
            delivery,
            to,
            transitions=DELIVERY_TRANSITIONS,
            attempt_id=None,
            finished_at=now,
            delivered_at=now if to == DeliveryState.DELIVERED else None,
            last_error=error,
            outcome_unknown=False,
        )
    logger.info(f"notifications.{to}", extra={**_log(delivery), "reason": error or None})
    return DONE


def _attempt_failed(attempt: _Attempt, error: Exception) -> WorkStep:
    refused = isinstance(error, PermanentProviderError) or _smtp_refused(error)
    too_long = retry_after_too_long(error)
    message = str(error) or repr(error)
    with transaction.atomic():
        delivery = _locked(attempt)
        if delivery is None:
            return DONE
        log = {**_log(delivery), "attempts": delivery.attempts, "error": message[:300], "refused": refused}
        if refused or too_long or delivery.attempts >= settings.NOTIFICATION_MAX_ATTEMPTS:
            what = "refused" if refused else f"failed after {delivery.attempts} attempt(s)"
            _give_up(delivery, DELIVERY_TRANSITIONS, f"{what}: {message}", last_error=message[:2000])
            return DONE
        delay = notification_backoff(delivery.attempts, retry_after=getattr(error, "retry_after", None))
        work_move(
            delivery,
            DeliveryState.RETRY_WAIT,
            transitions=DELIVERY_TRANSITIONS,
            attempt_id=None,
            last_error=message[:2000],
            not_before=not_before_in(delay),
            outcome_unknown=isinstance(error, OutcomeUnknownError),
        )
    logger.info("notifications.retry", extra={**log, "retryIn": round(delay, 2)})
    return wait_step(delay)


def _locked(attempt: _Attempt) -> NotificationDelivery | None:
    """The delivery locked, if the attempt is still ours (compare-and-set on the attempt id)."""
    return _attempt_row_locked(NotificationDelivery, attempt.delivery_id, attempt.attempt_id)


def _attempt_row_locked(model: type[NotificationWorkRow], row_id: UUID, attempt_id: UUID) -> Any:
    """The delivery or reminder locked, if its running attempt is still `attempt_id` (compare-and-set)."""
    return (
        model.objects.select_for_update(of=("self",))
        .filter(id=row_id, attempt_id=attempt_id, state=DeliveryState.RUNNING)
        .first()
    )


def _smtp_refused(error: Exception) -> bool:
    """The mail server refused this message for good (a 5xx answer, a recipient it will not take)."""
    if isinstance(error, smtplib.SMTPRecipientsRefused | smtplib.SMTPSenderRefused):
        return True
    return isinstance(error, smtplib.SMTPResponseException) and 500 <= error.smtp_code < 600


def _give_up(row: NotificationWorkRow, transitions: dict, reason: str, **fields: Any) -> None:
    """Under the caller's lock: the work ends, and a person is asked to look (the admin's queue, the metric)."""
    needs_person_flag(
        row,
        transitions=transitions,
        reason=reason[:4000],
        to=DeliveryState.GIVEN_UP,
        **fields,
        attempt_id=None,
        finished_at=timezone.now(),
    )
    logger.warning("notifications.given_up", extra={**_log(row), "attempts": row.attempts, "reason": reason[:300]})


def notification_backoff(attempts: int, *, retry_after: float | None = None) -> float:
    """Seconds before attempt `attempts + 1`: the provider layer's one backoff (exponential, jittered, at least
    what the provider asked for) on the notification clocks NOTIFICATION_RETRY_BACKOFF_*."""
    return backoff_seconds(
        attempts,
        base=settings.NOTIFICATION_RETRY_BACKOFF_SECONDS,
        ceiling=settings.NOTIFICATION_RETRY_BACKOFF_MAX_SECONDS,
        retry_after=retry_after,
    )


def _log(row: NotificationWorkRow) -> dict[str, Any]:
    extra = {"sessionId": str(row.session_id), "recipientId": str(row.recipient_id) if row.recipient_id else None}
    if isinstance(row, NotificationDelivery):
        return {**extra, "deliveryId": str(row.id), "channel": row.channel, "kind": row.email_kind or None}
    return {**extra, "reminderId": str(row.id), "offsetMinutes": row.offset_minutes}


# ---------------------------------------------------------------------------------------------------------
# Calendar events


def participant_calendar_sync(*, session_id: UUID, user_id: UUID) -> CalendarEvent | None:
    """Bring the participant's calendar event in line with the session now: made with the meeting link while
    the session is live, moved when its time changed, deleted once it is cancelled (or was never scheduled).
    None for a participant the provider cannot invite (no email, no Feishu open id). Raises the calendar
    provider's errors (transient: worth a retry; permanent: not)."""
    user = User.objects.select_related("profile").get(id=user_id)
    profile = _profile(user)

    def target() -> CalendarEventTarget:
        session = session_get_current(session_id=session_id)
        present = session is not None and session.status in LIVE_STATUSES and session.meeting is not None
        return CalendarEventTarget(
            provider=profile.calendar_provider,
            request=_calendar_request(session, user, profile) if session is not None else None,
            present=present,
        )

    if not (user.email or (profile.calendar_provider == "feishu" and profile.feishu_open_id)):
        logger.info("notifications.calendar_no_identity", extra={"sessionId": str(session_id), "userId": str(user_id)})
        return None
    row = calendar_event_sync(session_id=session_id, user_id=user_id, target=target)
    logger.info(
        "notifications.calendar_synced",
        extra={"sessionId": str(session_id), "userId": str(user_id), "provider": row.provider, "status": row.status},
    )
    return row


def _calendar_request(session: Session, user: User, profile: Profile) -> CalendarEventRequest:
    meeting_url = session.meeting.join_url if session.meeting is not None else ""
    return CalendarEventRequest(
        summary=session.topic,
        description=f"Join: {meeting_url}\nSession {session.id}" if meeting_url else f"Session {session.id}",
        start_time=session.scheduled_at,
        end_time=ends_at(session.scheduled_at, session.duration_minutes),
        meeting_url=meeting_url,
        time_zone=profile.time_zone,
        attendee_open_id=profile.feishu_open_id,
        attendee_email=user.email,
    )


def _profile(user: User) -> Profile:
    try:
        return user.profile
    except Profile.DoesNotExist:
        return Profile(user=user)  # defaults: UTC, Feishu, no open id (invited by email)


# ---------------------------------------------------------------------------------------------------------
# Emails


def _email_deliver(attempt: _Attempt) -> None:
    """Send the delivery's email (outside any transaction), or raise _Superseded when it is not worth sending:
    an invitation or reschedule notice for a session that is no longer live, a cancellation to someone who
    was never invited. Raises the backend's error."""
    delivery = NotificationDelivery.objects.select_related("recipient__profile").get(id=attempt.delivery_id)
    session = session_get_current(session_id=delivery.session_id)
    skip_reason = _email_skip_reason(delivery, session)
    if skip_reason:
        raise _Superseded(skip_reason)
    _email_render_and_send(delivery, session)
    logger.info(
        "notifications.email_sent",
        extra={"sessionId": str(delivery.session_id), "deliveryId": str(delivery.id), "kind": delivery.email_kind},
    )


def _email_skip_reason(delivery: NotificationDelivery, session: Session | None) -> str:
    if session is None:
        return "the session no longer exists"
    if not delivery.recipient.email:
        return "the recipient has no email address"
    if delivery.email_kind in EMAILS_FOR_LIVE_SESSIONS and session.status not in LIVE_STATUSES:
        return f"the session is {session.status} now"
    if delivery.email_kind == EmailKind.CANCELLED and not _invitation_sent(delivery):
        return "the recipient was never invited (the session was cancelled before its meeting existed)"
    return ""


def _invitation_sent(delivery: NotificationDelivery) -> bool:
    """Whether the recipient was invited to the session. Read after the cancellation was recorded: an
    invitation not sent by now is never sent (its courier reads the session cancelled), and one being sent
    right now was waited for before this attempt was claimed."""
    return NotificationDelivery.objects.filter(
        session_id=delivery.session_id,
        recipient_id=delivery.recipient_id,
        channel=Channel.EMAIL,
        email_kind=EmailKind.INVITATION,
        state=DeliveryState.DELIVERED,
    ).exists()


def _email_render_and_send(delivery: NotificationDelivery, session: Session) -> None:
    recipient = delivery.recipient
    profile = _profile(recipient)
    meeting_url = session.meeting.join_url if session.meeting is not None else ""
    context = {
        "recipient_name": recipient.get_full_name() or recipient.username,
        "topic": session.topic,
        "when": local_time(session.scheduled_at, profile.time_zone),
        "duration": session.duration_minutes,
        "meeting_url": meeting_url,
        "session_id": str(session.id),
        "failure_reason": delivery.payload.get("failureReason") or "not given",
        "retry_url": f"{settings.SITE_URL}/app/sessions/{session.id}/",
    }
    invite = None
    if delivery.email_kind in (EmailKind.INVITATION, EmailKind.RESCHEDULED, EmailKind.CANCELLED):
        invite = SessionInvite(
            session_id=str(session.id),
            topic=session.topic,
            start=session.scheduled_at,
            end=ends_at(session.scheduled_at, session.duration_minutes),
            meeting_url=meeting_url,
            sequence=ics_sequence(session_created_at=session.created_at, event_at=delivery.event_at),
            cancelled=delivery.email_kind == EmailKind.CANCELLED,
        )
    email_send(
        kind=delivery.email_kind,
        to=recipient.email,
        context=context,
        invite=invite,
        attendee_name=context["recipient_name"],
    )


def ics_sequence(*, session_created_at: datetime, event_at: datetime) -> int:
    """The .ics SEQUENCE of an email about an event: tenths of seconds from the booking to the event. It grows
    with each later event of the session (a reschedule, then a cancel), is the same when one event is handled
    twice, so calendars apply changes in order and ignore a stale one, and stays within 32 bits for years."""
    return max(0, int((event_at - session_created_at).total_seconds() * 10))


# ---------------------------------------------------------------------------------------------------------
# Reminders


def reminders_sync(*, session_id: UUID) -> int:
    """Make the session's reminder rows match it now: one per participant and offset of
    REMINDER_OFFSETS_MINUTES while it is live, due `offset` before its start (offsets already past are
    skipped); re-timed (and re-armed) when the start moved; every unsent one superseded once the session is
    not live. Only rows are written (no email is sent here). Returns how many rows wait to be sent."""
    now = timezone.now()
    with transaction.atomic():
        session = session_get_current(session_id=session_id)
        rows = {
            (row.recipient_id, row.channel, row.offset_minutes): row
            for row in Reminder.objects.select_for_update().filter(session_id=session_id)
        }
        if session is None or session.status not in LIVE_STATUSES:
            _reminders_supersede(rows.values(), reason="the session is not scheduled any more")
            return 0
        participants = [session.mentor_id, *session.student_ids]
        wanted = {}
        for offset in sorted(set(settings.REMINDER_OFFSETS_MINUTES)):
            due = session.scheduled_at - timedelta(minutes=offset)
            if due > now:
                for user_id in participants:
                    wanted[(user_id, Channel.EMAIL, offset)] = due
        _reminders_supersede(
            [row for key, row in rows.items() if key not in wanted],
            reason="its time has passed or its offset is no longer used",
        )
        for (user_id, channel, offset), due in wanted.items():
            row = rows.get((user_id, channel, offset))
            if row is None:
                Reminder.objects.create(
                    session_id=session_id,
                    recipient_id=user_id,
                    channel=channel,
                    offset_minutes=offset,
                    due_at=due,
                    not_before=due,
                    session_starts_at=session.scheduled_at,
                )
            elif row.session_starts_at != session.scheduled_at or row.state == DeliveryState.SUPERSEDED:
                _reminder_rearm(row, due=due, starts_at=session.scheduled_at)
        return Reminder.objects.filter(session_id=session_id, state__in=UNFINISHED_STATES).count()


def _reminder_rearm(row: Reminder, *, due: datetime, starts_at: datetime) -> None:
    """Re-time the reminder for the session's new start (or its return to life). One being sent right now keeps
    its attempt: its answer re-arms it (`_reminder_record`)."""
    fields: dict[str, Any] = {"due_at": due, "session_starts_at": starts_at, "not_before": due}
    if row.state == DeliveryState.RUNNING:
        work_move(row, row.state, transitions=REMINDER_TRANSITIONS, **fields)
        return
    if row.requires_manual_intervention:
        fields |= {"requires_manual_intervention": False, "resolved_at": timezone.now(),
                   "resolution_note": "re-armed for the session's new time"}  # fmt: skip
    work_move(
        row,
        DeliveryState.PENDING,
        transitions=REMINDER_TRANSITIONS,
        attempts=0,
        unexpected_errors=0,
        last_error="",
        delivered_at=None,
        finished_at=None,
        **fields,
    )


def _reminders_supersede(rows, *, reason: str) -> None:
    for row in rows:
        # One being sent right now finishes: it reads the session again before sending.
        if row.state in (DeliveryState.PENDING, DeliveryState.RETRY_WAIT):
            work_move(
                row,
                DeliveryState.SUPERSEDED,
                transitions=REMINDER_TRANSITIONS,
                last_error=reason,
                finished_at=timezone.now(),
            )


@dataclass(frozen=True)
class _ReminderAttempt:
    reminder_id: UUID
    attempt_id: UUID
    session_id: UUID
    recipient_id: UUID
    session_starts_at: datetime


def reminders_send_due(*, limit: int = 500) -> int:
    """Send every due reminder once. Each is claimed in a short transaction of its own (SELECT ... FOR UPDATE
    SKIP LOCKED, then an attempt with a lease, committed), sent outside any transaction, and its answer recorded
    compare-and-set: senders running at once (two beats, the sweep's couriers) never send one twice. A failed
    send waits for its backoff (`not_before`) and is picked up by a later run; out of attempts it asks a person.
    Returns how many were sent."""
    sent = 0
    for _ in range(limit):
        attempt = _reminder_claim()
        if attempt is None:
            break
        if isinstance(attempt, _ReminderAttempt):
            sent += _reminder_send(attempt)
    if sent:
        logger.info("notifications.reminders_sent", extra={"sent": sent})
    return sent


def reminder_send(*, reminder_id: UUID) -> bool:
    """Send one due reminder now, if nobody else is (the sweep's re-drive, an operator's retry). False when it
    is not due, finished, being sent elsewhere, or not sent."""
    attempt = _reminder_claim(reminder_id=reminder_id)
    return isinstance(attempt, _ReminderAttempt) and bool(_reminder_send(attempt))


def _reminder_claim(*, reminder_id: UUID | None = None) -> _ReminderAttempt | WorkStep | None:
    """The oldest due reminder (or this one, if due), claimed: None when there is none."""
    now = timezone.now()
    lease_ended = now - timedelta(seconds=settings.SAGA_ATTEMPT_LEASE_SECONDS)
    with transaction.atomic():
        due = Reminder.objects.select_for_update(skip_locked=True, of=("self",)).filter(not_before__lte=now)
        due = due.filter(
            Q(state__in=[DeliveryState.PENDING, DeliveryState.RETRY_WAIT])
            # Claimed by a sender that died mid-send.
            | Q(state=DeliveryState.RUNNING, attempt_started_at__lt=lease_ended)
        )
        if reminder_id is not None:
            due = due.filter(id=reminder_id)
        reminder = due.order_by("not_before").first()
        if reminder is None:
            return None
        if reminder.attempts >= settings.NOTIFICATION_MAX_ATTEMPTS:
            _give_up(reminder, REMINDER_TRANSITIONS, f"no attempt left ({reminder.last_error or 'none recorded'})")
            return DONE
        # Its not_before stays: it is the reminder's due time.
        attempt_id = attempt_open(reminder, DeliveryState.RUNNING, transitions=REMINDER_TRANSITIONS, now=now)
    return _ReminderAttempt(
        reminder_id=reminder.id,
        attempt_id=attempt_id,
        session_id=reminder.session_id,
        recipient_id=reminder.recipient_id,
        session_starts_at=reminder.session_starts_at,
    )


def _reminder_send(attempt: _ReminderAttempt) -> int:
    """Outside any transaction: send, then record. 1 when sent."""
    session = session_get_current(session_id=attempt.session_id)
    now = timezone.now()
    if session is None or session.status not in LIVE_STATUSES or session.scheduled_at <= now:
        _reminder_record(attempt, DeliveryState.SUPERSEDED, error="the session is not upcoming any more")
        return 0
    recipient = User.objects.select_related("profile").get(id=attempt.recipient_id)
    if not recipient.email:
        _reminder_record(attempt, DeliveryState.SUPERSEDED, error="the recipient has no email address")
        return 0
    profile = _profile(recipient)
    context = {
        "recipient_name": recipient.get_full_name() or recipient.username,
        "topic": session.topic,
        "when": local_time(session.scheduled_at, profile.time_zone),
        "duration": session.duration_minutes,
        "meeting_url": session.meeting.join_url if session.meeting is not None else "",
        "session_id": str(session.id),
    }
    try:
        email_send(kind="reminder", to=recipient.email, context=context)
    except (smtplib.SMTPException, OSError) as error:
        _reminder_failed(attempt, error)
        return 0
    return int(_reminder_record(attempt, DeliveryState.DELIVERED))


def _reminder_locked(attempt: _ReminderAttempt) -> Reminder | None:
    return _attempt_row_locked(Reminder, attempt.reminder_id, attempt.attempt_id)


def _reminder_record(attempt: _ReminderAttempt, to: str, *, error: str = "") -> bool:
    with transaction.atomic():
        reminder = _reminder_locked(attempt)
        if reminder is None:
            return False  # taken over after our lease ran out
        now = timezone.now()
        if reminder.session_starts_at != attempt.session_starts_at:
            # The session moved while this one was being sent: it is due again before the new start.
            work_move(reminder, DeliveryState.PENDING, transitions=REMINDER_TRANSITIONS, attempt_id=None, attempts=0)
            return to == DeliveryState.DELIVERED
        work_move(
            reminder,
            to,
            transitions=REMINDER_TRANSITIONS,
            attempt_id=None,
            finished_at=now,
            delivered_at=now if to == DeliveryState.DELIVERED else None,
            last_error=error,
        )
    return True


def _reminder_failed(attempt: _ReminderAttempt, error: Exception) -> None:
    message = str(error) or repr(error)
    with transaction.atomic():
        reminder = _reminder_locked(attempt)
        if reminder is None:
            return
        refused = _smtp_refused(error)
        if refused or reminder.attempts >= settings.NOTIFICATION_MAX_ATTEMPTS:
            what = "refused" if refused else f"failed after {reminder.attempts} attempt(s)"
            _give_up(reminder, REMINDER_TRANSITIONS, f"{what}: {message}", last_error=message[:2000])
            return
        # No countdown: the row waits for its not_before, and the next run of the sender takes it.
        work_move(
            reminder,
            DeliveryState.RETRY_WAIT,
            transitions=REMINDER_TRANSITIONS,
            attempt_id=None,
            last_error=message[:2000],
            not_before=not_before_in(notification_backoff(reminder.attempts)),
        )
    logger.warning("notifications.reminder_failed", extra={"reminderId": str(attempt.reminder_id), "error": message})


# ---------------------------------------------------------------------------------------------------------
# A person's part: what gave up, sent again or resolved


def delivery_retry(*, delivery_id: UUID, actor: User | None) -> bool:
    """An operator sends a delivery that gave up again: a fresh set of attempts, its courier enqueued after
    commit; the flag is resolved with who and when. False when it had not given up."""
    return _retry(NotificationDelivery, DELIVERY_TRANSITIONS, delivery_id, actor, not_before=None)


def reminder_retry(*, reminder_id: UUID, actor: User | None) -> bool:
    """An operator sends a reminder that gave up again, now (the sweep's courier or the beat sender takes it)."""
    return _retry(Reminder, REMINDER_TRANSITIONS, reminder_id, actor, not_before=timezone.now())


def _retry(model, transitions, row_id: UUID, actor: User | None, *, not_before: datetime | None) -> bool:
    with transaction.atomic():
        row = model.objects.select_for_update(of=("self",)).filter(id=row_id).first()
        if row is None or row.state != DeliveryState.GIVEN_UP:
            return False
        work_move(
            row,
            DeliveryState.PENDING,
            transitions=transitions,
            attempts=0,
            unexpected_errors=0,
            attempt_id=None,
            not_before=not_before,
            finished_at=None,
            requires_manual_intervention=False,
            resolved_by=actor,
            resolved_at=timezone.now(),
            resolution_note="sent again",
        )
        redrive = _deliveries_redrive if model is NotificationDelivery else _reminders_redrive
        # Robust: with the broker down the row waits, PENDING, for the sweep; the operator's page still answers.
        transaction.on_commit(lambda: redrive([row_id]), robust=True)
    logger.info("notifications.retried", extra={**_log(row), "actorId": str(actor.id) if actor else None})
    return True


def notification_resolve(*, row: NotificationWorkRow, actor: User | None, note: str) -> bool:
    """A person dealt with it another way: it leaves the queue with who, when and the note."""
    with transaction.atomic():
        locked = type(row).objects.select_for_update(of=("self",)).filter(id=row.id).first()
        if locked is None or not locked.requires_manual_intervention:
            return False
        transitions = REMINDER_TRANSITIONS if isinstance(locked, Reminder) else DELIVERY_TRANSITIONS
        return needs_person_resolve(locked, transitions=transitions, actor=actor, note=note)


# ---------------------------------------------------------------------------------------------------------
# The two kinds of provider work


def _deliveries_redrive(delivery_ids: list[UUID]) -> None:
    from notifications_app.tasks import deliver_notification

    for delivery_id in delivery_ids:
        deliver_notification.apply_async(kwargs={"delivery_id": str(delivery_id)})


def _reminders_redrive(reminder_ids: list[UUID]) -> None:
    from notifications_app.tasks import send_reminder

    for reminder_id in reminder_ids:
        send_reminder.apply_async(kwargs={"reminder_id": str(reminder_id)})


def _work_give_up(model: type[NotificationWorkRow], transitions: dict, row_id: UUID, reason: str) -> None:
    """The engine's end for a delivery or a reminder that kept failing on something other than an answer."""
    with transaction.atomic():
        row = model.objects.select_for_update(of=("self",)).filter(id=row_id).first()
        if row is not None and row.state not in DELIVERY_FINAL_STATES:
            _give_up(row, transitions, reason)


NOTIFICATION_WORK = work_kind_register(
    WorkKind(
        name="notification_delivery",
        label="calendar event, reminder schedule or email",
        model=NotificationDelivery,
        key="id",
        final_states=DELIVERY_FINAL_STATES,
        redrive=_deliveries_redrive,
        give_up=partial(_work_give_up, NotificationDelivery, DELIVERY_TRANSITIONS),
        stuck_after=lambda: settings.NOTIFICATION_STUCK_AFTER_SECONDS,
        needs_person={"requires_manual_intervention": True},
    )
)

REMINDER_WORK = work_kind_register(
    WorkKind(
        name="reminder",
        label="reminder email",
        model=Reminder,
        key="id",
        final_states=DELIVERY_FINAL_STATES,
        redrive=_reminders_redrive,
        give_up=partial(_work_give_up, Reminder, REMINDER_TRANSITIONS),
        stuck_after=lambda: settings.NOTIFICATION_STUCK_AFTER_SECONDS,
        needs_person={"requires_manual_intervention": True},
    )
)
