"""The ingest fast paths of dispatch behave exactly like the plain definitions."""

from __future__ import annotations

import contextvars
from collections.abc import Callable

import pytest
import trio
import trio.testing
from hypothesis import given
from hypothesis import strategies as st
from structlog.testing import capture_logs

from daemon.clock import TrioClock
from daemon.config.model import SECOND, Route
from daemon.dispatch.actor import (
    FLUSH_STARTS_PER_SLICE,
    RouteGroupActor,
    deliver_now,
    flushes_started,
)
from daemon.dispatch.route import RouteNode
from daemon.matcher import parse_matcher

from .conftest import route_root, virtual_dispatch
from .fakes import T0, RecordingNotifier, alert

_names = st.sampled_from(["a", "b", "c", "alertname"])
_labels = st.dictionaries(_names, st.sampled_from(["", "x", "y"]), max_size=4)


@given(
    st.lists(_names, max_size=3).map(tuple),
    st.booleans(),
    _labels,
    _labels,
)
def test_group_values_equal_exactly_when_group_keys_are(
    group_by: tuple[str, ...], group_by_all: bool, a: dict[str, str], b: dict[str, str]
) -> None:
    """Two label sets share a group-values tuple iff they share a group key."""
    node = route_root(group_by=group_by, group_by_all=group_by_all)
    same_values = node.group_values(a) == node.group_values(b)
    same_key = node.group_key(node.group_labels(a)) == node.group_key(node.group_labels(b))
    assert same_values == same_key


