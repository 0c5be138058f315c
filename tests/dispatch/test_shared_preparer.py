"""The shared intake and preparer of a trio run serve every dispatcher's actors (each
tenant's), survive the dispatcher that happened to serve them, wake an actor only for
an earlier deadline, and keep every timer."""

from __future__ import annotations

import trio
import trio.testing
from trio.lowlevel import Task

from daemon.clock import TrioClock
from daemon.dispatch.actor import PREPARE_DELAY
from daemon.dispatch.dispatcher import Dispatcher

from .conftest import route_root
from .fakes import T0, alert, running_dispatcher
from .test_dispatcher import PreparingNotifier


async def test_every_dispatcher_prepares_after_the_delay(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """Three dispatchers (three tenants) in one run: each one's arrivals are prepared
    PREPARE_DELAY after they came, by their own notifier, once."""
    t0 = trio.current_time()
    clock = TrioClock(T0)
    recs = [PreparingNotifier(t0) for _ in range(3)]
    async with (
        running_dispatcher(route_root(), {"default": recs[0]}, clock) as d0,
        running_dispatcher(route_root(), {"default": recs[1]}, clock) as d1,
        running_dispatcher(route_root(), {"default": recs[2]}, clock) as d2,
    ):
        for i, d in enumerate((d0, d1, d2)):
            d.ingest(alert(clock, f"T{i}"))
        await trio.sleep(1)
        d1.ingest(alert(clock, "late"))
        await trio.sleep(1)
    assert [r.prepared for r in recs] == [
        [(PREPARE_DELAY, ["T0"], T0 + int(PREPARE_DELAY * 1e9))],
        [
            (PREPARE_DELAY, ["T1"], T0 + int(PREPARE_DELAY * 1e9)),
            (1 + PREPARE_DELAY, ["late"], T0 + int((1 + PREPARE_DELAY) * 1e9)),
        ],
        [(PREPARE_DELAY, ["T2"], T0 + int(PREPARE_DELAY * 1e9))],
    ]


async def test_preparing_goes_on_after_the_serving_dispatcher_stops(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """The first dispatcher started serves the run's preparer; once it stops (a reload,
    a removed tenant), the other dispatcher's arrivals are still prepared."""
    t0 = trio.current_time()
    clock = TrioClock(T0)
    first, second = PreparingNotifier(t0), PreparingNotifier(t0)
    gone = Dispatcher(route_root(), {"default": first}, clock)
    kept = Dispatcher(route_root(), {"default": second}, clock)
    async with trio.open_nursery() as nursery:
        # Started first, so its actor holds the preparer.
        await nursery.start(gone.run)
        await nursery.start(kept.run)
        gone.ingest(alert(clock, "before"))
        await trio.sleep(1)
        gone.stop()
        await trio.sleep(1)
        kept.ingest(alert(clock, "after"))
        await trio.sleep(3.5)
        kept.stop()
    assert [p[1] for p in first.prepared] == [["before"]]
    # Delivered and flushed at group_wait too, by the intake's new server.
    assert [(c.at, c.names) for c in second.calls] == [(5.0, ["after"])]
    assert [(p[0], p[1]) for p in second.prepared] == [(2 + PREPARE_DELAY, ["after"])]


async def test_an_alert_arriving_during_a_long_wait_flushes_at_group_wait(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """An actor waiting for a far deadline (maintenance, 30 s) moves it when an alert
    makes a group: the group flushes at its group_wait, then at group_interval."""
    t0 = trio.current_time()
    clock = TrioClock(T0)
    rec = PreparingNotifier(t0)
    async with running_dispatcher(route_root(gw=3, gi=6), {"default": rec}, clock) as d:
        await trio.sleep(10)
        d.ingest(alert(clock, "A"))
        await trio.sleep(10)
    assert [c.at for c in rec.calls] == [13.0, 19.0]


class StepCounter(trio.abc.Instrument):
    """Counts the steps of route-group actor tasks."""

    def __init__(self) -> None:
        self.actor_steps = 0

    def before_task_step(self, task: Task) -> None:
        if "RouteGroupActor.run" in task.name:
            self.actor_steps += 1


async def test_a_post_to_many_pipelines_wakes_no_actor(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """Alerts for 20 dispatchers' groups that already exist are delivered without a
    single step of an actor task, and are in the groups right after."""
    clock = TrioClock(T0)
    recs = [PreparingNotifier(trio.current_time()) for _ in range(20)]
    async with trio.open_nursery() as nursery:
        dispatchers = [Dispatcher(route_root(gw=3), {"default": r}, clock) for r in recs]
        for d in dispatchers:
            await nursery.start(d.run)
            d.ingest(alert(clock, "A"))
        await trio.sleep(1)
        counter = StepCounter()
        trio.lowlevel.add_instrument(counter)
        for d in dispatchers:
            d.ingest(alert(clock, "A", instance="2"))
        await trio.testing.wait_all_tasks_blocked()
        trio.lowlevel.remove_instrument(counter)
        assert counter.actor_steps == 0
        for d in dispatchers:
            [group] = d.groups()
            assert len(group.alerts) == 2
        await trio.sleep(3)
        assert all([c.at for c in r.calls] == [3.0] for r in recs)
        for d in dispatchers:
            d.stop()
