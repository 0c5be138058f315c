"""Recurring silences: a 5-field cron schedule, a duration and a time zone.

Pure: no I/O, no trio; every question takes ``now`` (Unix ns, see :mod:`daemon.clock`).

This is Notification Manager's ``Silence`` with ``schedule`` + ``duration``: a silence
that is active during every window ``[fire, fire + duration)``, where ``fire`` is each
instant the cron schedule fires in the given time zone. tocsin turns each window into an
ordinary silence (:func:`window_silence_id` names it), so muting, the API and gossip stay
Alertmanager's; this module only answers "which windows, when".

Cron rules (the standard 5 fields that ``robfig/cron``'s ``ParseStandard`` accepts, which
NM's admission webhook uses):

* fields: minute 0-59, hour 0-23, day of month 1-31, month 1-12 or ``JAN``-``DEC``, day
  of week 0-6 or ``SUN``-``SAT`` (7 is also Sunday, as in Vixie cron); names are
  case-insensitive;
* each field is a comma list of ``*`` (or ``?``), ``N``, ``N-M``, each optionally
  followed by ``/STEP``; ``N/STEP`` means ``N-max/STEP``;
* descriptors ``@yearly`` (``@annually``), ``@monthly``, ``@weekly``, ``@daily``
  (``@midnight``) and ``@hourly``;
* day of month and day of week: when both are restricted (neither starts with ``*`` or
  ``?``), a day matches if either matches; otherwise both must (Vixie cron's rule).

Daylight saving time. Schedules are wall-clock times in ``time_zone``. A wall time that
does not exist (the hour skipped in spring) fires at the same offset after the gap, i.e.
02:30 becomes 03:30 on a 02:00 → 03:00 change; a wall time that happens twice (autumn)
fires once, at its first occurrence. Two wall times that land on the same instant fire
once. So a daily schedule fires exactly once every local day.
"""

from __future__ import annotations

import datetime as dt
import functools
import uuid
import zoneinfo
from collections.abc import Iterator
from typing import Any

import attrs

from cluster.errors import DecodeError
from cluster.protowire import ProtoWriter, iter_fields
from daemon.clock import NS_PER_SECOND
from daemon.gocompat.duration import DurationError, format_go_duration, parse_go_duration
from daemon.gocompat.pbtimestamp import decode_timestamp, encode_timestamp
from daemon.gocompat.timestamp import format_millis

#: Namespace of window silence ids: uuid5(this, "<recurring id>@<window start, Unix s>").
WINDOW_NAMESPACE = uuid.UUID("8f1f6d0e-4f0b-5a43-9a55-1c2f3c2a7e11")

#: How far :func:`Schedule.next_fire` looks before giving up (a schedule such as
#: ``0 0 30 2 *`` never fires). Eight years covers every leap-day schedule.
_SEARCH_DAYS = 8 * 366

#: More than any daylight-saving or zone change shifts a wall time (real ones are <= 2h).
_MAX_SHIFT = dt.timedelta(hours=3)

_MONTHS = ("JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC")
_DAYS = ("SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT")

_DESCRIPTORS = {
    "@yearly": "0 0 1 1 *",
    "@annually": "0 0 1 1 *",
    "@monthly": "0 0 1 * *",
    "@weekly": "0 0 * * 0",
    "@daily": "0 0 * * *",
    "@midnight": "0 0 * * *",
    "@hourly": "0 * * * *",
}


class ScheduleError(ValueError):
    """A schedule, duration or time zone that cannot be used; the text says which part."""


@attrs.frozen
class _Field:
    name: str
    low: int
    high: int
    names: tuple[str, ...] = ()
    #: Index of names[0] (months start at 1, days at 0).
    names_base: int = 0


_FIELDS = (
    _Field("minute", 0, 59),
    _Field("hour", 0, 23),
    _Field("day of month", 1, 31),
    _Field("month", 1, 12, _MONTHS, 1),
    _Field("day of week", 0, 7, _DAYS, 0),
)


def _value(text: str, field: _Field) -> int:
    upper = text.upper()
    if upper in field.names:
        return field.names.index(upper) + field.names_base
    if not text.isdigit() or not text.isascii():
        raise ScheduleError(f"{field.name}: {text!r} is not a number or name")
    number = int(text)
    if not field.low <= number <= field.high:
        raise ScheduleError(f"{field.name}: {number} is out of range {field.low}-{field.high}")
    return number


