"""Reads of people's time: what is booked, and when a mentor works."""

import datetime as dt
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from uuid import UUID
from zoneinfo import ZoneInfo

from django.db.backends.postgresql.psycopg_any import DateTimeTZRange

from calendar_app.models import (
    CalendarSlot,
    SlotStatus,
    WorkingHours,
    WorkingHoursException,
    WorkingHoursExceptionKind,
)

Range = tuple[datetime, datetime]


def slots_busy_between(
    *, user_ids: Iterable[UUID], start: datetime, end: datetime, excluding: Iterable[UUID] = ()
) -> list[Range]:
    """The booked stretches of any of the users overlapping [start, end), in one query: the rows and the
    overlap rule ("[)", booked only) of the exclusion constraint that refuses a double booking, so what is
    free here is what the constraint lets through."""
    rows = (
        CalendarSlot.objects.filter(
            user_id__in=list(user_ids), status=SlotStatus.BOOKED, during__overlap=DateTimeTZRange(start, end, "[)")
        )
        .exclude(id__in=list(excluding))
        .values_list("during", flat=True)
    )
    return [(during.lower, during.upper) for during in rows]


def mentor_working_ranges(*, mentor_id: UUID, time_zone: str, start: datetime, end: datetime) -> list[Range]:
    """When the mentor works within [start, end), as sorted, merged UTC ranges: the weekly hours of each of
    their local dates, less the dated days (or hours) off, plus the dated extra hours, all read in the mentor's
    `time_zone` (so a 09:00 start stays 09:00 for them across a daylight-saving change). A mentor with no
    weekly hours works at any hour (less the days off). Two queries."""
    zone = ZoneInfo(time_zone)
    first_day = start.astimezone(zone).date() - timedelta(days=1)
    last_day = end.astimezone(zone).date() + timedelta(days=1)
    weekly: dict[int, list[tuple[dt.time, dt.time]]] = {}
    for weekday, starts_at, ends_at in WorkingHours.objects.filter(mentor_id=mentor_id).values_list(
        "weekday", "starts_at", "ends_at"
    ):
        weekly.setdefault(weekday, []).append((starts_at, ends_at))
    exceptions: dict[dt.date, list[tuple[str, dt.time | None, dt.time | None]]] = {}
    for day, kind, starts_at, ends_at in WorkingHoursException.objects.filter(
        mentor_id=mentor_id, date__range=(first_day, last_day)
    ).values_list("date", "kind", "starts_at", "ends_at"):
        exceptions.setdefault(day, []).append((kind, starts_at, ends_at))

    ranges: list[Range] = []
    day = first_day
    while day <= last_day:
        ranges.extend(_day_ranges(day, zone, weekly, exceptions.get(day, []), every_hour=not weekly))
        day += timedelta(days=1)
    return [(max(s, start), min(e, end)) for s, e in ranges_merge(ranges) if s < end and e > start]


def _day_ranges(day, zone, weekly, exceptions, *, every_hour: bool) -> list[Range]:
    if every_hour:
        base = [(dt.time(0, 0), dt.time(0, 0))]
    else:
        base = list(weekly.get(day.weekday(), []))
    off: list[Range] = []
    extra: list[Range] = []
    for kind, starts_at, ends_at in exceptions:
        if kind == WorkingHoursExceptionKind.OFF and starts_at is None:
            base = []
        elif kind == WorkingHoursExceptionKind.OFF:
            off.append(_local_range(day, starts_at, ends_at, zone))
        else:
            extra.append(_local_range(day, starts_at, ends_at, zone))
    working = [_local_range(day, s, e, zone) for s, e in base]
    return ranges_merge(ranges_subtract(working, off) + extra)


def _local_range(day: dt.date, starts_at: dt.time, ends_at: dt.time, zone: ZoneInfo) -> Range:
    start = datetime.combine(day, starts_at, tzinfo=zone).astimezone(UTC)
    end_day = day + timedelta(days=1) if ends_at == dt.time(0, 0) else day
    return start, datetime.combine(end_day, ends_at, tzinfo=zone).astimezone(UTC)


def ranges_merge(ranges: Iterable[Range]) -> list[Range]:
    """Sorted, with overlapping or touching ranges joined: 09:00-12:00 and 12:00-13:00 are one range."""
    merged: list[list[datetime]] = []
    for s, e in sorted(r for r in ranges if r[0] < r[1]):
        if merged and s <= merged[-1][1]:
            merged[-1][1] = max(merged[-1][1], e)
        else:
            merged.append([s, e])
    return [(s, e) for s, e in merged]


def ranges_subtract(ranges: Iterable[Range], holes: Iterable[Range]) -> list[Range]:
    holes = ranges_merge(holes)
    out: list[Range] = []
    for s, e in ranges_merge(ranges):
        for hs, he in holes:
            if he <= s or hs >= e:
                continue
            if hs > s:
                out.append((s, hs))
            s = max(s, he)
            if s >= e:
                break
        if s < e:
            out.append((s, e))
    return out
