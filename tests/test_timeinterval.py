"""Time interval parsing and evaluation (spec §8)."""

from __future__ import annotations

import pytest

from daemon.gocompat import timestamp
from daemon.timeinterval import (
    InclusiveRange,
    TimeInterval,
    TimeIntervalError,
    TimeIntervals,
    TimeRange,
    contains,
    parse_day_of_month_range,
    parse_location,
    parse_month_range,
    parse_time_range,
    parse_weekday_range,
    parse_year_range,
)


def at(text: str) -> int:
    return timestamp.parse_rfc3339(text)


def test_time_range_parses_minutes_and_allows_24_00() -> None:
    """HH:MM become minutes since midnight and 24:00 is a valid end."""
    assert parse_time_range("09:30", "24:00") == TimeRange(570, 1440)


@pytest.mark.parametrize(
    ("start", "end", "message"),
    [
        ("10:00", "09:00", "start time cannot be equal or greater than end time"),
        ("10:00", "10:00", "start time cannot be equal or greater than end time"),
        ("10:00", "25:00", "couldn't parse timestamp 25:00, invalid format"),
        ("9:00", "10:00", "couldn't parse timestamp 9:00, invalid format"),
        ("24:01", "10:00", "couldn't parse timestamp 24:01, invalid format"),
        ("", "10:00", "both start and end times must be provided"),
    ],
)
def test_time_range_errors(start: str, end: str, message: str) -> None:
    """Bad times fail with Alertmanager's messages."""
    with pytest.raises(TimeIntervalError, match=f"^{message}$"):
        parse_time_range(start, end)


def test_weekday_range_is_case_insensitive() -> None:
    """Weekday names are case-insensitive and Sunday is day 0."""
    assert parse_weekday_range("Monday:FRIDAY") == InclusiveRange(1, 5)
    assert parse_weekday_range("sunday") == InclusiveRange(0, 0)


@pytest.mark.parametrize(
    ("parse", "text", "message"),
    [
        (parse_weekday_range, "funday", "funday is not a valid weekday"),
        (parse_weekday_range, "friday:monday", "start day cannot be before end day"),
        (parse_weekday_range, "a:b:c", "couldn't parse range a:b:c, invalid format"),
        (parse_day_of_month_range, "0", "0 is not a valid day of the month: out of range"),
        (parse_day_of_month_range, "1:32", "32 is not a valid day of the month: out of range"),
        (parse_day_of_month_range, "-1:5", "end day must be negative if start day is negative"),
        (parse_day_of_month_range, "-3:-5", "end day -5 is always before start day -3"),
        (parse_day_of_month_range, "20:-10", "end day -10 is always before start day 20"),
        (parse_month_range, "may:march", "end month march is before start month may"),
        (parse_month_range, "smarch", "smarch is not a valid month"),
        (parse_year_range, "2030:2020", "end year 2020 is before start year 2030"),
        (parse_location, "Mars/Olympus", "unknown time zone Mars/Olympus"),
    ],
)
def test_range_errors(parse: object, text: str, message: str) -> None:
    """Each range kind rejects bad input with Alertmanager's message."""
    assert callable(parse)
    with pytest.raises(TimeIntervalError) as info:
        parse(text)
    assert str(info.value) == message


def test_month_names_and_numbers_mix() -> None:
    """Months may be names or numbers."""
    assert parse_month_range("March:5") == InclusiveRange(3, 5)


def test_times_are_end_exclusive() -> None:
    """A time range contains its start minute but not its end minute."""
    interval = TimeInterval(times=(TimeRange(9 * 60, 17 * 60),))
    assert contains(interval, at("2024-05-06T09:00:00Z"))
    assert contains(interval, at("2024-05-06T16:59:59Z"))
    assert not contains(interval, at("2024-05-06T17:00:00Z"))
    assert not contains(interval, at("2024-05-06T08:59:59Z"))


def test_24_00_end_covers_last_minute() -> None:
    """An end of 24:00 includes 23:59."""
    interval = TimeInterval(
        times=(TimeRange(parse_time_range("23:00", "24:00").start_minute, 1440),)
    )
    assert contains(interval, at("2024-05-06T23:59:59Z"))
    assert not contains(interval, at("2024-05-07T00:00:00Z"))


