"""Backoff schedule and HTTP error classification."""

from __future__ import annotations

import random

import pytest

from daemon.notify.retry import Backoff, check_status, failure_reason


class FixedRandom(random.Random):
    """A Random whose ``random()`` always returns one value."""

    def __init__(self, value: float) -> None:
        super().__init__(0)
        self.value = value

    def random(self) -> float:
        return self.value


def test_backoff_midpoint_schedule() -> None:
    """Without jitter the waits are 0.5 s growing by 1.5 and capped at 60 s."""
    b = Backoff(FixedRandom(0.5))
    delays = [b.next_delay() for _ in range(14)]
    expected = [0.5 * 1.5**i for i in range(12)] + [60.0, 60.0]
    assert delays == pytest.approx(expected)


def test_backoff_cap_jumps_to_max() -> None:
    """Once the interval reaches max/multiplier the next one is exactly the max."""
    b = Backoff(FixedRandom(0.5), initial=50.0)
    assert [b.next_delay() for _ in range(3)] == pytest.approx([50.0, 60.0, 60.0])


def test_backoff_jitter_bounds() -> None:
    """Randomisation spans ±50 % of the current interval."""
    low, high = Backoff(FixedRandom(0.0)), Backoff(FixedRandom(1.0))
    assert [low.next_delay() for _ in range(3)] == pytest.approx([0.25, 0.375, 0.5625])
    assert [high.next_delay() for _ in range(3)] == pytest.approx([0.75, 1.125, 1.6875])


def test_backoff_seeded_within_bounds() -> None:
    """With real randomness every wait stays inside its ±50 % band."""
    b = Backoff(random.Random(42))
    current = 0.5
    for _ in range(30):
        assert 0.5 * current <= b.next_delay() <= 1.5 * current
        current = min(current * 1.5, 60.0) if current < 40.0 else 60.0


def test_check_status_classes() -> None:
    """2xx succeeds, 5xx and retry codes are retryable, other codes are permanent."""
    assert check_status(200) is None
    assert check_status(204) is None
    err = check_status(503, b"busy")
    assert err is not None and err.retryable and err.reason == "serverError"
    assert str(err) == "unexpected status code 503: busy"
    err = check_status(404)
    assert err is not None and not err.retryable and err.reason == "clientError"
    assert str(err) == "unexpected status code 404"
    err = check_status(429, retry_codes=(429,))
    assert err is not None and err.retryable
    err = check_status(302)
    assert err is not None and not err.retryable and err.reason == "other"


def test_check_status_body_excerpt_is_bounded() -> None:
    """Only the first KiB of an error body lands in the error text."""
    err = check_status(400, b"x" * 5000)
    assert err is not None
    assert str(err) == "unexpected status code 400: " + "x" * 1024


def test_failure_reason() -> None:
    """Status classes map to the failed-notifications metric reasons."""
    assert [failure_reason(c) for c in (400, 499, 500, 599, 302)] == [
        "clientError",
        "clientError",
        "serverError",
        "serverError",
        "other",
    ]
