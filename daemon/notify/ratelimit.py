"""Per-tenant notification rate limits: one token bucket per integration type.

Mimir's meaning (``rate_limited_notifier.go``): each tenant has, for each integration
type (``webhook``, ``email``, ...), a limiter of ``rate`` notifications per second with
a burst of ``max(1, floor(rate))``. A notification is one send to one integration,
however many alerts it carries. A notification over the rate is not sent and not
retried: the integration's share of the flush fails, so the nflog does not record it
and the next flush of the group tries again.

A rate of 0 means unlimited; a negative rate lets nothing through (as Mimir's).
Changing the rate keeps the tokens a bucket has, as ``rate.Limiter.SetLimitAt`` does.

Pure: decisions take ``now`` (seconds on trio's clock).
"""

from __future__ import annotations

import math
from collections.abc import Callable


class TokenBucket:
    """``rate`` tokens a second, at most ``burst`` saved up; starts full."""

    __slots__ = ("_last", "_tokens", "burst", "rate")

    def __init__(self, rate: float, now: float) -> None:
        self.rate = rate
        self.burst = burst_for(rate)
        self._tokens = float(self.burst)
        self._last = now

    def set_rate(self, rate: float, now: float) -> None:
        self._refill(now)
        self.rate = rate
        self.burst = burst_for(rate)
        self._tokens = min(self._tokens, float(self.burst))

    def _refill(self, now: float) -> None:
        if now > self._last:
            if self.rate > 0:
                self._tokens = min(float(self.burst), self._tokens + (now - self._last) * self.rate)
            self._last = now

    def allow(self, now: float) -> bool:
        """Take one token if there is one."""
        self._refill(now)
        if self._tokens >= 1.0:
            self._tokens -= 1.0
            return True
        return False


def burst_for(rate: float) -> int:
    """Mimir's burst: the rate rounded down, at least 1; 0 for a negative rate."""
    if rate < 0:
        return 0
    return max(1, math.floor(rate)) if math.isfinite(rate) else 1 << 62


class NotificationRateLimits:
    """One tenant's buckets, by integration type; ``rate_for`` is read at every send,
    so new limits apply at once. ``on_drop`` hears each notification refused (the
    owner counts it)."""

    def __init__(
        self, rate_for: Callable[[str], float], on_drop: Callable[[str], None] = lambda _: None
    ) -> None:
        self._rate_for = rate_for
        self.on_drop = on_drop
        self._buckets: dict[str, TokenBucket] = {}

    def allow(self, integration: str, now: float) -> bool:
        """Whether one more notification through ``integration`` is within the rate."""
        rate = self._rate_for(integration)
        if rate == 0:
            self._buckets.pop(integration, None)
            return True
        bucket = self._buckets.get(integration)
        if bucket is None:
            bucket = self._buckets[integration] = TokenBucket(rate, now)
        elif bucket.rate != rate:
            bucket.set_rate(rate, now)
        return bucket.allow(now)


__all__ = ["NotificationRateLimits", "TokenBucket", "burst_for"]
