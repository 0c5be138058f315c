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
