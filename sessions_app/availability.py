"""What can be booked: the free starts of a mentor and students (reads only).

The same rules as a booking, so that what is offered books: the booking window (sessions_app/rules.py), the
slots table and overlap rule the exclusion constraint guards (calendar_app.selectors.slots_busy_between), plus
what only guides an offer: the mentor's working hours and their own calendar's busy times.
"""

import logging
from bisect import bisect_left, bisect_right
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta
from uuid import UUID
from zoneinfo import ZoneInfo

from django.conf import settings
from django.utils import timezone

from accounts_app.models import User
from accounts_app.selectors import people_get_by_ids, person_time_zone
from calendar_app.busy import CalendarBusy, mentor_calendar_busy
from calendar_app.selectors import mentor_working_ranges, ranges_merge, slots_busy_between
from sessions_app.rules import booking_latest_start

logger = logging.getLogger(__name__)

Range = tuple[datetime, datetime]

AVAILABILITY_MAX_DAYS = 14
STEP_DEFAULT_MINUTES = 15


def availability_starts(
    *,
    mentor: User,
    student_ids: Iterable[UUID],
    duration_minutes: int,
    start: datetime,
    end: datetime,
    time_zone: str,
    step_minutes: int = STEP_DEFAULT_MINUTES,
    meeting_provider: str | None = None,
    outside_busy: Sequence[Range] = (),
    excluding_slot_ids: Iterable[UUID] = (),
    now: datetime | None = None,
    limit: int | None = None,
) -> list[Range]:
    """Every start in [start, end) at which `mentor` and every student are free for `duration_minutes`, as
    (start, end) in UTC, earliest first (at most `limit`). A start is offered when it is:

    - on the `step_minutes` grid of `time_zone` (the reader's: minutes since their local midnight);
    - in the future and within the booking window for `meeting_provider` (the default provider's when None);
    - with its whole [start, start + duration) inside one of the mentor's working ranges;
    - overlapping no booked slot of anyone (`excluding_slot_ids` do not count: a session being moved) and
      none of `outside_busy`.

    Three queries whatever the range's length (working hours, exceptions, slots); `mentor` must come with its
    profile loaded (accounts_app.selectors.people_get_by_ids does).
    """
    now = now or timezone.now()
    duration = timedelta(minutes=duration_minutes)
    latest = booking_latest_start(
        duration_minutes=duration_minutes,
        meeting_provider=meeting_provider or settings.DEFAULT_MEETING_PROVIDER,
        now=now,
    )
    low, high = max(start, now), min(end, latest + timedelta(microseconds=1))
    if low >= high:
        return []

    profile = getattr(mentor, "profile", None)
    working = mentor_working_ranges(
        mentor_id=mentor.id,
        time_zone=profile.time_zone if profile is not None else "UTC",
        start=low,
        end=high + duration,
    )
    busy = ranges_merge(
        [
            *slots_busy_between(
                user_ids=[mentor.id, *student_ids], start=low, end=high + duration, excluding=excluding_slot_ids
            ),
            *outside_busy,
        ]
    )
    working_starts = [s for s, _ in working]
    busy_starts = [s for s, _ in busy]

    free: list[Range] = []
    for candidate in _grid(low, high, ZoneInfo(time_zone), step_minutes):
        if candidate <= now:
            continue
        finish = candidate + duration
        i = bisect_right(working_starts, candidate) - 1
        if i < 0 or working[i][1] < finish:
            continue
        # Busy ranges are merged, so the last one starting before `finish` is the only one that can overlap.
        j = bisect_left(busy_starts, finish) - 1
        if j >= 0 and busy[j][1] > candidate:
            continue
        free.append((candidate, finish))
        if limit is not None and len(free) >= limit:
            break
    return free


