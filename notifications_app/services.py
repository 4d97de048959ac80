"""Every write of notifications: what a meeting result event asks for, each participant's calendar event,
emails, reminders, and parking what gave up. Every function converges to the session's CURRENT state (read
through `sessions_app.selectors`), so an event handled twice or out of order sends nothing twice and leaves
nothing behind. Nothing here ever writes a session, hold, slot or meeting."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any
from uuid import UUID

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from accounts_app.models import Profile, User
from calendar_app.models import CalendarEvent
from calendar_app.providers.base import CalendarEventRequest
from calendar_app.services import CalendarEventTarget, calendar_event_sync
from notifications_app.emails import SessionInvite, email_send, ends_at, local_time
from notifications_app.models import (
    DeliveryStatus,
    EmailDelivery,
    EmailKind,
    FailedNotification,
    FailedNotificationStatus,
    Reminder,
    ReminderStatus,
)
from sessions_app.models import Session, SessionStatus
from sessions_app.selectors import outbox_event_get, session_get_current

logger = logging.getLogger(__name__)

# A session in these states has its meeting: calendars show it, reminders are due, invitations make sense.
LIVE_STATUSES = frozenset({SessionStatus.SCHEDULED, SessionStatus.IN_PROGRESS})
# Emails about the session as it is (not worth sending once it is cancelled or over).
EMAILS_FOR_LIVE_SESSIONS = frozenset({EmailKind.INVITATION, EmailKind.RESCHEDULED})


@dataclass(frozen=True)
class NotificationPlan:
    """What one meeting result event asks for: each a separate delivery, so one failing blocks no other."""

    session_id: UUID
    calendar_user_ids: list[UUID] = field(default_factory=list)
    reminders: bool = False
    email_delivery_ids: list[UUID] = field(default_factory=list)


def meeting_result_plan(*, event_id: UUID) -> NotificationPlan | None:
    """Record the emails a `{type}.session.meeting.operation.result` event asks for (one row per recipient and
    kind; the event seen again adds none) and say which calendars and reminders to bring up to date.
    None for an event this database does not have or an operation we do not know."""
    event = outbox_event_get(event_id=event_id)
    if event is None:
        return None
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
        logger.warning("notifications.unknown_operation", extra={"eventId": str(event_id), "operation": operation})
        return None
    deliveries = [
        EmailDelivery.objects.get_or_create(
            event_id=event.id,
            recipient_id=recipient,
            kind=kind,
            defaults={"session_id": session_id, "payload": payload, "event_at": event.created_at},
        )[0]
        for recipient, kind in emails
    ]
    logger.info(
        "notifications.planned",
        extra={
            "eventId": str(event_id),
            "sessionId": str(session_id),
            "operation": operation,
            "status": payload.get("status"),
            "emails": len(deliveries),
            "calendars": len(participants) if touch_calendars else 0,
        },
    )
    return NotificationPlan(
        session_id=session_id,
        calendar_user_ids=participants if touch_calendars else [],
        reminders=touch_calendars,
        email_delivery_ids=[d.id for d in deliveries if d.status != DeliveryStatus.SENT],
    )


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


def email_delivery_send(*, delivery_id: UUID) -> str:
    """Send the email once: the row is locked while sending, a duplicate task finds it locked (or sent) and does
    nothing. An invitation or reschedule notice for a session that is no longer live is skipped. Returns the
    row's status; raises the backend's error (the caller counts the attempt: `email_delivery_failed`)."""
    with transaction.atomic():
        delivery = (
            EmailDelivery.objects.select_for_update(skip_locked=True, of=("self",))
            .select_related("recipient__profile")
            .filter(id=delivery_id)
            .first()
        )
        if delivery is None or delivery.status in (DeliveryStatus.SENT, DeliveryStatus.SKIPPED):
            return delivery.status if delivery else "locked"
        session = session_get_current(session_id=delivery.session_id)
        skip_reason = _email_skip_reason(delivery, session)
        if skip_reason:
            delivery.status, delivery.last_error = DeliveryStatus.SKIPPED, skip_reason
            delivery.save(update_fields=["status", "last_error", "updated_at"])
            return delivery.status
        # Sent while the row is locked: a duplicate task skips it. An error rolls this back; the task counts
        # the attempt (email_delivery_failed) and retries.
        _email_render_and_send(delivery, session)
        delivery.status, delivery.sent_at, delivery.last_error = DeliveryStatus.SENT, timezone.now(), ""
        delivery.attempts += 1
        delivery.save(update_fields=["status", "sent_at", "last_error", "attempts", "updated_at"])
    logger.info(
        "notifications.email_sent",
        extra={"sessionId": str(delivery.session_id), "deliveryId": str(delivery.id), "kind": delivery.kind},
    )
    return delivery.status


def _email_skip_reason(delivery: EmailDelivery, session: Session | None) -> str:
    if session is None:
        return "the session no longer exists"
    if not delivery.recipient.email:
        return "the recipient has no email address"
    if delivery.kind in EMAILS_FOR_LIVE_SESSIONS and session.status not in LIVE_STATUSES:
        return f"the session is {session.status} now"
    if delivery.kind == EmailKind.CANCELLED and not _invitation_sent(delivery):
        return "the recipient was never invited (the session was cancelled before its meeting existed)"
    return ""


def _invitation_sent(delivery: EmailDelivery) -> bool:
    """Whether the recipient was invited to the session. The invitation's row is locked first: one being sent
    right now is waited for, and one not sent yet is skipped by its sender, which sees the session cancelled."""
    invitations = EmailDelivery.objects.select_for_update().filter(
        session_id=delivery.session_id, recipient_id=delivery.recipient_id, kind=EmailKind.INVITATION
    )
    return any(status == DeliveryStatus.SENT for status in invitations.values_list("status", flat=True))


def email_delivery_failed(*, delivery_id: UUID, error: str, given_up: bool) -> None:
    """Count a failed attempt; once given up the row is FAILED (a retry from the admin may still send it)."""
    with transaction.atomic():
        delivery = EmailDelivery.objects.select_for_update().filter(id=delivery_id).first()
        if delivery is None or delivery.status == DeliveryStatus.SENT:
            return
        delivery.attempts += 1
        delivery.last_error = error[:2000]
        if given_up:
            delivery.status = DeliveryStatus.FAILED
        delivery.save(update_fields=["attempts", "last_error", "status", "updated_at"])


def _email_render_and_send(delivery: EmailDelivery, session: Session) -> None:
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
    if delivery.kind in (EmailKind.INVITATION, EmailKind.RESCHEDULED, EmailKind.CANCELLED):
        invite = SessionInvite(
            session_id=str(session.id),
            topic=session.topic,
            start=session.scheduled_at,
            end=ends_at(session.scheduled_at, session.duration_minutes),
            meeting_url=meeting_url,
            sequence=ics_sequence(session_created_at=session.created_at, event_at=delivery.event_at),
            cancelled=delivery.kind == EmailKind.CANCELLED,
        )
    email_send(
        kind=delivery.kind,
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
    skipped); re-timed when the start moved; every pending one cancelled once the session is not live.
    Returns how many rows are pending afterwards."""
    now = timezone.now()
    with transaction.atomic():
        session = session_get_current(session_id=session_id)
        rows = {
            (row.recipient_id, row.channel, row.offset_minutes): row
            for row in Reminder.objects.select_for_update().filter(session_id=session_id)
        }
        if session is None or session.status not in LIVE_STATUSES:
            return _reminders_cancel(rows.values(), reason="the session is not scheduled any more")
        participants = [session.mentor_id, *session.student_ids]
        wanted = {}
        for offset in sorted(set(settings.REMINDER_OFFSETS_MINUTES)):
            due = session.scheduled_at - timedelta(minutes=offset)
            if due > now:
                for user_id in participants:
                    wanted[(user_id, "email", offset)] = due
        for key, row in rows.items():
            if key not in wanted:
                _reminders_cancel([row], reason="its time has passed or its offset is no longer used")
        for (user_id, channel, offset), due in wanted.items():
            row = rows.get((user_id, channel, offset))
            if row is None:
                Reminder.objects.create(
                    session_id=session_id,
                    recipient_id=user_id,
                    channel=channel,
                    offset_minutes=offset,
                    due_at=due,
                    session_starts_at=session.scheduled_at,
                )
            elif row.session_starts_at != session.scheduled_at or row.status == ReminderStatus.CANCELLED:
                # Re-timed (or re-armed after the session came back to life, e.g. a reschedule).
                row.due_at, row.session_starts_at = due, session.scheduled_at
                row.status, row.attempts, row.last_error, row.sent_at = ReminderStatus.PENDING, 0, "", None
                row.save()
        return Reminder.objects.filter(session_id=session_id, status=ReminderStatus.PENDING).count()


