"""Go ``time.Time`` and ``time.Duration`` as template values: layouts and ``String()``.

Times are Unix nanoseconds (see :mod:`daemon.clock`) plus a zone; a bare ``int`` handed
to the time functions is read as Unix nanoseconds in UTC.
"""

from __future__ import annotations

import datetime as dt
import re
import zoneinfo

import attrs

_NS = 1_000_000_000
_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)


@attrs.frozen
class GoDuration:
    """A Go ``time.Duration`` (int nanoseconds) that prints like Go (``1h2m3.5s``)."""

    ns: int

    def String(self) -> str:
        return format_go_duration(self.ns)

    def Seconds(self) -> float:
        return self.ns / _NS


def format_go_duration(ns: int) -> str:
    """Go's ``Duration.String()``."""
    if ns == 0:
        return "0s"
    sign = "-" if ns < 0 else ""
    u = abs(ns)
    if u < _NS:
        for unit, size in (("ns", 1), ("µs", 1_000), ("ms", 1_000_000)):
            if u < size * 1000:
                return sign + _frac(u, size) + unit
    secs, frac_ns = divmod(u, _NS)
    h, rem = divmod(secs, 3600)
    m, s = divmod(rem, 60)
    out = sign
    if h:
        out += f"{h}h"
    if h or m:
        out += f"{m}m"
    frac = f"{frac_ns:09d}".rstrip("0")
    return out + f"{s}" + ("." + frac if frac else "") + "s"


def _frac(v: int, size: int) -> str:
    whole, rest = divmod(v, size)
    width = len(str(size)) - 1
    frac = f"{rest:0{width}d}".rstrip("0") if width else ""
    return f"{whole}" + ("." + frac if frac else "")


@attrs.frozen
class GoTime:
    """A Go ``time.Time``: Unix nanoseconds and a zone (``None`` means UTC)."""

    ns: int
    #: A ZoneInfo, or a fixed offset named "" (Go's zone for a parsed "+02:00").
    zone: dt.tzinfo | None = None

    def _datetime(self) -> dt.datetime:
        secs, _ = divmod(self.ns, _NS)
        d = _EPOCH + dt.timedelta(seconds=secs)
        return d.astimezone(self.zone) if self.zone is not None else d

    def Format(self, layout: str) -> str:
        return format_layout(self, layout)

    def String(self) -> str:
        return format_layout(self, "2006-01-02 15:04:05.999999999 -0700 MST")

    def UTC(self) -> GoTime:
        return GoTime(self.ns)

    def Unix(self) -> int:
        return self.ns // _NS

    def UnixNano(self) -> int:
        return self.ns

    def IsZero(self) -> bool:
        return self.ns == -62_135_596_800 * _NS


def as_time(v: object) -> GoTime:
    """A :class:`GoTime` from a GoTime, Unix nanoseconds or an aware ``datetime``."""
    if isinstance(v, GoTime):
        return v
    if isinstance(v, bool):
        raise TypeError(f"expected time.Time; got {type(v).__name__}")
    if isinstance(v, int):
        return GoTime(v)
    if isinstance(v, dt.datetime):
        delta = v - _EPOCH
        ns = (delta.days * 86400 + delta.seconds) * _NS + delta.microseconds * 1000
        zone = v.tzinfo if isinstance(v.tzinfo, zoneinfo.ZoneInfo) else None
        return GoTime(ns, zone)
    raise TypeError(f"expected time.Time; got {type(v).__name__}")


_LAYOUT = re.compile(
    r"January|Jan|Monday|Mon|MST|2006|06|01|_2|02|002|15|03|04|05|"
    r"Z07:00:00|Z07:00|Z0700|Z07|-07:00:00|-07:00|-0700|-07|"
    r"PM|pm|[.,](?:0+|9+)(?![0-9])|1|2|3|4|5"
)


def format_layout(t: GoTime, layout: str) -> str:
    """Go's ``Time.Format`` for the common layout elements."""
    d = t._datetime()
    frac_ns = t.ns % _NS
    off = d.utcoffset() or dt.timedelta(0)
    off_s = int(off.total_seconds())
    zone_name = "UTC" if t.zone is None else (d.tzname() or "")

    def offset(fmt: str, z: bool) -> str:
        if z and off_s == 0:
            return "Z"
        sign = "-" if off_s < 0 else "+"
        a = abs(off_s)
        hh, mm, ss = a // 3600, (a // 60) % 60, a % 60
        if fmt.endswith("07:00:00"):
            return f"{sign}{hh:02d}:{mm:02d}:{ss:02d}"
        if fmt.endswith("07:00"):
            return f"{sign}{hh:02d}:{mm:02d}"
        if fmt.endswith("0700"):
            return f"{sign}{hh:02d}{mm:02d}"
        return f"{sign}{hh:02d}"

    def repl(m: re.Match[str]) -> str:
        tok = m.group(0)
        hour12 = d.hour % 12 or 12
        simple = {
            "January": d.strftime("%B"),
            "Jan": d.strftime("%b"),
            "Monday": d.strftime("%A"),
            "Mon": d.strftime("%a"),
            "2006": f"{d.year:04d}",
            "06": f"{d.year % 100:02d}",
            "01": f"{d.month:02d}",
            "1": str(d.month),
            "02": f"{d.day:02d}",
            "_2": f"{d.day:2d}",
            "2": str(d.day),
            "002": f"{d.timetuple().tm_yday:03d}",
            "15": f"{d.hour:02d}",
            "03": f"{hour12:02d}",
            "3": str(hour12),
            "04": f"{d.minute:02d}",
            "4": str(d.minute),
            "05": f"{d.second:02d}",
            "5": str(d.second),
            "PM": "PM" if d.hour >= 12 else "AM",
            "pm": "pm" if d.hour >= 12 else "am",
        }
        if tok in simple:
            return simple[tok]
        if tok == "MST":
            if zone_name and zone_name[0] not in "+-":
                return zone_name
            return offset("-0700", False)
        if tok[0] in "Z-" and "07" in tok:
            return offset(tok, tok[0] == "Z")
        # Fractional seconds: .000 keeps zeros, .999 trims them (and the dot if none left).
        digits = len(tok) - 1
        frac = f"{frac_ns:09d}"[:digits]
        if tok[1] == "9":
            frac = frac.rstrip("0")
            return tok[0] + frac if frac else ""
        return tok[0] + frac

    return _LAYOUT.sub(repl, layout)


def load_zone(name: str) -> zoneinfo.ZoneInfo | None:
    """Go's ``time.LoadLocation``: ``""``/``UTC`` is UTC; unknown names raise ValueError."""
    if name in ("", "UTC"):
        return None
    if name == "Local":
        return None
    try:
        return zoneinfo.ZoneInfo(name)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"unknown time zone {name}") from None
