"""A big store is counted and replayed in slices, so scrapes and reloads do not stall."""

from __future__ import annotations

import trio
import trio.testing

from daemon import instance as instance_mod
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
