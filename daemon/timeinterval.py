"""Time intervals (``time_intervals`` / ``mute_time_intervals``): parsing and evaluation. Pure.

Rules (spec §8, Alertmanager 0.25 ``timeinterval`` package):

* A :class:`TimeInterval` restricts by time of day, weekday, day of month, month and
  year. An omitted field (None) places no restriction; fields are AND-ed; the ranges
  inside one field are OR-ed. An *empty* list (``times: []``) matches nothing, as in Go,
  where an empty but non-nil slice is never satisfied.
* Named intervals hold several sub-intervals, OR-ed.
* Times of day are minutes ``[start, end)``; ``24:00`` is a valid end. Day-of-month
  ranges accept negatives (``-1`` is the month's last day), resolved against the real
  length of the evaluated month and clamped to it.
* Evaluation converts ``now`` to the interval's ``location`` (UTC if absent).
"""

from __future__ import annotations

import calendar
import datetime
import re
import zoneinfo
from collections.abc import Iterable, Mapping

import attrs

from daemon.clock import NS_PER_SECOND

WEEKDAYS = ["sunday", "monday", "tuesday", "wednesday", "thursday", "friday", "saturday"]
MONTHS = [
    "january",
    "february",
    "march",
    "april",
    "may",
    "june",
    "july",
    "august",
    "september",
    "october",
    "november",
    "december",
]
_VALID_TIME = re.compile(r"(([01][0-9])|(2[0-3])):[0-5][0-9]|24:00")
_ATOI = re.compile(r"[+-]?[0-9]+")


class TimeIntervalError(ValueError):
    """A time interval that does not parse; the message is Alertmanager's."""


@attrs.frozen
class TimeRange:
    """Minutes since midnight, start inclusive, end exclusive."""

    start_minute: int
    end_minute: int


@attrs.frozen
class InclusiveRange:
    begin: int
    end: int


@attrs.frozen
class TimeInterval:
    times: tuple[TimeRange, ...] | None = None
    #: 0 = Sunday … 6 = Saturday.
    weekdays: tuple[InclusiveRange, ...] | None = None
    days_of_month: tuple[InclusiveRange, ...] | None = None
    months: tuple[InclusiveRange, ...] | None = None
    years: tuple[InclusiveRange, ...] | None = None
    #: IANA zone name, ``Local`` or ``UTC``; None means UTC.
    location: str | None = None


# --- parsing ----------------------------------------------------------------------------


def _atoi(text: str) -> int:
    if not _ATOI.fullmatch(text):
        raise TimeIntervalError(f'strconv.Atoi: parsing "{text}": invalid syntax')
    return int(text)


def _split_range(text: str) -> list[str]:
    lowered = text.lower()
    if ":" in lowered:
        parts = lowered.split(":")
        if len(parts) != 2:
            raise TimeIntervalError(f"couldn't parse range {lowered}, invalid format")
        return parts
    return [lowered, lowered]


def parse_time(text: str) -> int:
    """``HH:MM`` (or ``24:00``) → minutes since midnight."""
    if not _VALID_TIME.fullmatch(text):
        raise TimeIntervalError(f"couldn't parse timestamp {text}, invalid format")
    hours, minutes = text.split(":")
    return int(hours) * 60 + int(minutes)


def parse_time_range(start: str, end: str) -> TimeRange:
    if not start or not end:
        raise TimeIntervalError("both start and end times must be provided")
    start_minute, end_minute = parse_time(start), parse_time(end)
    if start_minute >= end_minute:
        raise TimeIntervalError("start time cannot be equal or greater than end time")
    return TimeRange(start_minute, end_minute)


def _weekday(name: str) -> int:
    try:
        return WEEKDAYS.index(name)
    except ValueError:
        raise TimeIntervalError(f"{name} is not a valid weekday") from None


def parse_weekday_range(text: str) -> InclusiveRange:
    begin_text, end_text = _split_range(text)
    begin, end = _weekday(begin_text), _weekday(end_text)
    if begin > end:
        raise TimeIntervalError("start day cannot be before end day")
    return InclusiveRange(begin, end)


def parse_day_of_month_range(text: str) -> InclusiveRange:
    begin_text, end_text = _split_range(text)
    begin, end = _atoi(begin_text), _atoi(end_text)
    for day in (begin, end):
        if day == 0 or day < -31 or day > 31:
            raise TimeIntervalError(f"{day} is not a valid day of the month: out of range")
    if begin < 0 and end > 0:
        raise TimeIntervalError("end day must be negative if start day is negative")
    # Negative days can only be checked against the shortest month (28 days).
    check_begin = 28 + begin if begin < 0 else begin
    check_end = 28 + end if end < 0 else end
    if check_begin > check_end:
        raise TimeIntervalError(f"end day {end} is always before start day {begin}")
    return InclusiveRange(begin, end)