async def test_expedited_group_flushes_ahead_of_waiting_groups(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """An expedited group flushes at once, ahead of older groups still in group_wait."""
    async with virtual_dispatch(route_root()) as run:
        run.ingest("A")
        await trio.sleep(1)
        # B's startsAt is older than group_wait: its deadline (now) precedes A's.
        run.ingest("B")
        run.ingest("C", start_offset=-10)
        await run.sleep_until(4.5)
    assert [(c.at, c.names) for c in run.rec.calls] == [
        (1.0, ["C"]),
        (3.0, ["A"]),
        (4.0, ["B"]),
    ]


async def test_expedited_group_does_not_tick_again_at_its_old_deadline(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """After an expedited flush, the superseded group_wait deadline causes no extra flush."""
    async with virtual_dispatch(route_root()) as run:
        run.ingest("A")
        await trio.sleep(1)
        run.ingest("A", start_offset=-10, instance="2")
        await run.sleep_until(14)
    assert [c.at for c in run.rec.calls] == [1.0, 7.0, 13.0]


async def test_batch_of_many_groups_all_flush_once(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """A thousand alerts in 100 groups posted at once give 100 flushes of 10 alerts each."""
    async with virtual_dispatch(route_root()) as run:
        for i in range(1000):
            run.ingest(f"G{i % 100:03d}", instance=str(i))
        await run.sleep_until(4)
        assert run.dispatcher.group_count() == 100
    assert [c.at for c in run.rec.calls] == [3.0] * 100
    # trio runs the flush tasks in an unspecified order: compare as a set.
    assert sorted(c.names[0] for c in run.rec.calls) == [f"G{g:03d}" for g in range(100)]
    assert {len(c.alerts) for c in run.rec.calls} == {10}


async def test_removed_group_is_recreated_with_a_fresh_group_wait(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """Maintenance drops an emptied group; the same labels later make a new group."""
    async with virtual_dispatch(route_root(), deadline=200) as run:
        run.ingest("A", end_offset=1)
        await run.sleep_until(31)
        assert run.dispatcher.group_count() == 0
        run.ingest("A")
        await run.sleep_until(35)
    assert [c.at for c in run.rec.calls] == [3.0, 34.0]


async def test_group_creation_is_logged_once_per_group(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """Each new group logs group.created with its route id and key, batched or not."""
    with capture_logs() as logs:
        async with virtual_dispatch(route_root()) as run:
            run.ingest("A")
            run.ingest("A", instance="2")
            run.ingest("B")
            await trio.sleep(1)
            run.ingest("C")
            await trio.sleep(1)
    created = [(e["route_id"], e["group_key"]) for e in logs if e["event"] == "group.created"]
    assert created == [
        ("{}", '{}:{alertname="A"}'),
        ("{}", '{}:{alertname="B"}'),
        ("{}", '{}:{alertname="C"}'),
    ]


async def test_old_alerts_arm_one_timer_entry_per_group(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """10,000 old alerts (as a reload re-feeds them) in 10 groups leave O(groups) timer
    entries in the actor's heap, not one per alert (popping those was one long step)."""
    clock = TrioClock(T0)
    actor = RouteGroupActor(route_root(), RecordingNotifier(trio.current_time()), clock)
    for i in range(10_000):
        actor._insert(alert(clock, f"G{i % 10}", start_offset=-60, instance=str(i)), clock.now())
        if i % 1_000 == 0:
            await trio.sleep(0.001)  # alerts arrive over time, in many batches
    assert actor.group_count() == 10
    assert len(actor._timers) <= 2 * 10


async def test_old_alerts_flush_their_groups_at_once(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """Old alerts still make their groups flush at once, each group once."""
    async with virtual_dispatch(route_root()) as run:
        for i in range(1_000):
            run.ingest(f"G{i % 10}", start_offset=-60, instance=str(i))
        await run.sleep_until(0.5)
    assert sorted((c.at, c.names[0], len(c.alerts)) for c in run.rec.calls) == [
        (0.0, f"G{g}", 100) for g in range(10)
    ]


async def test_delivering_task_starts_a_due_flush_of_a_sleeping_actor(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """With group_wait 0, the task that delivers a new group's alert starts its flush
    (before the actor's task runs again), and the batch's alerts all land in it."""
    async with virtual_dispatch(route_root(gw=0)) as run:
        await trio.testing.wait_all_tasks_blocked()
        before = flushes_started()
        run.ingest("A", instance="1")
        run.ingest("A", instance="2")
        deliver_now()
        assert flushes_started() == before + 1
        await run.sleep_until(1)
    assert [(c.at, len(c.alerts)) for c in run.rec.calls] == [(0.0, 2)]


async def test_many_groups_due_at_once_start_a_slice_at_a_time(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """Groups made due together start at most FLUSH_STARTS_PER_SLICE per slice in the
    delivering task; the actor starts the rest, each group flushing once."""
    async with virtual_dispatch(route_root(gw=0)) as run:
        await trio.testing.wait_all_tasks_blocked()
        before = flushes_started()
        for g in range(3 * FLUSH_STARTS_PER_SLICE):
            run.ingest(f"G{g:02d}")
        deliver_now()
        assert flushes_started() == before + FLUSH_STARTS_PER_SLICE
        await run.sleep_until(1)
    assert sorted(c.names[0] for c in run.rec.calls) == [
        f"G{g:02d}" for g in range(3 * FLUSH_STARTS_PER_SLICE)
    ]


_WHO = contextvars.ContextVar("_WHO", default="unset")


async def test_a_flush_a_poster_starts_runs_in_the_actors_context(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """A flush started by another task's delivery sees the actor's context variables
    (a tenant's receivers firewall, its log fields), not the poster's."""
    seen: list[str] = []
    _WHO.set("actor")

    def record(ctx: object) -> float:
        seen.append(_WHO.get())
        return 0.0

    async with virtual_dispatch(route_root(gw=0), delay=record) as run:
        await trio.testing.wait_all_tasks_blocked()

        async def poster() -> None:
            _WHO.set("poster")
            run.ingest("A")
            deliver_now()

        async with trio.open_nursery() as nursery:
            nursery.start_soon(poster)
        await run.sleep_until(1)
    assert seen == ["actor"]


def _branching_root() -> RouteNode:
    """A root with a continuing child, a plain child and a fallback: alerts go to one,
    two or three routes, so the batch path walks the tree (no sole actor)."""
    return RouteNode.build(
        Route(
            receiver="default",
            group_by=("alertname",),
            group_wait=2 * SECOND,
            group_interval=6 * SECOND,
            repeat_interval=20 * SECOND,
            routes=(
                Route(
                    receiver="default",
                    group_by=("team",),
                    matchers=(parse_matcher('team=~"a|b"'),),
                    continue_=True,
                    group_wait=3 * SECOND,
                    group_interval=6 * SECOND,
                    repeat_interval=20 * SECOND,
                ),
                Route(
                    receiver="default",
                    group_by=("alertname", "team"),
                    matchers=(parse_matcher("team=a"),),
                    group_wait=3 * SECOND,
                    group_interval=6 * SECOND,
                    repeat_interval=20 * SECOND,
                ),
            ),
        )
    )


_batch = st.lists(
    st.tuples(
        st.sampled_from(["A", "B", "C"]), st.sampled_from(["a", "b", "c"]), st.integers(0, 3)
    ),
    max_size=12,
)


@pytest.mark.parametrize("root", [route_root, _branching_root], ids=["sole", "tree"])
@given(batches=st.lists(_batch, min_size=1, max_size=3))
def test_ingest_many_flushes_as_one_ingest_per_alert(
    root: Callable[[], RouteNode], batches: list[list[tuple[str, str, int]]]
) -> None:
    """Batches through ``ingest_many`` give the same notifications (times, routes,
    groups, each flush's alerts in order) as the same alerts through ``ingest`` one by one."""

    async def run(many: bool) -> list[tuple[float, str, str, list[str]]]:
        async with virtual_dispatch(root()) as run:
            for batch in batches:
                alerts = [
                    alert(run.clock, name, team=team, instance=str(i)) for name, team, i in batch
                ]
                if many:
                    run.dispatcher.ingest_many(alerts)
                else:
                    for a in alerts:
                        run.dispatcher.ingest(a)
                # Off the whole seconds of the flush deadlines: an alert arriving at
                # a group's flush instant is in or out of it by trio's task order.
                await trio.sleep(0.7)
            await run.sleep_until(30)
        # Groups due at the same instant flush in trio's (randomized) task order.
        return sorted(
            (
                c.at,
                c.ctx.route_id,
                c.ctx.group_key,
                [str(sorted(a.labels.items())) for a in c.alerts],
            )
            for c in run.rec.calls
        )

    def virtual(many: bool) -> list[tuple[float, str, str, list[str]]]:
        return trio.run(run, many, clock=trio.testing.MockClock(autojump_threshold=0))

    assert virtual(True) == virtual(False)


def test_ingest_many_counts_each_alert_in_the_processing_summary() -> None:
    """The processing summary's count grows by one per routed alert (as Alertmanager's,
    which observes each alert), and its sum by the batch's time."""
    from daemon import metrics

    def count_and_sum() -> tuple[float, float]:
        (family,) = metrics.dispatcher_processing.collect()
        samples = {s.name: s.value for s in family.samples}
        name = "alertmanager_dispatcher_alert_processing_duration_seconds"
        return samples[f"{name}_count"], samples[f"{name}_sum"]

    async def main() -> None:
        async with virtual_dispatch(_branching_root()) as run:
            before = count_and_sum()
            run.dispatcher.ingest_many([alert(run.clock, "A", team=t) for t in "abcab"])
            run.dispatcher.ingest_many([])
            after = count_and_sum()
        assert after[0] - before[0] == 5
        assert after[1] > before[1]

    trio.run(main, clock=trio.testing.MockClock(autojump_threshold=0))


def test_observe_summary_many_equals_one_observe_per_amount() -> None:
    """Count and sum as ``observe`` once per amount leaves them."""
    from prometheus_client import CollectorRegistry, Summary

    from daemon import metrics

    registry = CollectorRegistry()
    one = Summary("one", "s", registry=registry)
    many = Summary("many", "s", registry=registry)
    amounts = [0.25, 0.5, 1.5, 0.0]
    for amount in amounts:
        one.observe(amount)
    metrics.observe_summary_many(many, len(amounts), sum(amounts))

    def samples(name: str) -> list[tuple[str, float]]:
        return [
            (s.name.removeprefix(name), s.value)
            for family in registry.collect()
            if family.name == name
            for s in family.samples
            if not s.name.endswith("_created")
        ]

    assert samples("many") == samples("one")