def _reminders_cancel(rows, *, reason: str) -> int:
    for row in rows:
        if row.status == ReminderStatus.PENDING:
            row.status, row.last_error = ReminderStatus.CANCELLED, reason
            row.save(update_fields=["status", "last_error", "updated_at"])
    return 0


def reminders_send_due(*, limit: int = 500) -> int:
    """Send every due reminder once. Each is claimed with SELECT ... FOR UPDATE SKIP LOCKED in a transaction of
    its own and marked sent in it, so senders running at once never send one twice. Returns how many were sent.
    A failed send is retried at the next run after a backoff, then parked."""
    sent = 0
    for _ in range(limit):
        with transaction.atomic():
            reminder = (
                Reminder.objects.select_for_update(skip_locked=True)
                .filter(status=ReminderStatus.PENDING, due_at__lte=timezone.now())
                .order_by("due_at")
                .first()
            )
            if reminder is None:
                break
            sent += _reminder_deliver(reminder)
    if sent:
        logger.info("notifications.reminders_sent", extra={"sent": sent})
    return sent


def reminder_send(*, reminder_id: UUID) -> bool:
    """Send one pending or failed reminder now (an operator's retry). False when it is locked, sent or moot."""
    with transaction.atomic():
        reminder = (
            Reminder.objects.select_for_update(skip_locked=True)
            .filter(id=reminder_id, status__in=[ReminderStatus.PENDING, ReminderStatus.FAILED])
            .first()
        )
        return bool(reminder and _reminder_deliver(reminder, retry=False))