def _grid(low: datetime, high: datetime, zone: ZoneInfo, step_minutes: int) -> list[datetime]:
    """The instants in [low, high) whose wall time in `zone` is a whole multiple of `step_minutes` after local
    midnight, in order. A wall time a daylight-saving change skips is left out; one it repeats counts twice
    (both instants are real)."""
    instants: set[datetime] = set()
    day = low.astimezone(zone).date()
    last = high.astimezone(zone).date()
    while day <= last:
        for minute in range(0, 24 * 60, step_minutes):
            wall = datetime.combine(day, time(minute // 60, minute % 60))
            for fold in (0, 1):
                instant = wall.replace(tzinfo=zone, fold=fold).astimezone(UTC)
                if instant.astimezone(zone).replace(tzinfo=None) == wall and low <= instant < high:
                    instants.add(instant)
        day += timedelta(days=1)
    return sorted(instants)


def availability_suggestions(
    *,
    reader: User,
    mentor_id: UUID,
    student_ids: Sequence[UUID],
    duration_minutes: int,
    after: datetime,
    meeting_provider: str | None,
    excluding_slot_ids: Iterable[UUID] = (),
) -> list[dict[str, str]]:
    """The next AVAILABILITY_SUGGESTIONS free starts after `after`, searching AVAILABILITY_SUGGESTION_DAYS
    ahead, for a 409 SLOT_CONFLICT: `[{"start", "end"}]` in the reader's time zone. Read outside any
    transaction (the refused one has rolled back). A few queries."""
    mentor = people_get_by_ids(ids=[mentor_id]).get(mentor_id)
    if mentor is None or settings.AVAILABILITY_SUGGESTIONS <= 0:
        return []
    return free_times_read(
        reader=reader,
        mentor=mentor,
        student_ids=student_ids,
        duration_minutes=duration_minutes,
        start=after + timedelta(minutes=1),
        end=after + timedelta(days=settings.AVAILABILITY_SUGGESTION_DAYS),
        meeting_provider=meeting_provider,
        excluding_slot_ids=excluding_slot_ids,
        limit=settings.AVAILABILITY_SUGGESTIONS,
    ).slots


@dataclass(frozen=True)
class FreeTimes:
    time_zone: str
    # [{"start", "end"}] in `time_zone`
    slots: list[dict[str, str]]
    # The mentor's own calendar: which answered (counted), which did not (skipped).
    calendar: CalendarBusy


def free_times_read(
    *,
    reader: User,
    mentor: User,
    student_ids: Sequence[UUID],
    duration_minutes: int,
    start: datetime,
    end: datetime,
    step_minutes: int = STEP_DEFAULT_MINUTES,
    meeting_provider: str | None = None,
    excluding_slot_ids: Iterable[UUID] = (),
    limit: int | None = None,
) -> FreeTimes:
    """The free starts in [start, end) in the reader's time zone, the mentor's own calendar counted (a short
    read, cached; one that does not answer in time is skipped): what the availability API answers, and what a
    conflict suggests."""
    time_zone = person_time_zone(user=reader)
    calendar = mentor_calendar_busy(mentor=mentor, start=start, end=end + timedelta(minutes=duration_minutes))
    starts = availability_starts(
        mentor=mentor,
        student_ids=student_ids,
        duration_minutes=duration_minutes,
        start=start,
        end=end,
        time_zone=time_zone,
        step_minutes=step_minutes,
        meeting_provider=meeting_provider,
        outside_busy=calendar.busy,
        excluding_slot_ids=excluding_slot_ids,
        limit=limit,
    )
    return FreeTimes(time_zone=time_zone, slots=free_times_render(starts, time_zone=time_zone), calendar=calendar)


def free_times_render(starts: Iterable[Range], *, time_zone: str) -> list[dict[str, str]]:
    """`[{"start", "end"}]` as ISO-8601 with the offset of `time_zone`."""
    zone = ZoneInfo(time_zone)
    return [{"start": s.astimezone(zone).isoformat(), "end": e.astimezone(zone).isoformat()} for s, e in starts]
