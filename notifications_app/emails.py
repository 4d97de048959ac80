"""Emails rendered from templates (text and HTML, `templates/notifications/email/`), with the session as an
iCalendar invitation (`.ics`) attached, sent through Django's configured email backend."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from email.mime.text import MIMEText
from typing import Any
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo

import icalendar
from django.conf import settings
from django.core.mail import EmailMultiAlternatives
from django.template.loader import render_to_string
from django.utils import timezone

SUBJECTS = {
    "invitation": "Session booked: {topic}",
    "rescheduled": "Session rescheduled: {topic}",
    "cancelled": "Session cancelled: {topic}",
    "meeting_failed": "Meeting link could not be created: {topic}",
    "update_failed": "Meeting could not be moved: {topic}",
    "reminder": "Reminder: {topic} starts {when}",
}


@dataclass(frozen=True)
class SessionInvite:
    """What an .ics says about a session. `sequence` grows with every change, so calendars keep the newest."""

    session_id: str
    topic: str
    start: datetime
    end: datetime
    meeting_url: str
    sequence: int
    cancelled: bool = False


def session_uid(session_id: str) -> str:
    """The iCalendar UID of a session: the same in every invitation, update and cancellation of it."""
    host = urlsplit(settings.SITE_URL).hostname or "localhost"
    return f"session-{session_id}@{host}"


def ics_for(invite: SessionInvite, *, attendee_email: str, attendee_name: str) -> bytes:
    calendar = icalendar.Calendar()
    calendar.add("prodid", "-//Session booking//notifications//EN")
    calendar.add("version", "2.0")
    calendar.add("method", "CANCEL" if invite.cancelled else "REQUEST")
    event = icalendar.Event()
    event.add("uid", session_uid(invite.session_id))
    event.add("dtstamp", timezone.now())
    event.add("sequence", invite.sequence)
    event.add("dtstart", invite.start.astimezone(ZoneInfo("UTC")))
    event.add("dtend", invite.end.astimezone(ZoneInfo("UTC")))
    event.add("summary", invite.topic)
    event.add("status", "CANCELLED" if invite.cancelled else "CONFIRMED")
    if invite.meeting_url:
        event.add("url", invite.meeting_url)
        event.add("location", invite.meeting_url)
        event.add("description", f"Join: {invite.meeting_url}")
    event.add("organizer", f"mailto:{settings.DEFAULT_FROM_EMAIL}")
    attendee = icalendar.vCalAddress(f"mailto:{attendee_email}")
    attendee.params["cn"] = icalendar.vText(attendee_name or attendee_email)
    attendee.params["role"] = icalendar.vText("REQ-PARTICIPANT")
    event.add("attendee", attendee, encode=0)
    calendar.add_component(event)
    return calendar.to_ical()


def email_send(
    *,
    kind: str,
    to: str,
    context: dict[str, Any],
    invite: SessionInvite | None = None,
    attendee_name: str = "",
) -> None:
    """Render `notifications/email/<kind>.txt` and `.html` and send them to `to`, with the invitation attached
    when given. Raises whatever the email backend raises (SMTP errors, refused connections)."""
    subject = SUBJECTS[kind].format(**context)
    text = render_to_string(f"notifications/email/{kind}.txt", context)
    html = render_to_string(f"notifications/email/{kind}.html", context)
    message = EmailMultiAlternatives(subject=subject, body=text, to=[to])
    message.attach_alternative(html, "text/html")
    if invite is not None:
        part = MIMEText(ics_for(invite, attendee_email=to, attendee_name=attendee_name).decode(), "calendar", "utf-8")
        part.set_param("method", "CANCEL" if invite.cancelled else "REQUEST")
        part.add_header("Content-Disposition", "attachment", filename="invite.ics")
        message.attach(part)
    message.send(fail_silently=False)


def local_time(moment: datetime, time_zone: str) -> str:
    """`Tue 1 Dec 2026, 10:00 (Asia/Shanghai)`: the start as the recipient reads it."""
    try:
        zone = ZoneInfo(time_zone)
    except (KeyError, ValueError):
        zone, time_zone = ZoneInfo("UTC"), "UTC"
    local = moment.astimezone(zone)
    return f"{local:%a} {local.day} {local:%b %Y, %H:%M} ({time_zone})"


def ends_at(start: datetime, duration_minutes: int) -> datetime:
    return start + timedelta(minutes=duration_minutes)
