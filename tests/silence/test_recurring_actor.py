"""The recurring-silence actor on trio's virtual clock."""

from __future__ import annotations

import zoneinfo
from typing import Any

import attrs
import pytest
import trio
import trio.testing

from daemon.clock import NS_PER_SECOND, TrioClock
from daemon.silence import recurring_actor
from daemon.silence.recurring import RecurrenceSpec
from daemon.silence.recurring_actor import RecurringSilences
from daemon.silence.state import Plan, Silences
from daemon.silence.windows import LOOKAHEAD, plan_new
from tests.silence.test_windows import TEMPLATE
from tests.silence.test_windows import at as paris_or_shanghai

S = NS_PER_SECOND
HOUR = 3600 * S
PARIS = zoneinfo.ZoneInfo("Europe/Paris")


def at(text: str) -> int:
    return paris_or_shanghai(text, PARIS)


async def test_actor_writes_each_window_before_it_opens_across_dst(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """Over 10 days spanning the spring DST change, every 02:30 window exists before it opens."""
    clock = TrioClock(at("2026-03-25T12:00:00"))
    store = Silences()
    commits: list[Plan] = []

    async def commit(plan: Plan) -> None:
        commits.append(plan)
        store.apply(plan)

    spec = RecurrenceSpec("r", "30 2 * * *", 2 * HOUR, "Europe/Paris", clock.now())
    store.apply(plan_new(store, TEMPLATE, spec, clock.now()))
    with trio.fail_after(30 * 24 * 3600):
        async with trio.open_nursery() as nursery:
            await nursery.start(RecurringSilences(store, commit, clock).run)
            await trio.sleep(10 * 24 * 3600)
            nursery.cancel_scope.cancel()
    starts = sorted(s.starts_at for s in store)
    # 10 days of windows plus the next one; 29 March has no 02:30 (it fires at 03:30 CEST).
    assert starts[:6] == [
        at("2026-03-26T02:30:00"),
        at("2026-03-27T02:30:00"),
        at("2026-03-28T02:30:00"),
        at("2026-03-29T03:30:00"),
        at("2026-03-30T02:30:00"),
        at("2026-03-31T02:30:00"),
    ]
    assert len(starts) == 11
    for s in store:
        assert s.updated_at <= s.starts_at  # written before it opened
    # Woken by its own timer, not spinning: about one write per window.
    assert len(commits) <= 12


async def test_actor_picks_up_a_recurring_silence_from_a_peer(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """A window merged from a peer is enough: the actor continues that recurring silence."""
    clock = TrioClock(at("2026-06-01T09:00:00"))
    store = Silences()

    async def commit(plan: Plan) -> None:
        store.apply(plan)

    async with trio.open_nursery() as nursery:
        await nursery.start(RecurringSilences(store, commit, clock).run)
        peer = Silences()
        spec = RecurrenceSpec("peer", "0 12 * * *", HOUR, "Europe/Paris", clock.now())
        peer.apply(plan_new(peer, TEMPLATE, spec, clock.now()))
        store.merge_bytes(peer.marshal(), clock.now())
        await trio.sleep(2 * 24 * 3600 + LOOKAHEAD / S)
        nursery.cancel_scope.cancel()
    assert sorted(s.starts_at for s in store)[:3] == [
        at("2026-06-01T12:00:00"),
        at("2026-06-02T12:00:00"),
        at("2026-06-03T12:00:00"),
    ]


async def test_failed_write_is_retried(autojump_clock: trio.testing.MockClock) -> None:
    """A commit that fails with OSError is retried later instead of killing the actor."""
    clock = TrioClock(at("2026-06-01T09:00:00"))
    store = Silences()
    failures = [OSError("disk full")]

    async def commit(plan: Plan) -> None:
        if failures:
            raise failures.pop()
        store.apply(plan)

    spec = RecurrenceSpec("r", "0 12 * * *", HOUR, "Europe/Paris", clock.now())
    store.apply(plan_new(store, TEMPLATE, spec, clock.now()))
    async with trio.open_nursery() as nursery:
        await nursery.start(RecurringSilences(store, commit, clock).run)
        await trio.sleep(3600 * 4)  # 13:00: tomorrow's window is due since 12:00
        nursery.cancel_scope.cancel()
    assert not failures
    assert at("2026-06-02T12:00:00") in {s.starts_at for s in store}


async def test_idle_actor_sleeps_until_the_store_changes(
    autojump_clock: trio.testing.MockClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Without recurring silences the actor does not wake on a timer (1000 idle tenants)."""
    clock = TrioClock(at("2026-06-01T09:00:00"))
    store = Silences()
    wakes: list[int] = []
    real_specs = recurring_actor.specs

    def counting_specs(store: Silences) -> Any:
        wakes.append(clock.now())
        return real_specs(store)

    async def commit(plan: Plan) -> None:
        store.apply(plan)

    monkeypatch.setattr(recurring_actor, "specs", counting_specs)
    async with trio.open_nursery() as nursery:
        await nursery.start(RecurringSilences(store, commit, clock).run)
        await trio.sleep(24 * 3600)
        nursery.cancel_scope.cancel()
    assert len(wakes) == 1


async def test_many_recurring_silences_are_planned_in_slices(
    autojump_clock: trio.testing.MockClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Planning 200 recurring silences yields to the event loop between slices."""
    clock = TrioClock(at("2026-06-01T09:00:00"))
    store = Silences()
    for i in range(200):
        spec = RecurrenceSpec(f"r{i}", f"{i % 60} 12 * * *", HOUR, "Europe/Paris", clock.now())
        store.apply(plan_new(store, TEMPLATE, spec, clock.now()))
    checkpoints = 0
    real_checkpoint = trio.lowlevel.checkpoint

    async def counting_checkpoint() -> None:
        nonlocal checkpoints
        checkpoints += 1
        await real_checkpoint()

    async def commit(plan: Plan) -> None:
        store.apply(plan)

    monkeypatch.setattr(recurring_actor.trio.lowlevel, "checkpoint", counting_checkpoint)
    async with trio.open_nursery() as nursery:
        await nursery.start(RecurringSilences(store, commit, clock).run)
        await trio.sleep(4 * 3600)  # past 12:00: each writes tomorrow's window
        nursery.cancel_scope.cancel()
    assert checkpoints >= 3  # 200 recurring silences, 50 a slice
    assert len(store) == 400


def test_only_recurring_records_wake_the_recurring_listener() -> None:
    """Plain silences do not call it; a recurring record, or one replacing a recurring
    record (a peer's copy without the field), does, whether written or merged."""
    now = at("2026-06-01T09:00:00")
    store = Silences()
    woken: list[int] = []
    unsubscribe = store.subscribe_recurring(lambda: woken.append(1))
    store.set(attrs.evolve(TEMPLATE, starts_at=now, ends_at=now + HOUR), now)
    assert woken == []
    spec = RecurrenceSpec("r", "0 12 * * *", HOUR, "Europe/Paris", now)
    plan = plan_new(store, TEMPLATE, spec, now)
    store.apply(plan)
    assert len(woken) == len(plan.records) > 0
    window, expires_at = plan.records[0]
    stripped = attrs.evolve(window, recurrence=None, updated_at=window.updated_at + 1)
    assert store.merge(stripped, expires_at, now)
    assert len(woken) == len(plan.records) + 1
    # Now plain: a later plain record for that ID no longer concerns the actor.
    assert store.merge(attrs.evolve(stripped, updated_at=stripped.updated_at + 1), expires_at, now)
    assert len(woken) == len(plan.records) + 1
    unsubscribe()
    store.apply(plan_new(store, TEMPLATE, RecurrenceSpec("q", "0 13 * * *", HOUR, "UTC", now), now))
    assert len(woken) == len(plan.records) + 1
