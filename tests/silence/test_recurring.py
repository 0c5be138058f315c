"""Recurring silences: cron parsing, DST-correct fire times, windows and window ids."""

from __future__ import annotations

import datetime as dt
import itertools
import zoneinfo

import pytest

from daemon.clock import NS_PER_SECOND
from daemon.silence.recurring import Recurrence, Schedule, ScheduleError, window_silence_id

HOUR = 3600 * NS_PER_SECOND


def ns(text: str, zone: str = "UTC") -> int:
    """Unix ns of a local wall time written as ISO 8601."""
    local = dt.datetime.fromisoformat(text).replace(tzinfo=zoneinfo.ZoneInfo(zone))
    return int(local.timestamp()) * NS_PER_SECOND


def iso(value: int, zone: str = "UTC") -> str:
    return dt.datetime.fromtimestamp(value // NS_PER_SECOND, zoneinfo.ZoneInfo(zone)).isoformat()


def fires(schedule: Schedule, after: int, count: int) -> list[str]:
    out = []
    for _ in range(count):
        nxt = schedule.next_fire(after)
        assert nxt is not None
        out.append(iso(nxt, schedule.time_zone))
        after = nxt
    return out


def test_fields_ranges_steps_lists_and_names() -> None:
    """Each field takes lists, ranges, steps, N/STEP and case-insensitive names."""
    s = Schedule.parse("5,*/20 9-17/4 1-7 jan-Mar,DEC mon-fri")
    assert s.minutes == (0, 5, 20, 40)
    assert s.hours == (9, 13, 17)
    assert s.days_of_month == frozenset(range(1, 8))
    assert s.months == frozenset({1, 2, 3, 12})
    assert s.days_of_week == frozenset({1, 2, 3, 4, 5})
    assert s.either_day
    assert Schedule.parse("10/25 * * * *").minutes == (10, 35)
    assert Schedule.parse("0 0 * * 7").days_of_week == frozenset({0})
    daily, plain = Schedule.parse("@daily"), Schedule.parse("0 0 * * *")
    assert (daily.minutes, daily.hours, daily.days_of_week) == (
        plain.minutes,
        plain.hours,
        plain.days_of_week,
    )
    assert Schedule.parse("@hourly").minutes == (0,)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("* * * *", "has 4 fields"),
        ("60 * * * *", "minute: 60 is out of range 0-59"),
        ("* 24 * * *", "hour: 24 is out of range"),
        ("* * 0 * *", "day of month: 0 is out of range"),
        ("* * * 13 *", "month: 13"),
        ("* * * * 8", "day of week: 8"),
        ("*/0 * * * *", "step '0'"),
        ("5-1 * * * *", "runs backwards"),
        ("1,,2 * * * *", "empty item"),
        ("x * * * *", "'x' is not a number or name"),
        ("@every 5m", "fields"),
    ],
)
def test_bad_schedules_name_the_field(text: str, message: str) -> None:
    """A schedule that cannot be parsed is refused with a message naming the bad part."""
    with pytest.raises(ScheduleError, match=message):
        Schedule.parse(text)


def test_unknown_time_zone_is_refused() -> None:
    """An unknown IANA zone is a ScheduleError, not a crash."""
    with pytest.raises(ScheduleError, match="unknown time zone 'Mars/Base'"):
        Schedule.parse("0 0 * * *", "Mars/Base")
    with pytest.raises(ScheduleError, match="unknown time zone"):
        Schedule.parse("0 0 * * *", "../etc/passwd")


def test_next_fire_is_strictly_after() -> None:
    """next_fire skips the instant itself and walks minutes, hours and days in order."""
    s = Schedule.parse("30 22 * * *")
    assert fires(s, ns("2026-03-01T22:30:00"), 2) == [
        "2026-03-02T22:30:00+00:00",
        "2026-03-03T22:30:00+00:00",
    ]
    assert fires(s, ns("2026-03-01T22:29:59"), 1) == ["2026-03-01T22:30:00+00:00"]


def test_day_of_month_or_day_of_week_when_both_restricted() -> None:
    """Both day fields restricted means either matches; a star in one means the other rules."""
    either = Schedule.parse("0 0 13 * 5")  # the 13th, and every Friday
    assert fires(either, ns("2026-02-01T00:00:00"), 4) == [
        "2026-02-06T00:00:00+00:00",  # Friday
        "2026-02-13T00:00:00+00:00",  # Friday the 13th: once
        "2026-02-20T00:00:00+00:00",
        "2026-02-27T00:00:00+00:00",
    ]
    only_dow = Schedule.parse("0 0 * * 5")
    assert fires(only_dow, ns("2026-02-12T00:00:00"), 1) == ["2026-02-13T00:00:00+00:00"]
    only_dom = Schedule.parse("0 0 13 * *")
    assert fires(only_dom, ns("2026-02-14T00:00:00"), 1) == ["2026-03-13T00:00:00+00:00"]


