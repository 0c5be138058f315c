"""Shared rounds: concurrent silence and nflog writes go to the disk thread together,
one hand-off and one fsync round, and a failing file fails only its own writers."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import pytest
import trio
import trio.testing

from daemon.persist import DurableState, SyncRounds, run_in_thread

T = TypeVar("T")


class FdSync:
    """Stands in for ``os.fdatasync``: records each fd synced, and fails for ``failing``."""

    def __init__(self) -> None:
        self.synced: list[int] = []
        self.failing: set[int] = set()
        self.real = os.fdatasync

    def __call__(self, fd: int) -> None:
        self.synced.append(fd)
        if fd in self.failing:
            raise OSError(5, "Input/output error")
        self.real(fd)


@pytest.fixture
def fd_sync(monkeypatch: pytest.MonkeyPatch) -> FdSync:
    fake = FdSync()
    monkeypatch.setattr(os, "fdatasync", fake)
    return fake


def _fd(state: DurableState) -> int:
    fd = state.journal._fd
    assert fd is not None
    return fd


async def _open_pair(tmp_path: Path) -> tuple[SyncRounds, DurableState, DurableState, trio.Event]:
    """Silences and nflog on shared rounds whose hand-off waits at a gate."""
    gate = trio.Event()

    async def gated(fn: Callable[[], T]) -> T:
        await gate.wait()
        return await run_in_thread(fn)

    rounds = SyncRounds(gated)
    silences = await DurableState.open(tmp_path, "silences", rounds=rounds)
    nflog = await DurableState.open(tmp_path, "nflog", rounds=rounds)
    return rounds, silences, nflog, gate


async def _both_waiting(
    rounds: SyncRounds,
    silences: DurableState,
    nflog: DurableState,
    gate: trio.Event,
    applied: list[bytes],
    errors: list[str],
) -> DurableState:
    """A silence commit and an nflog flush arrive while a third journal's round waits at
    the gate (a round starts as soon as a write finds none running, so writes share a
    round by arriving while one runs); then it opens. Returns that third journal."""
    held = await DurableState.open(silences.journal.directory, "held", rounds=rounds)

    async def silence() -> None:
        try:
            await silences.commit([b"silence"], lambda: applied.append(b"silence"))
        except OSError:
            errors.append("silences")

    async def entry() -> None:
        nflog.append_nowait(b"entry")
        try:
            await nflog.flush()
        except OSError:
            errors.append("nflog")

    with trio.fail_after(10):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(held.append, b"held")
            await trio.testing.wait_all_tasks_blocked()
            nursery.start_soon(silence)
            nursery.start_soon(entry)
            await trio.testing.wait_all_tasks_blocked()
            assert applied == []
            gate.set()
    return held


async def test_concurrent_silence_and_nflog_writes_share_one_round(
    tmp_path: Path, fd_sync: FdSync
) -> None:
    """A silence commit and an nflog flush waiting at the same time are written in one
    hand-off with one fsync per file, and the silence applies only after its fsync."""
    rounds, silences, nflog, gate = await _open_pair(tmp_path)
    applied: list[bytes] = []
    errors: list[str] = []
    held = await _both_waiting(rounds, silences, nflog, gate, applied, errors)
    # One round for the held write, then one for both that waited.
    assert rounds.rounds == 2
    assert fd_sync.synced[0] == _fd(held)
    assert sorted(fd_sync.synced[1:]) == sorted([_fd(silences), _fd(nflog)])
    assert applied == [b"silence"] and errors == []
    assert list((await silences.load()).records) == [b"silence"]
    assert list((await nflog.load()).records) == [b"entry"]
    await silences.aclose()
    await nflog.aclose()


async def test_failed_nflog_fsync_fails_only_the_nflog_write(
    tmp_path: Path, fd_sync: FdSync
) -> None:
    """When the nflog's fsync fails in a shared round, the silence in that round is
    still durable and applied, and only the nflog flush fails, keeping its entry queued."""
    rounds, silences, nflog, gate = await _open_pair(tmp_path)
    fd_sync.failing.add(_fd(nflog))
    applied: list[bytes] = []
    errors: list[str] = []
    await _both_waiting(rounds, silences, nflog, gate, applied, errors)
    assert applied == [b"silence"] and errors == ["nflog"]
    assert nflog.pending == 1
    fd_sync.failing.clear()
    await nflog.flush()
    # The nflog is not cut back after a failed fsync (replay is idempotent), so the
    # retried entry may stand twice.
    assert set((await nflog.load()).records) == {b"entry"}
    assert list((await silences.load()).records) == [b"silence"]
    await silences.aclose()
    await nflog.aclose()


async def test_failed_silence_fsync_fails_only_the_silence_commit(
    tmp_path: Path, fd_sync: FdSync
) -> None:
    """When the silences' fsync fails in a shared round, the commit is not applied and
    its record is cut from the journal, while the nflog entry of that round is durable."""
    rounds, silences, nflog, gate = await _open_pair(tmp_path)
    fd_sync.failing.add(_fd(silences))
    applied: list[bytes] = []
    errors: list[str] = []
    await _both_waiting(rounds, silences, nflog, gate, applied, errors)
    assert applied == [] and errors == ["silences"]
    fd_sync.failing.clear()
    assert list((await silences.load()).records) == []
    assert list((await nflog.load()).records) == [b"entry"]
    await silences.aclose()
    await nflog.aclose()


async def test_cancelled_before_the_round_withdraws_the_write(tmp_path: Path) -> None:
    """A silence commit cancelled while its round waits to start is withdrawn: nothing
    is written or applied, and the next commit goes through alone."""
    rounds, silences, nflog, gate = await _open_pair(tmp_path)
    applied: list[bytes] = []
    with trio.fail_after(10):
        async with trio.open_nursery() as nursery:

            async def commit() -> None:
                await silences.commit([b"gone"], lambda: applied.append(b"gone"))

            nursery.start_soon(commit)
            await trio.testing.wait_all_tasks_blocked()
            nursery.cancel_scope.cancel()
    gate.set()
    await silences.commit([b"kept"], lambda: applied.append(b"kept"))
    assert applied == [b"kept"]
    assert list((await silences.load()).records) == [b"kept"]
    assert rounds.rounds == 1
    await silences.aclose()
    await nflog.aclose()
