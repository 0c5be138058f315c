"""Route-group actors and the dispatcher on virtual time (spec §3.3, §3.4, §3.5)."""

from __future__ import annotations

from collections.abc import Sequence

import pytest
import trio
import trio.testing

from daemon.alert import Alert
from daemon.clock import ZERO_TIME, TrioClock
from daemon.config.model import SECOND, Route
from daemon.dispatch.actor import PREPARE_DELAY
from daemon.dispatch.dispatcher import Dispatcher
from daemon.dispatch.route import RouteNode
from daemon.matcher import parse_matchers
from daemon.notify.context import NotifyContext

from .conftest import route_root, virtual_dispatch
from .fakes import T0, RecordingNotifier, alert, running_dispatcher

S = SECOND


async def test_group_wait_then_group_interval_ticks(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """A new group flushes at group_wait, then every group_interval, whatever notify takes."""
    # Each notify takes 1 s: ticks re-armed after the flush would drift to 10 s, 17 s.
    async with virtual_dispatch(route_root(), delay=lambda ctx: 1.0) as run:
        run.ingest("A")
        await run.sleep_until(16)
    assert [c.at for c in run.rec.calls] == [3.0, 9.0, 15.0]
    first = run.rec.calls[0]
    assert first.ctx == NotifyContext(
        group_key='{}:{alertname="A"}',
        group_labels={"alertname": "A"},
        receiver="default",
        repeat_interval=20 * S,
        route_id="{}",
        now=T0 + 3 * S,
    )
    assert first.names == ["A"]
    assert first.alerts[0].ends_at == ZERO_TIME


async def test_old_starts_at_flushes_immediately(autojump_clock: trio.testing.MockClock) -> None:
    """An alert whose startsAt is older than group_wait skips the wait of a new group."""
    async with virtual_dispatch(route_root(gw=30, gi=60)) as run:
        run.ingest("A", start_offset=-31)
        run.ingest("A", start_offset=-31, instance="2")
        await run.sleep_until(61)
    assert [c.at for c in run.rec.calls] == [0.0, 60.0]
    # Both alerts of the batch were queued before the actor ran: one notification.
    assert len(run.rec.calls[0].alerts) == 2


async def test_alert_added_after_first_flush_waits_for_next_tick(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """An alert joining at 4.5 s (gw 3 s, gi 6 s) is first notified at 9 s, even if old."""
    async with virtual_dispatch(route_root(group_by=())) as run:
        run.ingest("A")
        await run.sleep_until(4.5)
        run.ingest("B", start_offset=-600)
        await run.sleep_until(10)
    assert [(c.at, c.names) for c in run.rec.calls] == [(3.0, ["A"]), (9.0, ["A", "B"])]


async def test_resolved_alert_removed_after_successful_flush(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """A resolved alert is notified once; after success the group is empty and stays quiet."""
    async with virtual_dispatch(route_root()) as run:
        run.ingest("A", end_offset=0)
        await run.sleep_until(16)
        [group] = run.dispatcher.groups()
        assert group.alerts == ()
    assert [c.at for c in run.rec.calls] == [3.0]
    assert run.rec.calls[0].alerts[0].ends_at == T0


async def test_resolved_alert_kept_after_failed_flush(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """After a failed flush the resolved alert is offered again at the next tick."""
    async with virtual_dispatch(route_root(), results=[False]) as run:
        run.ingest("A", end_offset=0)
        await run.sleep_until(16)
    assert [(c.at, c.names) for c in run.rec.calls] == [(3.0, ["A"]), (9.0, ["A"])]


async def test_empty_group_removed_by_maintenance_then_fresh_group_wait(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """An empty group is dropped at the 30 s maintenance; a new alert then waits group_wait again."""
    async with virtual_dispatch(route_root()) as run:
        run.ingest("A", end_offset=0)
        await run.sleep_until(29)
        assert len(run.dispatcher.groups()) == 1
        await run.sleep_until(31)
        assert run.dispatcher.groups() == []
        run.ingest("A")
        await run.sleep_until(35)
    # Had the old group survived, its tick at 33 s would have sent the new alert.
    assert [c.at for c in run.rec.calls] == [3.0, 34.0]


async def test_slow_flush_does_not_delay_another_group(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """While group A's notify hangs, group B of the same route still flushes on time."""

    def slow_for_a(ctx: NotifyContext) -> float:
        return 5.0 if ctx.group_labels == {"alertname": "A"} else 0.0

    async with virtual_dispatch(route_root(gw=3, gi=60), delay=slow_for_a) as run:
        run.ingest("A")
        await run.sleep_until(1)
        run.ingest("B")
        await run.sleep_until(10)
    assert [(c.at, c.names) for c in run.rec.calls] == [(3.0, ["A"]), (4.0, ["B"])]
    assert [c.names for c in run.rec.finished] == [["B"], ["A"]]


async def test_flush_deadline_is_at_least_ten_seconds_and_counts_as_failure(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """A notify running past max(group_interval, 10 s) is cancelled and treated as failed."""
    async with virtual_dispatch(
        route_root(gw=3, gi=6), delay=lambda ctx: 1000.0 if not run.rec.calls[1:] else 0.0
    ) as run:
        run.ingest("A", end_offset=0)
        await run.sleep_until(14)
    # Cancelled at 3 + 10 s; the overdue 9 s tick then runs at once, the alert kept.
    assert [c.at for c in run.rec.calls] == [3.0, 13.0]
    assert run.rec.finished == [run.rec.calls[1]]


async def test_tick_falling_inside_a_long_flush_runs_when_it_ends(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """A flush lasting 8 s (gi 6 s) delays the next tick to its end; the interval counts from there."""
    async with virtual_dispatch(
        route_root(gw=3, gi=6), delay=lambda ctx: 8.0 if len(run.rec.calls) == 1 else 0.0
    ) as run:
        run.ingest("A")
        await run.sleep_until(18)
    assert [c.at for c in run.rec.calls] == [3.0, 11.0, 17.0]


async def test_continue_routes_notify_each_receiver(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """An alert matching a continue route and a later sibling is flushed to both receivers."""
    with trio.fail_after(100):
        t0 = trio.current_time()
        clock = TrioClock(T0)
        route = Route(
            receiver="default",
            group_wait=3 * S,
            group_interval=60 * S,
            routes=(
                Route(
                    receiver="first",
                    matchers=tuple(parse_matchers('{team="b"}')),
                    continue_=True,
                    group_by=("alertname",),
                    group_wait=3 * S,
                    group_interval=60 * S,
                ),
                Route(
                    receiver="second",
                    matchers=tuple(parse_matchers('{team="b"}')),
                    group_wait=5 * S,
                    group_interval=60 * S,
                ),
            ),
        )
        notifiers = {name: RecordingNotifier(t0) for name in ("default", "first", "second")}
        async with running_dispatcher(RouteNode.build(route), notifiers, clock) as d:
            d.ingest(alert(clock, "A", team="b"))
            await trio.sleep_until(t0 + 6)
            keys = sorted((g.receiver, g.route_id, g.group_key) for g in d.groups())
        assert notifiers["default"].calls == []
        [first] = notifiers["first"].calls
        [second] = notifiers["second"].calls
        assert (first.at, first.ctx.group_key) == (3.0, '{}/{team="b"}:{alertname="A"}')
        assert (second.at, second.ctx.group_key) == (5.0, '{}/{team="b"}:{}')
        assert keys == [
            ("first", '{}/{team="b"}/0', '{}/{team="b"}:{alertname="A"}'),
            ("second", '{}/{team="b"}/1', '{}/{team="b"}:{}'),
        ]


async def test_groups_snapshot_is_sorted_and_stored_form(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """groups() shows each group's stored alerts (real endsAt) in notification order."""
    async with virtual_dispatch(route_root(group_by=())) as run:
        run.ingest("B", job="2")
        run.ingest("A", job="1")
        await trio.sleep(0.1)
        [group] = run.dispatcher.groups()
    assert group.receiver == "default"
    assert group.labels == {}
    assert [a.labels["alertname"] for a in group.alerts] == ["A", "B"]
    assert group.alerts[0].ends_at == T0 + 3600 * S


async def test_aggregation_groups_metric_counts_groups(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """group_count, which alertmanager_dispatcher_aggregation_groups serves, counts groups."""
    async with virtual_dispatch(route_root()) as run:
        run.ingest("A")
        run.ingest("B")
        run.ingest("B", instance="x")
        await trio.sleep(0.1)
        assert run.dispatcher.group_count() == 2


async def test_stop_ends_run_and_later_ingest_is_harmless(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """stop() makes run() return; ingest afterwards neither raises nor notifies."""
    with trio.fail_after(100):
        t0 = trio.current_time()
        clock = TrioClock(T0)
        rec = RecordingNotifier(t0)
        d = Dispatcher(route_root(), {"default": rec}, clock)
        async with trio.open_nursery() as nursery:
            await nursery.start(d.run)
            d.stop()
        d.ingest(alert(clock, "A"))
        await trio.sleep(10)
        assert rec.calls == []


async def test_stop_before_run_returns_at_once(autojump_clock: trio.testing.MockClock) -> None:
    """A dispatcher stopped before it ran still lets nursery.start return, then exits."""
    with trio.fail_after(100):
        d = Dispatcher(route_root(), {"default": RecordingNotifier(0.0)}, TrioClock(T0))
        d.stop()
        async with trio.open_nursery() as nursery:
            await nursery.start(d.run)


def test_missing_notifier_is_rejected() -> None:
    """Every route's receiver needs a notifier; a missing one fails at construction."""
    with pytest.raises(ValueError, match="default"):
        Dispatcher(route_root(), {}, clock=_FakeClock())


class _FakeClock:
    def now(self) -> int:
        return T0


async def test_stop_cancels_a_hanging_flush(autojump_clock: trio.testing.MockClock) -> None:
    """stop() during a notify that never returns ends run() at once, without waiting it out."""
    async with virtual_dispatch(route_root(gw=3, gi=600), delay=lambda ctx: 10_000.0) as run:
        run.ingest("A")
        await run.sleep_until(4)
    assert trio.current_time() - run.t0 == pytest.approx(4.0)
    assert len(run.rec.calls) == 1
    assert run.rec.finished == []


class _BrokenNotifier:
    async def notify(self, ctx: NotifyContext, alerts: object) -> bool:
        await trio.lowlevel.checkpoint()
        raise RuntimeError("bug in the pipeline")


async def test_notifier_bug_propagates(autojump_clock: trio.testing.MockClock) -> None:
    """An exception from a notifier is a bug: it ends the dispatcher instead of being swallowed."""
    with trio.fail_after(100):
        d = Dispatcher(route_root(), {"default": _BrokenNotifier()}, TrioClock(T0))
        with pytest.raises(BaseExceptionGroup) as info:
            async with trio.open_nursery() as nursery:
                await nursery.start(d.run)
                d.ingest(alert(TrioClock(T0), "A"))
        assert info.group_contains(RuntimeError, match="bug in the pipeline", depth=None)


class PreparingNotifier(RecordingNotifier):
    """Also records what it is asked to prepare, and when."""

    def __init__(self, t0: float) -> None:
        super().__init__(t0)
        self.prepared: list[tuple[float, list[str], int]] = []

    def prepare(self, alerts: Sequence[Alert], now: int) -> None:
        names = [a.labels["alertname"] for a in alerts]
        self.prepared.append((round(trio.current_time() - self.t0, 6), names, now))


async def test_notifier_prepares_arrivals_before_their_flush(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """Arrived alerts are handed to prepare shortly after arrival, before group_wait ends."""
    t0 = trio.current_time()
    clock = TrioClock(T0)
    rec = PreparingNotifier(t0)
    async with running_dispatcher(route_root(), {"default": rec}, clock) as dispatcher:
        dispatcher.ingest(alert(clock, "A"))
        dispatcher.ingest(alert(clock, "B"))
        await trio.sleep(1)
        dispatcher.ingest(alert(clock, "C"))
        await trio.sleep(3.5)
    assert rec.prepared == [
        (PREPARE_DELAY, ["A", "B"], T0 + int(PREPARE_DELAY * S)),
        (1 + PREPARE_DELAY, ["C"], T0 + int((1 + PREPARE_DELAY) * S)),
    ]
    assert [c.at for c in rec.calls] == [3.0, 3.0, 4.0]


async def test_alerts_flushed_at_once_are_not_prepared(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """With group_wait 0 (or an old alert expediting its group) the flush comes before
    the prepare would, so the alert is not prepared: the flush's look-ups are enough."""
    t0 = trio.current_time()
    clock = TrioClock(T0)
    rec = PreparingNotifier(t0)
    async with running_dispatcher(route_root(gw=0), {"default": rec}, clock) as dispatcher:
        dispatcher.ingest(alert(clock, "A"))
        await trio.sleep(1)
    async with running_dispatcher(route_root(), {"default": rec}, clock) as dispatcher:
        dispatcher.ingest(alert(clock, "B", start_offset=-60))
        dispatcher.ingest(alert(clock, "C"))
        await trio.sleep(1)
    assert [c.names for c in rec.calls] == [["A"], ["B"]]
    assert [names for _, names, _ in rec.prepared] == [["C"]]
