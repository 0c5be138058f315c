"""Group commit: concurrent durable writes share one fsync, and a failed fsync fails
every writer of its batch and applies none of them."""

from __future__ import annotations

import os
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TypeVar

import pytest
import trio
import trio.testing

from daemon.persist import DurableState

T = TypeVar("T")


class FakeSync:
    """Stands in for ``os.fdatasync``: counts calls, and fails while ``failing`` is set."""

    def __init__(self) -> None:
        self.calls = 0
        self.failing = False
        self.real = os.fdatasync

    def __call__(self, fd: int) -> None:
        self.calls += 1
        if self.failing:
            raise OSError(5, "Input/output error")
        self.real(fd)


@pytest.fixture
def fake_sync(monkeypatch: pytest.MonkeyPatch) -> FakeSync:
    fake = FakeSync()
    monkeypatch.setattr(os, "fdatasync", fake)
    return fake


async def _open_gated(tmp_path: Path) -> tuple[DurableState, trio.Event]:
    """A state whose first write waits at a gate, so later commits queue behind it."""
    gate = trio.Event()

    async def gated(fn: Callable[[], T]) -> T:
        await gate.wait()
        return fn()

    state = await DurableState.open(tmp_path, "silences")
    state._run = gated
    return state, gate


async def _batch_behind_first(
    writer: Callable[[int], Awaitable[None]],
    gate: trio.Event,
    queued: int,
    before: Callable[[], None],
) -> None:
    """Writer 0 starts and waits at the gate; writers 1..``queued`` queue behind it; then
    ``before`` runs and the gate opens."""
    with trio.fail_after(10):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(writer, 0)
            await trio.testing.wait_all_tasks_blocked()
            for k in range(1, queued + 1):
                nursery.start_soon(writer, k)
            await trio.testing.wait_all_tasks_blocked()
            before()
            gate.set()


async def test_concurrent_commits_share_one_fsync(tmp_path: Path, fake_sync: FakeSync) -> None:
    """Ten writers arriving while a write is in flight are written with one fsync, and
    each one's change is applied only once its record is on disk."""
    state, gate = await _open_gated(tmp_path)
    applied: list[tuple[int, int]] = []
    done: list[int] = []

    async def writer(k: int) -> None:
        await state.commit([b"r%d" % k], lambda: applied.append((k, fake_sync.calls)))
        done.append(k)

    def nothing_yet() -> None:
        assert applied == [] and done == []

    await _batch_behind_first(writer, gate, 10, nothing_yet)
    assert fake_sync.calls == 2
    # Writer 0 went alone (fsync 1); the ten queued behind it shared fsync 2.
    assert sorted(applied) == [(0, 1)] + [(k, 2) for k in range(1, 11)]
    loaded = await state.load()
    assert sorted(loaded.records) == sorted(b"r%d" % k for k in range(11))
    await state.aclose()


async def test_failed_fsync_fails_the_whole_batch_and_applies_nothing(
    tmp_path: Path, fake_sync: FakeSync
) -> None:
    """When the shared fsync fails, every writer of that batch gets the error, none of
    their changes is applied or left in the journal, and a later commit still works."""
    state, gate = await _open_gated(tmp_path)
    applied: list[int] = []
    errors: list[int] = []

    async def writer(k: int) -> None:
        try:
            await state.commit([b"r%d" % k], lambda: applied.append(k))
        except OSError:
            errors.append(k)

    def fail() -> None:
        fake_sync.failing = True

    await _batch_behind_first(writer, gate, 4, fail)
    assert applied == []
    assert sorted(errors) == [0, 1, 2, 3, 4]
    fake_sync.failing = False
    await state.commit([b"after"], lambda: applied.append(99))
    assert applied == [99]
    loaded = await state.load()
    assert list(loaded.records) == [b"after"]
    await state.aclose()
