"""The event-loop pause probe reports how long a blocking stretch held the loop."""

from __future__ import annotations

import time

import pytest
import structlog
import trio
import trio.testing

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


async def test_slow_step_is_logged_with_its_cpu_time() -> None:
    """A step that burns 60 ms of CPU is logged with its task's name and that CPU time."""
    with structlog.testing.capture_logs() as logs:
        async with trio.open_nursery() as nursery:
            await nursery.start(loop_monitor.run_probe)
            await trio.sleep(0.02)
            # Counted in CPU time: on a shared machine 60 ms of wall time may be 15 of CPU.
            spin_until = time.thread_time() + 0.06
            while time.thread_time() < spin_until:
                pass  # the busy step under test
            await trio.sleep(0.02)
            nursery.cancel_scope.cancel()
    slow = [e for e in logs if e["event"] == "loop.slow_step"]
    assert slow, logs
    assert "test_slow_step_is_logged_with_its_cpu_time" in slow[0]["task"], slow
    # At most the CPU since the probe last ran (one 5 ms interval of other steps).
    assert 0.06 <= slow[0]["cpu_seconds"] <= slow[0]["seconds"] + 0.01


async def test_the_task_holding_the_loop_is_named() -> None:
    """A task (not the probe's caller) that blocks the loop 80 ms is named in the log."""

    async def blocker() -> None:
        time.sleep(0.08)  # the stall under test: holds the loop, lets the watch thread run

    with structlog.testing.capture_logs() as logs:
        async with trio.open_nursery() as nursery:
            await nursery.start(loop_monitor.run_probe)
            await trio.sleep(0.02)
            nursery.start_soon(blocker, name="the-blocker")
            # Past the stall's end, so the probe wakes (and reports) before the cancel.
            await trio.sleep(0.15)
            nursery.cancel_scope.cancel()
    slow = [e for e in logs if e["event"] == "loop.slow_step"]
    assert [e["task"] for e in slow] == ["the-blocker"], logs
    assert slow[0]["seconds"] >= 0.07


async def test_no_hook_runs_on_task_steps(monkeypatch: pytest.MonkeyPatch) -> None:
    """The monitor installs no trio instrument: task steps pay nothing for it."""

    def refuse(instrument: object) -> None:
        raise AssertionError("an instrument was installed")

    monkeypatch.setattr(trio.lowlevel, "add_instrument", refuse)
    async with trio.open_nursery() as nursery:
        await nursery.start(loop_monitor.run_probe)
        await trio.sleep(0.02)
        nursery.cancel_scope.cancel()


async def test_task_steps_cost_no_cpu_clock_reads(monkeypatch: pytest.MonkeyPatch) -> None:
    """Ordinary task steps never read the thread's CPU clock (a system call per step)."""
    reads = 0
    real = time.thread_time

    def counting() -> float:
        nonlocal reads
        reads += 1
        return real()

    monkeypatch.setattr(loop_monitor.time, "thread_time", counting)
    async with trio.open_nursery() as nursery:
        await nursery.start(loop_monitor.run_probe)
        started = trio.current_time()
        for _ in range(2_000):
            await trio.lowlevel.checkpoint()
        elapsed = trio.current_time() - started
        nursery.cancel_scope.cancel()
    # One read per probe wake-up (every 5 ms) and one at start, none per step.
    assert reads <= 3 + elapsed / loop_monitor.PROBE_INTERVAL


def test_the_interval_grows_only_after_an_idle_spell_and_drops_at_any_work() -> None:
    """At 5 ms the probe stays until IDLE_AFTER passes without work, light periodic work
    (a gossip packet every 200 ms) included; then the interval doubles up to
    PROBE_IDLE_INTERVAL, and work (a held loop, or the loop busy for IDLE_SHARE of a long
    interval) brings it back to 5 ms at once."""
    step, top = loop_monitor.PROBE_INTERVAL, loop_monitor.PROBE_IDLE_INTERVAL
    pace = loop_monitor.ProbePace(0.0)
    now = 0.0
    for k in range(1, int(loop_monitor.IDLE_AFTER / step)):
        now = k * step
        # 0.4 ms of CPU every 200 ms: 8% of that wake-up's own 5 ms, 0.2% of the time.
        pace.woke(now, 0.0, 0.0004 if k % 40 == 0 else 0.00002)
        assert pace.interval == step
    now += 2 * step
    pace.woke(now, 0.0, 0.00002)
    assert pace.interval == 2 * step
    for _ in range(10):
        now += pace.interval
        pace.woke(now, 0.0, 0.00002)
    assert pace.interval == top
    pace.woke(now + top, 0.0, 0.06 * top)  # busy for 6% of a long interval
    assert pace.interval == step
    busy = loop_monitor.ProbePace(0.0)
    for k in range(1, 3 * int(loop_monitor.IDLE_AFTER / step)):
        busy.woke(k * step, 0.0, 0.1 * step)  # the loop on the CPU 10% of the time
        assert busy.interval == step
    held = loop_monitor.ProbePace(0.0)
    held.interval = top
    held.woke(1.0, loop_monitor.SUSPECT_AFTER, 0.0)  # held without CPU (a blocking call)
    assert held.interval == step


async def test_an_idle_loop_is_probed_rarely_and_a_busy_one_closely(
    autojump_clock: trio.testing.MockClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An idle loop's probe wakes about ten times a second once idle for IDLE_AFTER (it
    woke 200 times: 3.1% of a core for an idle daemon), and every 5 ms again once the
    loop works."""
    wakes: list[float] = []
    monkeypatch.setattr(
        loop_monitor, "record_pause", lambda late: wakes.append(trio.current_time())
    )
    async with trio.open_nursery() as nursery:
        await nursery.start(loop_monitor.run_probe)
        await trio.sleep(10)
        idle = [t for t in wakes if t > loop_monitor.IDLE_AFTER + 1]
        assert (
            len(idle) <= 1.2 * (10 - loop_monitor.IDLE_AFTER - 1) / loop_monitor.PROBE_IDLE_INTERVAL
        )
        # Work: the loop thread on the CPU for 20 ms (a fifth of the idle interval).
        spin_until = time.thread_time() + 0.02
        while time.thread_time() < spin_until:
            pass
        await trio.sleep(loop_monitor.PROBE_IDLE_INTERVAL)
        woken = len(wakes)
        await trio.sleep(0.5)
        assert len(wakes) - woken >= 0.5 / loop_monitor.PROBE_INTERVAL - 2
        nursery.cancel_scope.cancel()
