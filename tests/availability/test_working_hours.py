"""Working hours in the mentor's time zone, read by a counselor in another, across a daylight-saving change.

`now` is a parameter of the selector, frozen here at 2027-03-20 so that the change of 28 March 2027 (London
goes from GMT to BST) is inside the booking horizon."""

from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest

from accounts_app.selectors import people_get_by_ids
from calendar_app.models import WorkingHours, WorkingHoursException, WorkingHoursExceptionKind
from sessions_app.availability import availability_starts
from tests.factories import MentorFactory, ProfileFactory, UserFactory

pytestmark = pytest.mark.django_db

LONDON = ZoneInfo("Europe/London")
SHANGHAI = ZoneInfo("Asia/Shanghai")
NOW = datetime(2027, 3, 20, 12, 0, tzinfo=UTC)


@pytest.fixture
def london_mentor():
    mentor = MentorFactory(profile=None)
    ProfileFactory(user=mentor, time_zone="Europe/London")
    for weekday in range(5):
        WorkingHours.objects.create(mentor=mentor, weekday=weekday, starts_at=time(9), ends_at=time(12))
    return people_get_by_ids(ids=[mentor.id])[mentor.id]


def offered(mentor, *, start: datetime, end: datetime, now: datetime = NOW, **kwargs) -> list[datetime]:
    student = UserFactory()
    starts = availability_starts(
        mentor=mentor,
        student_ids=[student.id],
        duration_minutes=kwargs.pop("duration_minutes", 60),
        start=start,
        end=end,
        time_zone="Asia/Shanghai",
        step_minutes=kwargs.pop("step_minutes", 60),
        meeting_provider="zoom",
        now=now,
        **kwargs,
    )
    return [s.astimezone(SHANGHAI) for s, _ in starts]


def shanghai(day: int, hour: int) -> datetime:
    return datetime(2027, 3, day, hour, tzinfo=SHANGHAI)


def test_london_hours_move_by_an_hour_for_shanghai_when_london_changes_its_clocks(london_mentor):
    assert date(2027, 3, 25).weekday() == 3 and date(2027, 3, 29).weekday() == 0  # Thursday, Monday
    # Friday 26 off; Saturday 27 (no weekly hours) 14:00-16:00 extra; Monday 29 off from 10:00 to 11:00.
    WorkingHoursException.objects.create(mentor=london_mentor, date=date(2027, 3, 26), kind="off")
    WorkingHoursException.objects.create(
        mentor=london_mentor,
        date=date(2027, 3, 27),
        kind=WorkingHoursExceptionKind.EXTRA,
        starts_at=time(14),
        ends_at=time(16),
    )
    WorkingHoursException.objects.create(
        mentor=london_mentor, date=date(2027, 3, 29), kind="off", starts_at=time(10), ends_at=time(11)
    )

    starts = offered(london_mentor, start=shanghai(25, 0), end=shanghai(30, 0))

    assert starts == [
        # Thursday, GMT: London 09:00-12:00 is Shanghai 17:00-20:00.
        shanghai(25, 17),
        shanghai(25, 18),
        shanghai(25, 19),
        # Saturday's extra hours, GMT: London 14:00-16:00 is Shanghai 22:00-24:00.
        shanghai(27, 22),
        shanghai(27, 23),
        # Monday, BST: London 09:00 is Shanghai 16:00; 10:00-11:00 off.
        shanghai(29, 16),
        shanghai(29, 18),
    ]


def test_the_grid_is_the_readers_and_a_range_must_hold_the_whole_session(london_mentor):
    starts = offered(london_mentor, start=shanghai(25, 0), end=shanghai(26, 0), duration_minutes=45, step_minutes=20)

    # London 09:00-12:00 GMT = Shanghai 17:00-20:00; starts every 20 minutes, the last one ending by 20:00.
    assert starts == [shanghai(25, 17) + timedelta(minutes=20 * i) for i in range(7)]


def test_a_mentor_without_working_hours_is_offered_at_any_hour_but_not_on_a_day_off():
    mentor = MentorFactory()
    WorkingHoursException.objects.create(mentor=mentor, date=date(2027, 3, 26), kind="off")
    mentor = people_get_by_ids(ids=[mentor.id])[mentor.id]

    starts = offered(mentor, start=shanghai(25, 0), end=shanghai(28, 0), step_minutes=60)

    days = {s.date(): 0 for s in starts}
    for s in starts:
        days[s.date()] += 1
    # Asia/Shanghai mentor: the whole of the 25th and 27th (the last start ends at midnight), not the 26th.
    assert days == {date(2027, 3, 25): 24, date(2027, 3, 27): 24}


def test_the_past_and_beyond_the_horizon_are_left_out(london_mentor, settings):
    settings.BOOKING_HORIZON_DAYS = 7
    now = datetime(2027, 3, 25, 9, 30, tzinfo=UTC)  # Thursday, London 09:30 (GMT)

    starts = offered(london_mentor, start=shanghai(25, 0), end=datetime(2027, 4, 8, tzinfo=UTC), now=now)

    assert min(starts) == shanghai(25, 18)  # 17:00 Shanghai (London 09:00) has passed
    assert max(starts) <= now + timedelta(days=7)
    # A week later, BST: the horizon ends at London 10:30, so the 10:00 start is the last.
    assert max(starts) == datetime(2027, 4, 1, 10, tzinfo=LONDON).astimezone(SHANGHAI)


def test_outside_busy_times_are_not_offered(london_mentor):
    busy = [(shanghai(25, 18), shanghai(25, 18) + timedelta(minutes=30))]

    starts = offered(london_mentor, start=shanghai(25, 0), end=shanghai(26, 0), outside_busy=busy)

    # 17:00-18:00 ends as the busy time begins: back to back, still offered.
    assert starts == [shanghai(25, 17), shanghai(25, 19)]