def _month(name: str) -> int:
    if name in MONTHS:
        return MONTHS.index(name) + 1
    if not _ATOI.fullmatch(name):
        raise TimeIntervalError(f"{name} is not a valid month")
    return int(name)


def parse_month_range(text: str) -> InclusiveRange:
    begin_text, end_text = _split_range(text)
    begin, end = _month(begin_text), _month(end_text)
    if begin > end:
        # Alertmanager names the months; numbers outside 1..12 print as "".
        def name(m: int) -> str:
            return MONTHS[m - 1] if 1 <= m <= 12 else ""

        raise TimeIntervalError(f"end month {name(end)} is before start month {name(begin)}")
    return InclusiveRange(begin, end)


def parse_year_range(text: str) -> InclusiveRange:
    begin_text, end_text = _split_range(text)
    begin, end = _atoi(begin_text), _atoi(end_text)
    if begin > end:
        raise TimeIntervalError(f"end year {end} is before start year {begin}")
    return InclusiveRange(begin, end)


def parse_location(name: str) -> str:
    """Check an IANA zone name the way Go's ``time.LoadLocation`` does."""
    if name in ("", "UTC", "Local"):
        return name or "UTC"
    try:
        zoneinfo.ZoneInfo(name)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        raise TimeIntervalError(f"unknown time zone {name}") from None
    return name


# --- marshalling (for the re-serialised config) -------------------------------------------


def format_time(minute: int) -> str:
    return f"{minute // 60:02d}:{minute % 60:02d}"


def format_weekday_range(r: InclusiveRange) -> str:
    if r.begin == r.end:
        return WEEKDAYS[r.begin]
    return f"{WEEKDAYS[r.begin]}:{WEEKDAYS[r.end]}"


def format_range(r: InclusiveRange) -> str:
    return str(r.begin) if r.begin == r.end else f"{r.begin}:{r.end}"


# --- evaluation -------------------------------------------------------------------------


def _zone(location: str | None) -> datetime.tzinfo | None:
    if location is None or location == "UTC":
        return datetime.UTC
    if location == "Local":
        return None
    return zoneinfo.ZoneInfo(location)


def _local_time(now_ns: int, location: str | None) -> datetime.datetime:
    instant = datetime.datetime.fromtimestamp(now_ns // NS_PER_SECOND, datetime.UTC)
    zone = _zone(location)
    return instant.astimezone(zone) if zone is not None else instant.astimezone()


def contains(interval: TimeInterval, now_ns: int) -> bool:
    """True if the wall time ``now_ns`` (Unix ns) falls inside ``interval``."""
    t = _local_time(now_ns, interval.location)
    if interval.times is not None:
        minute = t.hour * 60 + t.minute
        if not any(r.start_minute <= minute < r.end_minute for r in interval.times):
            return False
    if interval.days_of_month is not None:
        days = calendar.monthrange(t.year, t.month)[1]
        found = False
        for r in interval.days_of_month:
            begin = days + r.begin + 1 if r.begin < 0 else r.begin
            end = days + r.end + 1 if r.end < 0 else r.end
            if begin > days:
                continue
            begin, end = max(-days, min(begin, days)), max(-days, min(end, days))
            if begin <= t.day <= end:
                found = True
                break
        if not found:
            return False
    if interval.months is not None:
        if not any(r.begin <= t.month <= r.end for r in interval.months):
            return False
    if interval.weekdays is not None:
        weekday = (t.weekday() + 1) % 7  # Python counts from Monday, Go from Sunday.
        if not any(r.begin <= weekday <= r.end for r in interval.weekdays):
            return False
    if interval.years is not None:
        if not any(r.begin <= t.year <= r.end for r in interval.years):
            return False
    return True


def contains_any(intervals: Iterable[TimeInterval], now_ns: int) -> bool:
    return any(contains(i, now_ns) for i in intervals)


@attrs.frozen
class TimeIntervals:
    """All named intervals of a config, for the mute/active pipeline stages."""

    by_name: Mapping[str, tuple[TimeInterval, ...]] = attrs.field(factory=dict)

    def active_names(self, names: Iterable[str], now_ns: int) -> list[str]:
        """The given names whose interval contains ``now_ns``, in order.

        A name appears once per sub-interval that contains ``now`` (as Alertmanager's
        ``mutedBy`` does). Unknown names raise KeyError: config loading rejects them.
        """
        out: list[str] = []
        for name in names:
            for interval in self.by_name[name]:
                if contains(interval, now_ns):
                    out.append(name)
        return out
