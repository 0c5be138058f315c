"""The one wall-clock seam.

Every wall time in tocsin is an ``int`` of nanoseconds since the Unix epoch, UTC.
Nanoseconds keep client-supplied RFC 3339 times exact (Prometheus and Go send up to
nine fractional digits) and make comparisons plain integer ones on the hot path.

Go's zero ``time.Time`` (0001-01-01T00:00:00Z) is :data:`ZERO_TIME`; it is what a
firing alert's ``endsAt`` becomes inside notifications.

Timers never use this clock: they use trio's clock. Tests inject :class:`TrioClock`,
which derives wall time from ``trio.current_time()`` so that ``autojump_clock``
moves both together. Nothing outside this module may call ``time.time()``.
"""

from __future__ import annotations

import time
from typing import Protocol

NS_PER_SECOND = 1_000_000_000
NS_PER_MS = 1_000_000

#: Go's zero time.Time, 0001-01-01T00:00:00Z, as Unix nanoseconds.
ZERO_TIME = -62_135_596_800 * NS_PER_SECOND


class Clock(Protocol):
    def now(self) -> int:
        """Wall time, Unix nanoseconds, UTC."""
        ...


class SystemClock:
    """The real wall clock."""

    def now(self) -> int:
        return time.time_ns()


class TrioClock:
    """Wall time that follows trio's clock, anchored at ``anchor_ns`` when created.

    Must be created inside ``trio.run``.
    """

    def __init__(self, anchor_ns: int) -> None:
        import trio

        self._trio = trio
        self._anchor_ns = anchor_ns
        self._t0 = trio.current_time()

    def now(self) -> int:
        return self._anchor_ns + int((self._trio.current_time() - self._t0) * NS_PER_SECOND)


class FixedClock:
    """A clock that stands still until told to move; for pure-core tests."""

    def __init__(self, now_ns: int) -> None:
        self.t = now_ns

    def now(self) -> int:
        return self.t

    def advance(self, seconds: float) -> None:
        self.t += int(seconds * NS_PER_SECOND)
