"""Helpers of the availability tests: a day in the counselor's time zone (Asia/Shanghai), the request."""

from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from django.utils import timezone

SHANGHAI = ZoneInfo("Asia/Shanghai")
AVAILABILITY_URL = "/api/counselor/availability"


def local_day(days_ahead: int = 3) -> date:
    """A date in Shanghai a few days ahead: inside the horizon, wholly in the future."""
    return timezone.now().astimezone(SHANGHAI).date() + timedelta(days=days_ahead)


def at(day: date, hour: int, minute: int = 0) -> datetime:
    return datetime.combine(day, time(hour, minute), tzinfo=SHANGHAI)


def availability(client, *, mentor, students, day: date, duration: int = 60, days: int = 1, **extra):
    params = {
        "mentorId": str(mentor.id),
        "studentIds": ",".join(str(s.id) for s in students),
        "duration": duration,
        "from": at(day, 0).isoformat(),
        "to": at(day + timedelta(days=days), 0).isoformat(),
        **extra,
    }
    return client.get(AVAILABILITY_URL, params)


def starts_of(response) -> list[datetime]:
    assert response.status_code == 200, response.content
    return [datetime.fromisoformat(s["start"]) for s in response.json()["slots"]]
