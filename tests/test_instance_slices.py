"""A big store is counted and replayed in slices, so scrapes and reloads do not stall."""

from __future__ import annotations

import time

import pytest
import trio
import trio.testing

from daemon import instance as instance_mod
from daemon.alert import Alert
from daemon.api.backend import AlertStatus
from daemon.config.load import load_config_text
from tests.test_instance import ANCHOR, CONFIG, alert, running, samples

BIG = instance_mod.INLINE_COUNT_LIMIT + 1_000


def _active() -> float:
    return next(v for labels, v in samples("alertmanager_alerts") if labels["state"] == "active")


async def test_scrape_of_a_big_store_serves_the_last_recount(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """Above INLINE_COUNT_LIMIT a scrape reads the last recount and asks for a new one."""
    async with running() as (inst, _, _):
        inst.put([alert(f"A{i}", ANCHOR) for i in range(BIG)], ANCHOR)
        _active()  # asks for a recount that sees the BIG alerts
        await trio.sleep(1)
        base = _active()
        inst.put([alert("Late", ANCHOR)], ANCHOR)
        stale = _active()  # the last recount's figure, and asks for a new one
        await trio.sleep(1)
        fresh = _active()
    assert (base, stale, fresh) == (BIG, BIG, BIG + 1)


class _StepCounter(trio.abc.Instrument):
    """Counts the scheduler steps of the instance's own task (where reloads are swapped in)."""

    def __init__(self) -> None:
        self.steps = 0

    def before_task_step(self, task: trio.lowlevel.Task) -> None:
        if task.name.endswith("Instance.run"):
            self.steps += 1


async def _reload_steps(alerts: int) -> tuple[int, int]:
    """Scheduler steps a reload takes with ``alerts`` stored, and the groups after it."""
    async with running() as (inst, _, _):
        inst.put([alert(f"A{i}", ANCHOR) for i in range(alerts)], ANCHOR)
        await trio.sleep(2)
        counter = _StepCounter()
        trio.lowlevel.add_instrument(counter)
        try:
            await inst.reload(load_config_text(CONFIG.format(receiver="second")))
        finally:
            trio.lowlevel.remove_instrument(counter)
        await trio.sleep(2)
        return counter.steps, len(inst.groups())


async def test_reload_replays_a_big_store_in_slices(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """Replaying 3 slices of alerts takes 2 more scheduler steps than 1 slice; all replayed."""
    slice_ = instance_mod.REPLAY_SLICE
    small_steps, small_groups = await _reload_steps(slice_)
    big_steps, big_groups = await _reload_steps(3 * slice_)
    assert (small_groups, big_groups) == (slice_, 3 * slice_)
    assert big_steps - small_steps >= 2


class _LongestStep(trio.abc.Instrument):
    """The longest scheduler step (real time) of the instance's alert-state recount."""

    def __init__(self) -> None:
        self.longest = 0.0
        self._started = 0.0

    def before_task_step(self, task: trio.lowlevel.Task) -> None:
        self._started = time.perf_counter()

    def after_task_step(self, task: trio.lowlevel.Task) -> None:
        if task.name.endswith("_recount_alert_states"):
            self.longest = max(self.longest, time.perf_counter() - self._started)


async def test_recount_steps_are_bounded_by_time_not_count(
    autojump_clock: trio.testing.MockClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With status look-ups of 0.3 ms each (many silences), the recount of 400 alerts
    still yields every few ms instead of after a fixed 1,000 alerts (a 120 ms step)."""
    async with running() as (inst, _, _):
        inst.put([alert(f"A{i}", ANCHOR) for i in range(400)], ANCHOR)
        await trio.sleep(1)
        real = inst.alert_status

        def slow_status(a: Alert, now: int) -> AlertStatus:
            spin_until = time.perf_counter() + 0.0003
            while time.perf_counter() < spin_until:
                pass
            return real(a, now)

        monkeypatch.setattr(inst, "alert_status", slow_status)
        monkeypatch.setattr(instance_mod, "INLINE_COUNT_LIMIT", 10)
        longest = _LongestStep()
        trio.lowlevel.add_instrument(longest)
        try:
            _active()  # asks for a recount
            await trio.sleep(1)
        finally:
            trio.lowlevel.remove_instrument(longest)
    assert 0 < longest.longest < 0.03