def _parse_field(text: str, field: _Field) -> frozenset[int]:
    values: set[int] = set()
    for part in text.split(","):
        if not part:
            raise ScheduleError(f"{field.name}: empty item in {text!r}")
        span, slash, step_text = part.partition("/")
        step = 1
        if slash:
            if not step_text.isdigit() or not step_text.isascii() or int(step_text) == 0:
                raise ScheduleError(f"{field.name}: step {step_text!r} must be a positive number")
            step = int(step_text)
        if span in ("*", "?"):
            low, high = field.low, field.high
        elif "-" in span:
            first, _, last = span.partition("-")
            low, high = _value(first, field), _value(last, field)
            if low > high:
                raise ScheduleError(f"{field.name}: range {span!r} runs backwards")
        else:
            low = _value(span, field)
            # robfig/cron: "N/STEP" means from N to the field's end.
            high = field.high if slash else low
        values.update(range(low, high + 1, step))
    if field.name == "day of week" and 7 in values:
        values.discard(7)
        values.add(0)
    return frozenset(values)


@attrs.frozen
class Schedule:
    """A parsed cron schedule in a time zone."""

    text: str
    time_zone: str
    minutes: tuple[int, ...]
    hours: tuple[int, ...]
    days_of_month: frozenset[int]
    months: frozenset[int]
    #: Python's weekday numbering is Monday=0; this keeps cron's (Sunday=0).
    days_of_week: frozenset[int]
    #: True when day of month and day of week are both restricted (then either matches).
    either_day: bool
    zone: dt.tzinfo = attrs.field(eq=False, repr=False)

    @classmethod
    def parse(cls, text: str, time_zone: str = "UTC") -> Schedule:
        """Parse ``text``; raises :class:`ScheduleError` naming the bad field."""
        try:
            zone: dt.tzinfo = zoneinfo.ZoneInfo(time_zone)
        except (zoneinfo.ZoneInfoNotFoundError, ValueError):
            raise ScheduleError(f"unknown time zone {time_zone!r}") from None
        spec = _DESCRIPTORS.get(text.strip().lower(), text)
        parts = spec.split()
        if len(parts) != 5:
            raise ScheduleError(
                f"schedule {text!r} has {len(parts)} fields; want 5 "
                "(minute hour day-of-month month day-of-week) or a descriptor like @daily"
            )
        sets = [_parse_field(part, field) for part, field in zip(parts, _FIELDS, strict=True)]
        return cls(
            text=text,
            time_zone=time_zone,
            minutes=tuple(sorted(sets[0])),
            hours=tuple(sorted(sets[1])),
            days_of_month=sets[2],
            months=sets[3],
            days_of_week=sets[4],
            either_day=not parts[2].startswith(("*", "?")) and not parts[4].startswith(("*", "?")),
            zone=zone,
        )

    def _day_matches(self, day: dt.date) -> bool:
        if day.month not in self.months:
            return False
        dom = day.day in self.days_of_month
        dow = (day.weekday() + 1) % 7 in self.days_of_week
        return (dom or dow) if self.either_day else (dom and dow)

    def _fires_on(self, day: dt.date, not_before: dt.datetime) -> Iterator[tuple[dt.datetime, int]]:
        """The wall times of local ``day`` this schedule fires at, with their instants (ns).

        Wall times before ``not_before`` (naive, local) are skipped without the costly
        conversion.
        """
        for hour in self.hours:
            for minute in self.minutes:
                wall = dt.datetime(day.year, day.month, day.day, hour, minute)
                if wall < not_before:
                    continue
                local = wall.replace(tzinfo=self.zone)
                # fold=0: a skipped wall time maps past the gap, a doubled one to its
                # first occurrence (see the module docstring).
                yield wall, int(local.timestamp()) * NS_PER_SECOND

    def next_fire(self, after: int) -> int | None:
        """The first fire time strictly after ``after`` (Unix ns), or None if it never fires."""
        local_after = dt.datetime.fromtimestamp(after // NS_PER_SECOND, self.zone)
        # A wall time maps to an instant at most a gap or overlap (hours, never a day)
        # away from its face value: earlier wall times cannot come after ``after``.
        not_before = local_after.replace(tzinfo=None) - _MAX_SHIFT
        day = not_before.date()
        best: int | None = None
        best_wall = not_before
        for _ in range(_SEARCH_DAYS):
            if best is not None and self._day_start(day) > best:
                return best
            if self._day_matches(day):
                for wall, fire in self._fires_on(day, not_before):
                    if fire > after and (best is None or fire < best):
                        best, best_wall = fire, wall
                    elif best is not None and wall > best_wall + 2 * _MAX_SHIFT:
                        # Later wall times map to later instants than ``best``.
                        return best
            day += dt.timedelta(days=1)
        return best

    def _day_start(self, day: dt.date) -> int:
        local = dt.datetime(day.year, day.month, day.day, tzinfo=self.zone)
        return int(local.timestamp()) * NS_PER_SECOND


@attrs.frozen
class Recurrence:
    """A recurring silence's timing: active in every ``[fire, fire + duration)``."""

    schedule: Schedule
    #: Window length, ns; positive.
    duration: int

    @classmethod
    def parse(cls, schedule: str, duration: int, time_zone: str = "UTC") -> Recurrence:
        if duration <= 0:
            raise ScheduleError("duration must be positive")
        return cls(Schedule.parse(schedule, time_zone), duration)

    def windows(self, start: int, end: int) -> Iterator[tuple[int, int]]:
        """Every window ``(starts_at, ends_at)`` that is open at some instant in ``[start, end)``.

        Windows that overlap (a duration longer than the schedule's period) are all
        yielded; the silences they become overlap harmlessly.
        """
        fire = self.schedule.next_fire(start - self.duration)
        while fire is not None and fire < end:
            yield fire, fire + self.duration
            fire = self.schedule.next_fire(fire)

    def active_at(self, now: int) -> bool:
        """Whether some window is open at ``now`` (NM's ``Silence.IsActive`` with a schedule)."""
        return next(self.windows(now, now + 1), None) is not None


def window_silence_id(recurring_id: str, starts_at: int) -> str:
    """The id of the ordinary silence for one window: the same on every node."""
    return str(uuid.uuid5(WINDOW_NAMESPACE, f"{recurring_id}@{starts_at // NS_PER_SECOND}"))


@functools.lru_cache(maxsize=4096)
def _parsed(schedule: str, duration: int, time_zone: str) -> Recurrence:
    # Every wake-up of every actor asks for every recurring silence's timing; parsing
    # is most of that work, and the answers never change.
    return Recurrence.parse(schedule, duration, time_zone)


#: Longest window: a recurring silence is a schedule of bounded windows, not a way
#: around silences having to end.
MAX_DURATION = 31 * 24 * 3600 * NS_PER_SECOND
#: How many upcoming fires :meth:`RecurrenceSpec.check` looks at for overlapping windows.
_OVERLAP_CHECKS = 64


@attrs.frozen
class RecurrenceSpec:
    """A recurring silence's definition, carried by each of its window silences.

    ``since`` is when it was created (no window starts before it); ``until`` is when it
    ends (no window starts at or after it), None while it runs.
    """

    id: str
    schedule: str
    duration: int
    time_zone: str
    since: int
    until: int | None = None

    def recurrence(self) -> Recurrence:
        """The parsed timing; raises :class:`ScheduleError`."""
        return _parsed(self.schedule, self.duration, self.time_zone)

    def check(self) -> Recurrence:
        """:meth:`recurrence`, refusing windows longer than 31 days or overlapping ones.

        Overlap is checked on the next 64 fires after ``since``: each window must end by
        the next one's start, so one recurring silence has one window open at a time.
        """
        rec = self.recurrence()
        if self.duration > MAX_DURATION:
            raise ScheduleError("duration must be at most 31 days (744h)")
        fire = rec.schedule.next_fire(self.since - 1)
        if fire is None:
            raise ScheduleError(f"schedule {self.schedule!r} never fires")
        for _ in range(_OVERLAP_CHECKS):
            nxt = rec.schedule.next_fire(fire)
            if nxt is None:
                break
            if nxt < fire + self.duration:
                raise ScheduleError(
                    "duration is longer than the time between two fires of the schedule; "
                    "windows would overlap"
                )
            fire = nxt
        return rec


# --- the API's form ---------------------------------------------------------------------

#: The keys of a silence's ``recurrence`` object in ``POST /api/v2/silences``.
POSTED_KEYS = ("schedule", "duration", "timeZone")


@attrs.frozen
class PostedRecurrence:
    """The ``recurrence`` object of a posted silence."""

    schedule: str
    duration: int
    time_zone: str


def parse_posted(value: Any) -> PostedRecurrence:
    """``{"schedule": "0 22 * * *", "duration": "8h", "timeZone": "Asia/Shanghai"}``
    (``timeZone`` defaults to UTC); raises :class:`ScheduleError` saying what is wrong."""
    if not isinstance(value, dict):
        raise ScheduleError("recurrence must be an object with schedule and duration")
    unknown = sorted(set(value) - set(POSTED_KEYS))
    if unknown:
        raise ScheduleError(f"recurrence has unknown fields {unknown}; known: {list(POSTED_KEYS)}")
    schedule, duration = value.get("schedule"), value.get("duration")
    time_zone = value.get("timeZone", "UTC")
    if not isinstance(schedule, str) or not schedule:
        raise ScheduleError("recurrence.schedule must be a cron schedule string")
    if not isinstance(duration, str):
        raise ScheduleError("recurrence.duration must be a duration string such as 8h or 90m")
    if not isinstance(time_zone, str):
        raise ScheduleError("recurrence.timeZone must be an IANA zone name such as Europe/Paris")
    try:
        ns = parse_go_duration(duration)
    except DurationError as exc:
        raise ScheduleError(f"recurrence.duration: {exc}") from None
    if ns <= 0:
        raise ScheduleError("duration must be positive")
    return PostedRecurrence(schedule, ns, time_zone)


def spec_json(spec: RecurrenceSpec) -> dict[str, Any]:
    """The ``recurrence`` object a gettable silence carries."""
    out: dict[str, Any] = {
        "id": spec.id,
        "schedule": spec.schedule,
        "duration": format_go_duration(spec.duration),
        "timeZone": spec.time_zone,
        "startsAt": format_millis(spec.since),
    }
    if spec.until is not None:
        out["endsAt"] = format_millis(spec.until)
    return out


# --- the wire form ------------------------------------------------------------------------

# tocsin's field of silencepb.Silence that carries the spec. Go's protobuf skips (and
# gogo keeps) unknown fields, so Alertmanager peers treat a window as the ordinary
# silence it is.
RECURRENCE_FIELD = 1000


def encode_spec(spec: RecurrenceSpec) -> bytes:
    """``Recurrence {id = 1; schedule = 2; duration_ns = 3; time_zone = 4; since = 5;
    until = 6 (absent while it runs)}``."""
    w = ProtoWriter()
    w.string(1, spec.id)
    w.string(2, spec.schedule)
    w.varint(3, spec.duration)
    w.string(4, spec.time_zone)
    w.bytes_field(5, encode_timestamp(spec.since))
    if spec.until is not None:
        w.bytes_field(6, encode_timestamp(spec.until))
    return w.getvalue()


def decode_spec(data: bytes) -> RecurrenceSpec:
    """The spec of :func:`encode_spec`; raises DecodeError for a malformed one."""
    rid = schedule = ""
    time_zone = "UTC"
    duration = since = 0
    until: int | None = None
    for f in iter_fields(data):
        if f.number == 1:
            rid = f.as_str()
        elif f.number == 2:
            schedule = f.as_str()
        elif f.number == 3:
            duration = f.as_int()
        elif f.number == 4:
            time_zone = f.as_str()
        elif f.number == 5:
            since = decode_timestamp(f.as_bytes())
        elif f.number == 6:
            until = decode_timestamp(f.as_bytes())
    if not rid or not schedule or duration <= 0:
        raise DecodeError("silencepb: recurrence without id, schedule or duration")
    return RecurrenceSpec(rid, schedule, duration, time_zone, since, until)


__all__ = [
    "POSTED_KEYS",
    "RECURRENCE_FIELD",
    "PostedRecurrence",
    "Recurrence",
    "RecurrenceSpec",
    "Schedule",
    "ScheduleError",
    "decode_spec",
    "encode_spec",
    "parse_posted",
    "spec_json",
    "window_silence_id",
]
