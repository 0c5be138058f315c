"""RFC 3339 parsing and the two output forms Alertmanager uses.

* API responses: millisecond precision, truncated, always UTC ``Z``
  (``2026-11-23T19:30:12.467Z``).
* Webhook/template payloads: Go's RFC3339Nano (fraction with trailing zeros trimmed,
  no fraction at all when zero), UTC.
"""

from __future__ import annotations

import calendar
import re
import time

from daemon.clock import NS_PER_SECOND, ZERO_TIME

_RFC3339 = re.compile(
    r"(\d{4})-(\d{2})-(\d{2})[Tt](\d{2}):(\d{2}):(\d{2})(?:\.(\d{1,9}))?"
    r"(?:([Zz])|([+-])(\d{2}):(\d{2}))"
)


class TimestampError(ValueError):
    pass


def parse_rfc3339(text: str) -> int:
    """Parse an RFC 3339 date-time into Unix nanoseconds (UTC)."""
    m = _RFC3339.fullmatch(text)
    if m is None:
        raise TimestampError(f'parsing time "{text}" as RFC 3339 failed')
    year, month, day, hour, minute, second = (int(m.group(i)) for i in range(1, 7))
    if not (1 <= month <= 12 and 1 <= day <= 31 and hour <= 23 and minute <= 59 and second <= 60):
        raise TimestampError(f'parsing time "{text}": value out of range')
    if day > calendar.monthrange(year, month)[1]:
        raise TimestampError(f'parsing time "{text}": day out of range')
    frac = m.group(7) or ""
    nanos = int(frac.ljust(9, "0")) if frac else 0
    offset = 0
    if m.group(8) is None:
        offset = (int(m.group(10)) * 60 + int(m.group(11))) * 60
        if m.group(9) == "-":
            offset = -offset
    seconds = _days_from_civil(year, month, day) * 86400 + hour * 3600 + minute * 60 + second
    return (seconds - offset) * NS_PER_SECOND + nanos


def _days_from_civil(y: int, m: int, d: int) -> int:
    # Howard Hinnant's algorithm: works for years before 1970 and before 1 AD alike,
    # which calendar.timegm does too but only via datetime for year < 1.
    y -= m <= 2
    era = y // 400
    yoe = y - era * 400
    doy = (153 * (m + (-3 if m > 2 else 9)) + 2) // 5 + d - 1
    doe = yoe * 365 + yoe // 4 - yoe // 100 + doy
    return era * 146097 + doe - 719468


def _civil(ns: int) -> tuple[str, int]:
    seconds, nanos = divmod(ns, NS_PER_SECOND)
    if ns == ZERO_TIME:
        return "0001-01-01T00:00:00", 0
    tm = time.gmtime(seconds)
    return (
        f"{tm.tm_year:04d}-{tm.tm_mon:02d}-{tm.tm_mday:02d}T"
        f"{tm.tm_hour:02d}:{tm.tm_min:02d}:{tm.tm_sec:02d}",
        nanos,
    )


def format_millis(ns: int) -> str:
    """API form: exactly three fractional digits, truncated, UTC."""
    base, nanos = _civil(ns)
    return f"{base}.{nanos // 1_000_000:03d}Z"


def format_nano(ns: int) -> str:
    """Go RFC3339Nano: trailing zeros of the fraction trimmed, UTC."""
    base, nanos = _civil(ns)
    if nanos == 0:
        return base + "Z"
    return f"{base}.{nanos:09d}".rstrip("0") + "Z"
