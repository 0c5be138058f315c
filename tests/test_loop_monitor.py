"""The event-loop pause probe reports how long a blocking stretch held the loop."""

from __future__ import annotations

import time

import trio

from daemon import loop_monitor
from daemon.metrics import REGISTRY


def _sample(name: str) -> float:
    return REGISTRY.get_sample_value(name) or 0.0


def _over_100ms() -> float:
    below = REGISTRY.get_sample_value("tocsin_event_loop_pause_seconds_bucket", {"le": "0.1"})
    return _sample("tocsin_event_loop_pause_seconds_count") - (below or 0.0)


async def test_a_blocking_stretch_shows_as_a_pause() -> None:
    """A 150 ms time.sleep on the loop is recorded as a pause of at least 140 ms."""
    count_before = _sample("tocsin_event_loop_pause_seconds_count")
    slow_before = _over_100ms()
    async with trio.open_nursery() as nursery:
        await nursery.start(loop_monitor.run_probe)
        await trio.sleep(0.02)
        time.sleep(0.15)  # the stall under test
        await trio.sleep(0.02)
        nursery.cancel_scope.cancel()
    assert _sample("tocsin_event_loop_max_pause_seconds") >= 0.14
    assert _sample("tocsin_event_loop_pause_seconds_count") > count_before + 2
    assert _over_100ms() >= slow_before + 1
