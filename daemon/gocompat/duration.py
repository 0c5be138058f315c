"""Prometheus duration strings (``model.Duration``): ``1h30m``, ``1d``, ``500ms``, ``0``.

Durations are ``int`` nanoseconds, like wall times (see :mod:`daemon.clock`).
"""

from __future__ import annotations

import re

from daemon.clock import NS_PER_MS

_UNITS: list[tuple[str, int]] = [
    ("y", 365 * 24 * 3600 * 1000 * NS_PER_MS),
    ("w", 7 * 24 * 3600 * 1000 * NS_PER_MS),
    ("d", 24 * 3600 * 1000 * NS_PER_MS),
    ("h", 3600 * 1000 * NS_PER_MS),
    ("m", 60 * 1000 * NS_PER_MS),
    ("s", 1000 * NS_PER_MS),
    ("ms", NS_PER_MS),
]
_PATTERN = re.compile(
    r"(?:(\d+)y)?(?:(\d+)w)?(?:(\d+)d)?(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?(?:(\d+)ms)?"
)


class DurationError(ValueError):
    pass


def parse_duration(text: str) -> int:
    """Parse a Prometheus duration into nanoseconds; ``not a valid duration string`` on error."""
    if text == "0":
        return 0
    m = _PATTERN.fullmatch(text)
    if not text or m is None:
        raise DurationError(f'not a valid duration string: "{text}"')
    total = 0
    for group, (_, size) in zip(m.groups(), _UNITS, strict=True):
        if group is not None:
            total += int(group) * size
    return total


def format_duration(ns: int) -> str:
    """Prometheus ``Duration.String()``: largest units first, ``0s`` for zero."""
    ms = ns // NS_PER_MS
    if ms == 0:
        return "0s"
    out = []
    rest = ms * NS_PER_MS
    for unit, size in _UNITS:
        # Years and weeks only when exact: "90d" reads better than "12w6d".
        if unit in ("y", "w") and rest % size:
            continue
        if rest >= size:
            out.append(f"{rest // size}{unit}")
            rest %= size
    return "".join(out)


_GO_UNITS = {
    "ns": 1,
    "us": 1_000,
    "µs": 1_000,
    "μs": 1_000,
    "ms": NS_PER_MS,
    "s": 1000 * NS_PER_MS,
    "m": 60 * 1000 * NS_PER_MS,
    "h": 3600 * 1000 * NS_PER_MS,
}
_GO_PART = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|μs|ms|s|m|h)")


def parse_go_duration(text: str) -> int:
    """Go's ``time.ParseDuration`` (``1m0s``, ``1.5h``, ``300ms``), as kingpin flags take."""
    body = text[1:] if text[:1] in "+-" else text
    if body == "0":
        return 0
    pos, total = 0, 0
    while pos < len(body):
        m = _GO_PART.match(body, pos)
        if m is None:
            raise DurationError(f'time: invalid duration "{text}"')
        number, unit = m.group(1), m.group(2)
        whole, _, frac = number.partition(".")
        scale = _GO_UNITS[unit]
        total += int(whole or "0") * scale
        if frac:
            total += int(frac) * scale // 10 ** len(frac)
        pos = m.end()
    if not body:
        raise DurationError(f'time: invalid duration "{text}"')
    return -total if text.startswith("-") else total


def format_go_duration(ns: int) -> str:
    """Go's ``time.Duration.String()`` (``2s``, ``1m30s``, ``1.5s``, ``500ms``, ``1h0m0s``)."""
    if ns == 0:
        return "0s"
    sign = "-" if ns < 0 else ""
    ns = abs(ns)

    def fraction(value: int, unit: int) -> str:
        whole, rest = divmod(value, unit)
        digits = f"{rest:0{len(str(unit)) - 1}d}".rstrip("0")
        return f"{whole}.{digits}" if digits else str(whole)

    if ns < 1000:
        return f"{sign}{ns}ns"
    if ns < 1_000_000:
        return f"{sign}{fraction(ns, 1000)}µs"
    if ns < 1_000_000_000:
        return f"{sign}{fraction(ns, 1_000_000)}ms"
    hours, rest = divmod(ns, 3600 * 1_000_000_000)
    minutes, rest = divmod(rest, 60 * 1_000_000_000)
    seconds = fraction(rest, 1_000_000_000) + "s"
    if hours:
        return f"{sign}{hours}h{minutes}m{seconds}"
    if minutes:
        return f"{sign}{minutes}m{seconds}"
    return f"{sign}{seconds}"