def test_negative_days_count_from_month_end() -> None:
    """-1 is the last day of each month, whatever its length (leap years too)."""
    last_day = TimeInterval(days_of_month=(parse_day_of_month_range("-1"),))
    assert contains(last_day, at("2024-02-29T12:00:00Z"))
    assert not contains(last_day, at("2024-02-28T12:00:00Z"))
    assert contains(last_day, at("2023-02-28T12:00:00Z"))
    assert contains(last_day, at("2024-01-31T12:00:00Z"))
    assert not contains(last_day, at("2024-01-30T12:00:00Z"))


def test_negative_day_range() -> None:
    """-7:-1 covers the last week of the month."""
    last_week = TimeInterval(days_of_month=(parse_day_of_month_range("-7:-1"),))
    assert contains(last_week, at("2024-04-24T00:00:00Z"))
    assert not contains(last_week, at("2024-04-23T23:59:59Z"))


def test_day_range_clamps_to_short_months() -> None:
    """A range ending on day 31 matches the last day of a 30-day month, and a range
    starting after the month's end is skipped."""
    to_31 = TimeInterval(days_of_month=(parse_day_of_month_range("25:31"),))
    assert contains(to_31, at("2024-04-30T10:00:00Z"))
    only_31 = TimeInterval(days_of_month=(parse_day_of_month_range("31"),))
    assert not contains(only_31, at("2024-04-30T10:00:00Z"))
    assert contains(only_31, at("2024-05-31T10:00:00Z"))


def test_weekdays_months_years() -> None:
    """Weekday, month and year fields are AND-ed together."""
    interval = TimeInterval(
        weekdays=(parse_weekday_range("monday:friday"),),
        months=(parse_month_range("may"),),
        years=(parse_year_range("2024"),),
    )
    assert contains(interval, at("2024-05-06T10:00:00Z"))  # a Monday
    assert not contains(interval, at("2024-05-05T10:00:00Z"))  # a Sunday
    assert not contains(interval, at("2024-06-03T10:00:00Z"))  # June
    assert not contains(interval, at("2025-05-05T10:00:00Z"))  # 2025


def test_location_shifts_the_clock() -> None:
    """Evaluation happens in the interval's zone: 23:30 UTC is already Tuesday in Berlin."""
    interval = TimeInterval(
        weekdays=(parse_weekday_range("tuesday"),),
        times=(parse_time_range("00:00", "02:00"),),
        location=parse_location("Europe/Berlin"),
    )
    assert contains(interval, at("2024-05-06T23:30:00Z"))
    assert not contains(interval, at("2024-05-06T21:30:00Z"))


def test_location_handles_dst() -> None:
    """Wall-clock ranges follow daylight saving time in the chosen zone."""
    morning = TimeInterval(times=(parse_time_range("09:00", "10:00"),), location="America/New_York")
    assert contains(morning, at("2024-01-15T14:30:00Z"))  # EST, UTC-5
    assert contains(morning, at("2024-07-15T13:30:00Z"))  # EDT, UTC-4
    assert not contains(morning, at("2024-07-15T14:30:00Z"))


def test_empty_interval_matches_always_and_empty_list_never() -> None:
    """No fields means always; an explicitly empty list matches nothing."""
    assert contains(TimeInterval(), at("2024-05-06T10:00:00Z"))
    assert not contains(TimeInterval(times=()), at("2024-05-06T10:00:00Z"))


def test_active_names_lists_matching_names_once_per_sub_interval() -> None:
    """active_names keeps the order asked for and repeats a name per matching sub-interval."""
    always = TimeInterval()
    never = TimeInterval(years=(InclusiveRange(1990, 1990),))
    intervals = TimeIntervals({"a": (always, always), "b": (never,), "c": (never, always)})
    assert intervals.active_names(["c", "b", "a"], at("2024-05-06T10:00:00Z")) == ["c", "a", "a"]
