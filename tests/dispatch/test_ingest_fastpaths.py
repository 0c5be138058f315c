"""The ingest fast paths of dispatch behave exactly like the plain definitions."""

from __future__ import annotations

import trio
import trio.testing
from hypothesis import given
from hypothesis import strategies as st
from structlog.testing import capture_logs

from daemon.clock import TrioClock
from daemon.config.model import SECOND, Route
from daemon.dispatch.route import RouteNode

from .fakes import T0, RecordingNotifier, alert, running_dispatcher

S = SECOND

_names = st.sampled_from(["a", "b", "c", "alertname"])
_labels = st.dictionaries(_names, st.sampled_from(["", "x", "y"]), max_size=4)


def _node(group_by: tuple[str, ...] = ("alertname",), group_by_all: bool = False) -> RouteNode:
    return RouteNode.build(
        Route(
            receiver="default",
            group_by=group_by,
            group_by_all=group_by_all,
            group_wait=3 * S,
            group_interval=6 * S,
            repeat_interval=20 * S,
        )
    )


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
    node = _node(group_by, group_by_all)
    same_values = node.group_values(a) == node.group_values(b)
    same_key = node.group_key(node.group_labels(a)) == node.group_key(node.group_labels(b))
    assert same_values == same_key


async def test_expedited_group_flushes_ahead_of_waiting_groups(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """An expedited group flushes at once, ahead of older groups still in group_wait."""
    with trio.fail_after(100):
        t0 = trio.current_time()
        clock = TrioClock(T0)
        rec = RecordingNotifier(t0)
        async with running_dispatcher(_node(), {"default": rec}, clock) as d:
            d.ingest(alert(clock, "A"))
            await trio.sleep(1)
            # B's startsAt is older than group_wait: its deadline (now) precedes A's.
            d.ingest(alert(clock, "B"))
            d.ingest(alert(clock, "C", start_offset=-10))
            await trio.sleep_until(t0 + 4.5)
        assert [(c.at, c.names) for c in rec.calls] == [
            (1.0, ["C"]),
            (3.0, ["A"]),
            (4.0, ["B"]),
        ]


async def test_expedited_group_does_not_tick_again_at_its_old_deadline(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """After an expedited flush, the superseded group_wait deadline causes no extra flush."""
    with trio.fail_after(100):
        t0 = trio.current_time()
        clock = TrioClock(T0)
        rec = RecordingNotifier(t0)
        async with running_dispatcher(_node(), {"default": rec}, clock) as d:
            d.ingest(alert(clock, "A"))
            await trio.sleep(1)
            d.ingest(alert(clock, "A", start_offset=-10, instance="2"))
            await trio.sleep_until(t0 + 14)
        assert [c.at for c in rec.calls] == [1.0, 7.0, 13.0]


async def test_batch_of_many_groups_all_flush_once(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """A thousand alerts in 100 groups posted at once give 100 flushes of 10 alerts each."""
    with trio.fail_after(100):
        t0 = trio.current_time()
        clock = TrioClock(T0)
        rec = RecordingNotifier(t0)
        async with running_dispatcher(_node(), {"default": rec}, clock) as d:
            for i in range(1000):
                d.ingest(alert(clock, f"G{i % 100:03d}", instance=str(i)))
            await trio.sleep_until(t0 + 4)
            assert d.group_count() == 100
        assert [c.at for c in rec.calls] == [3.0] * 100
        # trio runs the flush tasks in an unspecified order: compare as a set.
        assert sorted(c.names[0] for c in rec.calls) == [f"G{g:03d}" for g in range(100)]
        assert {len(c.alerts) for c in rec.calls} == {10}


async def test_removed_group_is_recreated_with_a_fresh_group_wait(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """Maintenance drops an emptied group; the same labels later make a new group."""
    with trio.fail_after(200):
        t0 = trio.current_time()
        clock = TrioClock(T0)
        rec = RecordingNotifier(t0)
        async with running_dispatcher(_node(), {"default": rec}, clock) as d:
            d.ingest(alert(clock, "A", end_offset=1))
            await trio.sleep_until(t0 + 31)
            assert d.group_count() == 0
            d.ingest(alert(clock, "A"))
            await trio.sleep_until(t0 + 35)
        assert [c.at for c in rec.calls] == [3.0, 34.0]


async def test_group_creation_is_logged_once_per_group(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """Each new group logs group.created with its route id and key, batched or not."""
    with trio.fail_after(100), capture_logs() as logs:
        clock = TrioClock(T0)
        rec = RecordingNotifier(trio.current_time())
        async with running_dispatcher(_node(), {"default": rec}, clock) as d:
            d.ingest(alert(clock, "A"))
            d.ingest(alert(clock, "A", instance="2"))
            d.ingest(alert(clock, "B"))
            await trio.sleep(1)
            d.ingest(alert(clock, "C"))
            await trio.sleep(1)
    created = [(e["route_id"], e["group_key"]) for e in logs if e["event"] == "group.created"]
    assert created == [
        ("{}", '{}:{alertname="A"}'),
        ("{}", '{}:{alertname="B"}'),
        ("{}", '{}:{alertname="C"}'),
    ]
