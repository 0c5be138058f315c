"""Retry policy: the backoff schedule and how integration errors are classified.

Pure. The schedule is Alertmanager's (``cenkalti/backoff`` defaults with no max elapsed
time): first attempt at once, then waits drawn around 0.5 s, growing by 1.5 times per attempt up
to 60 s, each randomised by ±50 %. Randomness comes from an injected ``random.Random``
so tests can pin it.

Errors: an integration raises :class:`NotifyError` carrying whether a retry may help and
the ``reason`` label of ``alertmanager_notifications_failed_total``. HTTP integrations
build it with :func:`check_status`; anything else an integration raises is a bug.
"""

from __future__ import annotations

import random

import attrs

INITIAL_INTERVAL = 0.5
MULTIPLIER = 1.5
RANDOMIZATION_FACTOR = 0.5
MAX_INTERVAL = 60.0

REASON_OTHER = "other"
REASON_CLIENT_ERROR = "clientError"
REASON_SERVER_ERROR = "serverError"
REASON_CONTEXT_CANCELED = "contextCanceled"
REASON_DEADLINE_EXCEEDED = "contextDeadlineExceeded"

#: How much of an error response body goes into the error text.
BODY_EXCERPT_BYTES = 1024


class NotifyError(Exception):
    """One failed delivery attempt.

    Error handling: ``retryable`` False ends the retry loop at once.
    """

    def __init__(self, message: str, *, retryable: bool, reason: str = REASON_OTHER) -> None:
        super().__init__(message)
        self.retryable = retryable
        self.reason = reason


@attrs.define
class Backoff:
    """The wait before each retry; call :meth:`next_delay` once per failed attempt."""

    rng: random.Random
    initial: float = INITIAL_INTERVAL
    multiplier: float = MULTIPLIER
    randomization_factor: float = RANDOMIZATION_FACTOR
    max_interval: float = MAX_INTERVAL
    _current: float = attrs.field(init=False)

    def __attrs_post_init__(self) -> None:
        self._current = self.initial

    def next_delay(self) -> float:
        """Seconds to wait, measured from the start of the attempt that just failed."""
        delta = self.randomization_factor * self._current
        delay = self._current - delta + self.rng.random() * 2 * delta
        if self._current >= self.max_interval / self.multiplier:
            self._current = self.max_interval
        else:
            self._current *= self.multiplier
        return delay


def failure_reason(status_code: int) -> str:
    """The metric ``reason`` for an HTTP status: client or server error class, else other."""
    if 400 <= status_code < 500:
        return REASON_CLIENT_ERROR
    if 500 <= status_code < 600:
        return REASON_SERVER_ERROR
    return REASON_OTHER


def check_status(
    status_code: int, body: bytes = b"", retry_codes: tuple[int, ...] = ()
) -> NotifyError | None:
    """None for 2xx; else the error: retryable for 5xx and ``retry_codes``, permanent otherwise."""
    if status_code // 100 == 2:
        return None
    retryable = status_code // 100 == 5 or status_code in retry_codes
    message = f"unexpected status code {status_code}"
    details = body[:BODY_EXCERPT_BYTES].decode("utf-8", errors="replace")
    if details:
        message = f"{message}: {details}"
    return NotifyError(message, retryable=retryable, reason=failure_reason(status_code))
