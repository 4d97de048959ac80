"""Reads of the meetings table that others rely on."""

from meetings_app.models import Meeting, MeetingProvider, MeetingStatus


def meeting_for_provider_event(*, provider: str, reference: str) -> Meeting | None:
    """The meeting a provider's event names: Zoom by its meeting id; Feishu by its meeting number, which Feishu
    hands out again once a meeting is over, so the most recent active meeting with that number."""
    if provider == MeetingProvider.ZOOM:
        return Meeting.objects.filter(provider=provider, provider_meeting_id=reference).first()
    return (
        Meeting.objects.filter(provider=provider, meeting_no=reference, status=MeetingStatus.ACTIVE)
        .order_by("-created_at")
        .first()
    )
