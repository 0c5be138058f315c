"""Stale RE2 sets of the silence index are rebuilt once writes pause, off the flush path."""

from __future__ import annotations

from collections.abc import Callable

import attrs
import pytest
import trio
import trio.testing

import daemon.silence.index as index_module
from daemon.clock import NS_PER_SECOND
from daemon.matcher import Matcher, MatchType
from daemon.silence.index import MuteIndex, _Chunk
from daemon.silence.index_warmer import QUIET_SECONDS, warm_silence_index
from daemon.silence.model import Silence
from daemon.silence.state import Silences

S = NS_PER_SECOND
T0 = 1_767_225_600 * S


def regex_silence(k: int) -> Silence:
    m = Matcher.create(MatchType.REGEXP, "instance", f"db-{k}-.*")
    return Silence(f"s{k}", (m,), T0, T0 + 3600 * S)


def test_warm_step_rebuilds_each_stale_chunk_once(monkeypatch: pytest.MonkeyPatch) -> None:
    index = MuteIndex()
    for k in range(300):  # two chunks of the one name
        index.add(regex_silence(k))
    assert index.warm_step() is True
    assert index.warm_step() is True
    assert index.warm_step() is True  # the name's range filter
    assert index.warm_step() is False

    def refuse(self: _Chunk) -> None:
        raise AssertionError("a look-up rebuilt a set")

    def refuse_filter(chunks: list[_Chunk]) -> None:
        raise AssertionError("a look-up built a range filter")

    monkeypatch.setattr(_Chunk, "rebuild", refuse)
    monkeypatch.setattr(index_module, "_filter_of", refuse_filter)
    assert index.candidates({"instance": "db-7-x"}) == {"s7"}
    assert index.candidates({"instance": "host-7"}) == set()


class FakeSilences:
    """Counts warm-ups (two stale sets each time) and when they ran."""

    def __init__(self) -> None:
        self.listeners: list[Callable[[], None]] = []
        self.warmed: list[float] = []
        self.stale = 0

    def subscribe_changes(self, listener: Callable[[], None]) -> Callable[[], None]:
        self.listeners.append(listener)
        return lambda: self.listeners.remove(listener)

    def change(self) -> None:
        self.stale = 2
        for listener in self.listeners:
            listener()

    def warm_index(self, now: int) -> bool:
        if not self.stale:
            return False
        self.stale -= 1
        self.warmed.append(trio.current_time())
        return True


async def test_a_burst_of_changes_is_warmed_once_after_the_pause(
    autojump_clock: trio.testing.MockClock,
) -> None:
    fake = FakeSilences()
    async with trio.open_nursery() as nursery:
        await nursery.start(warm_silence_index, fake, lambda: T0)
        start = trio.current_time()
        for _ in range(5):  # a write every 10 ms: one pause at the end
            fake.change()
            await trio.sleep(0.01)
        await trio.sleep(1)
        assert len(fake.warmed) == 2
        assert fake.warmed[0] >= start + 0.04 + QUIET_SECONDS
        fake.change()
        await trio.sleep(1)
        assert len(fake.warmed) == 4
        nursery.cancel_scope.cancel()
    assert fake.listeners == []


async def test_the_store_is_indexed_and_warm_soon_after_writes(
    autojump_clock: trio.testing.MockClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = Silences()
    async with trio.open_nursery() as nursery:
        await nursery.start(warm_silence_index, store, lambda: T0 + S)
        ids = [store.set(attrs.evolve(regex_silence(k), id=""), T0) for k in range(10)]
        # Indexed at the writes, but the RE2 set waits for the pause in them.
        assert store._live._chunks["instance"][0].dirty
        await trio.sleep(2 * QUIET_SECONDS)
        nursery.cancel_scope.cancel()

    def refuse(self: _Chunk) -> None:
        raise AssertionError("a look-up rebuilt a set")

    monkeypatch.setattr(_Chunk, "rebuild", refuse)
    assert not store._live._chunks["instance"][0].dirty
    assert store.mutes({"instance": "db-3-x"}, 1, T0 + 2 * S) == [ids[3]]
    assert store.mutes({"instance": "host-3"}, 2, T0 + 2 * S) == []