def _reminder_deliver(reminder: Reminder, *, retry: bool = True) -> int:
    """Inside the claiming transaction: send, then mark. 1 when sent."""
    session = session_get_current(session_id=reminder.session_id)
    now = timezone.now()
    if session is None or session.status not in LIVE_STATUSES or session.scheduled_at <= now:
        reminder.status, reminder.last_error = ReminderStatus.CANCELLED, "the session is not upcoming any more"
        reminder.save(update_fields=["status", "last_error", "updated_at"])
        return 0
    recipient = User.objects.select_related("profile").get(id=reminder.recipient_id)
    if not recipient.email:
        reminder.status, reminder.last_error = ReminderStatus.CANCELLED, "the recipient has no email address"
        reminder.save(update_fields=["status", "last_error", "updated_at"])
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
    reminder.attempts += 1
    try:
        email_send(kind="reminder", to=recipient.email, context=context)
    except Exception as error:  # noqa: BLE001 - any backend failure is counted, retried, then parked
        reminder.last_error = repr(error)[:2000]
        if retry and reminder.attempts < settings.NOTIFICATION_MAX_ATTEMPTS:
            reminder.due_at = now + timedelta(seconds=notification_backoff(reminder.attempts))
        else:
            reminder.status = ReminderStatus.FAILED
            failed_notification_park(
                channel="email",
                session_id=reminder.session_id,
                recipient_id=reminder.recipient_id,
                task="notifications.send_reminder",
                payload={"reminder_id": str(reminder.id)},
                error=reminder.last_error,
                attempts=reminder.attempts,
            )
        reminder.save()
        logger.warning("notifications.reminder_failed", extra={"reminderId": str(reminder.id), "error": repr(error)})
        return 0
    reminder.status, reminder.sent_at, reminder.last_error = ReminderStatus.SENT, now, ""
    reminder.save()
    return 1


# ---------------------------------------------------------------------------------------------------------
# Failures


def notification_backoff(attempts: int, *, retry_after: float | None = None) -> float:
    """Seconds before attempt `attempts + 1`: exponential from NOTIFICATION_RETRY_BACKOFF_SECONDS, capped, with
    up to 25 % jitter; at least what the provider asked for."""
    import random

    base = settings.NOTIFICATION_RETRY_BACKOFF_SECONDS * (2 ** max(0, attempts - 1))
    delay = min(base, settings.NOTIFICATION_RETRY_BACKOFF_MAX_SECONDS)
    delay *= 1 + random.random() / 4  # noqa: S311 - jitter, not a secret
    return max(delay, retry_after or 0.0)


def failed_notification_park(
    *,
    channel: str,
    session_id: UUID | str | None,
    recipient_id: UUID | str | None,
    task: str,
    payload: dict[str, Any],
    error: str,
    attempts: int,
) -> FailedNotification:
    """Park a notification that gave up, for an operator (admin: Failed notifications)."""
    parked = FailedNotification.objects.create(
        channel=channel,
        session_id=session_id,
        recipient_id=recipient_id,
        task=task,
        payload=payload,
        error=error[:4000],
        attempts=attempts,
    )
    logger.warning(
        "notifications.parked",
        extra={"sessionId": str(session_id), "channel": channel, "task": task, "attempts": attempts},
    )
    return parked


def failed_notification_retry(*, failed: FailedNotification, actor: User | None) -> bool:
    """Send a parked notification again: its task is enqueued after commit with the same arguments, and the
    row records who asked and when. False when it was already retried."""
    from celery import current_app

    with transaction.atomic():
        row = FailedNotification.objects.select_for_update().get(id=failed.id)
        if row.status != FailedNotificationStatus.PARKED:
            return False
        row.status, row.retried_at, row.retried_by = FailedNotificationStatus.RETRIED, timezone.now(), actor
        row.save(update_fields=["status", "retried_at", "retried_by"])
        task, payload = row.task, dict(row.payload)
        transaction.on_commit(lambda: current_app.send_task(task, kwargs=payload))
    return True