def test_never_firing_schedule_and_leap_day() -> None:
    """February 30th never fires; February 29th waits for the next leap year."""
    assert Schedule.parse("0 0 30 2 *").next_fire(ns("2026-01-01T00:00:00")) is None
    leap = Schedule.parse("0 12 29 2 *")
    assert fires(leap, ns("2026-01-01T00:00:00"), 1) == ["2028-02-29T12:00:00+00:00"]


def test_spring_forward_skipped_time_fires_after_the_gap_once_a_day() -> None:
    """A wall time inside the spring-forward gap fires once, shifted past the gap."""
    s = Schedule.parse("30 2 * * *", "America/New_York")
    assert fires(s, ns("2026-03-07T12:00:00", "America/New_York"), 3) == [
        "2026-03-08T03:30:00-04:00",  # 02:30 does not exist that day
        "2026-03-09T02:30:00-04:00",
        "2026-03-10T02:30:00-04:00",
    ]
    # 02:30 shifted to 03:30 and a real 03:30 land on one instant: one fire.
    both = Schedule.parse("30 2,3 * * *", "America/New_York")
    assert fires(both, ns("2026-03-08T00:00:00", "America/New_York"), 2) == [
        "2026-03-08T03:30:00-04:00",
        "2026-03-09T02:30:00-04:00",
    ]


def test_fall_back_doubled_time_fires_once() -> None:
    """A wall time that happens twice in autumn fires only at its first occurrence."""
    s = Schedule.parse("30 1 * * *", "Europe/London")
    got = [s.next_fire(ns("2026-10-24T12:00:00", "Europe/London"))]
    assert got[0] is not None
    got.append(s.next_fire(got[0]))
    assert got[1] is not None
    assert iso(got[0], "Europe/London") == "2026-10-25T01:30:00+01:00"
    assert iso(got[1], "Europe/London") == "2026-10-26T01:30:00+00:00"
    # Exactly 25 hours apart: the day has 25 hours, and no second fire at 01:30 GMT.
    assert got[1] - got[0] == 25 * HOUR


def test_hourly_schedule_across_fall_back_keeps_each_instant() -> None:
    """Hourly through the autumn change: the doubled 02:00 fires once, so one gap is two hours."""
    s = Schedule.parse("0 * * * *", "Europe/Berlin")
    start = ns("2026-10-25T00:30:00", "Europe/Berlin")
    got = []
    after = start
    for _ in range(4):
        nxt = s.next_fire(after)
        assert nxt is not None
        got.append(nxt)
        after = nxt
    assert [b - a for a, b in itertools.pairwise(got)] == [HOUR, 2 * HOUR, HOUR]


def test_windows_cover_now_and_the_horizon() -> None:
    """windows() yields each window open in [start, end), including one opened before start."""
    r = Recurrence.parse("0 22 * * *", 8 * HOUR, "Asia/Shanghai")
    now = ns("2026-06-02T03:00:00", "Asia/Shanghai")  # inside last night's window
    got = [
        (iso(a, "Asia/Shanghai"), iso(b, "Asia/Shanghai"))
        for a, b in r.windows(now, now + 24 * HOUR)
    ]
    assert got == [
        ("2026-06-01T22:00:00+08:00", "2026-06-02T06:00:00+08:00"),
        ("2026-06-02T22:00:00+08:00", "2026-06-03T06:00:00+08:00"),
    ]
    assert r.active_at(now)
    assert not r.active_at(ns("2026-06-02T06:00:00", "Asia/Shanghai"))  # end is open
    assert r.active_at(ns("2026-06-02T22:00:00", "Asia/Shanghai"))


def test_bad_duration_is_refused() -> None:
    """A window needs a positive duration."""
    with pytest.raises(ScheduleError, match="duration must be positive"):
        Recurrence.parse("0 0 * * *", 0)


def test_window_ids_are_deterministic_and_distinct() -> None:
    """The window id depends only on the recurring id and the window start."""
    a = window_silence_id("rec-1", ns("2026-06-01T22:00:00"))
    assert a == window_silence_id("rec-1", ns("2026-06-01T22:00:00"))
    assert a != window_silence_id("rec-1", ns("2026-06-02T22:00:00"))
    assert a != window_silence_id("rec-2", ns("2026-06-01T22:00:00"))
    assert len(a) == 36
