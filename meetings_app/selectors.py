"""Reads of meetings_app used by the engine, the admin, the pages and the provider events."""

from meetings_app.models import Meeting, MeetingProvider, MeetingStatus, PausableProvider, ProviderPause


def providers_paused() -> frozenset[str]:
    """The providers an operator has paused now. One query on a table of one row per pausable provider, read
    before every provider-work step (no cache: a pause or a resume counts from its commit, in every process)."""
    return frozenset(ProviderPause.objects.filter(paused=True).values_list("provider", flat=True))


def provider_pauses() -> list[ProviderPause]:
    """Every pausable provider's pause row (a provider never paused yet shows as running), for operators."""
    rows = {row.provider: row for row in ProviderPause.objects.select_related("paused_by")}
    return [rows.get(provider) or ProviderPause(provider=provider) for provider in PausableProvider.values]


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
