"""Reads of notifications for other apps (the counselor's pages), so they never import our models."""

from collections.abc import Iterable
from uuid import UUID

from notifications_app.models import Channel, NotificationDelivery, Reminder


def notifications_needing_person(*, session_ids: Iterable[UUID]) -> dict[UUID, set[str]]:
    """For each of these sessions with a delivery or reminder that gave up and waits for a person: the channels
    concerned ("email", "calendar", "reminders"). Two queries, whatever the number of sessions."""
    ids = list(session_ids)
    waiting: dict[UUID, set[str]] = {}
    if not ids:
        return waiting
    deliveries = NotificationDelivery.objects.filter(session_id__in=ids, requires_manual_intervention=True)
    for session_id, channel in deliveries.values_list("session_id", "channel").distinct():
        waiting.setdefault(session_id, set()).add(channel)
    reminders = Reminder.objects.filter(session_id__in=ids, requires_manual_intervention=True)
    for session_id in reminders.values_list("session_id", flat=True).distinct():
        waiting.setdefault(session_id, set()).add(Channel.REMINDERS)
    return waiting
