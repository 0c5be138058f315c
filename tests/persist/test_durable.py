"""The trio shell: acknowledged appends, batching, compaction under the lock, shutdown."""

from __future__ import annotations

import random
from collections.abc import AsyncIterator, Callable, Iterable
from contextlib import asynccontextmanager
from functools import partial
from pathlib import Path

import pytest
import structlog
import trio

from cluster.protowire import iter_delimited
from daemon.persist import DurableState, RecordJournal, run_in_thread, run_inline


async def open_state(
    tmp_path: Path, name: str = "silences", *, inline: bool = False
) -> DurableState:
    # Virtual-time tests run the file I/O inline: a worker thread would let autojump_clock
    # move on while the write is still in progress.
    return await DurableState.open(
        tmp_path, name, run_blocking=run_inline if inline else run_in_thread
    )


def reload(tmp_path: Path, name: str = "silences") -> tuple[bytes, ...]:
    j = RecordJournal.open(tmp_path, name)
    try:
        return j.load().records
    finally:
        j.close()


def snapshot_on_disk(tmp_path: Path, name: str = "silences") -> list[bytes]:
    return list(iter_delimited((tmp_path / name).read_bytes()))


@asynccontextmanager
async def serving(
    state: DurableState,
    snapshot: Callable[[], Iterable[bytes]] = list,
    maintenance_interval: float = 900,
    flush_interval: float | None = None,
    on_maintenance_error: Callable[[OSError], None] | None = None,
) -> AsyncIterator[None]:
    """``state.serve`` runs (and is ready) inside the block and is cancelled at its end."""
    async with trio.open_nursery() as nursery:
        await nursery.start(
            partial(
                state.serve,
                snapshot=snapshot,
                maintenance_interval=maintenance_interval,
                flush_interval=flush_interval,
                on_maintenance_error=on_maintenance_error,
            )
        )
        yield
        nursery.cancel_scope.cancel()


async def test_append_is_on_disk_when_it_returns(tmp_path: Path) -> None:
    """An awaited append is in the journal file as soon as it returns."""
    state = await open_state(tmp_path)
    assert (await state.load()).records == ()
    await state.append(b"one")
    await state.append(b"two", sync=False)
    assert reload(tmp_path) == (b"one", b"two")
    await state.aclose()
    await state.aclose()


async def test_flush_writes_queued_records_in_order(tmp_path: Path) -> None:
    """Records queued with append_nowait reach disk, in order, at the next flush."""
    state = await open_state(tmp_path)
    state.append_nowait(b"a")
    state.append_nowait(b"b")
    assert state.pending == 2
    assert reload(tmp_path) == ()
    await state.append(b"c")
    assert state.pending == 0
    assert reload(tmp_path) == (b"a", b"b", b"c")
    await state.aclose()


async def test_load_decoded_runs_the_decoder(tmp_path: Path) -> None:
    """load_decoded hands back decoded values in apply order."""
    state = await open_state(tmp_path)
    await state.append(b"1")
    await state.compact(lambda: [b"7"])
    await state.append(b"2")
    assert (await state.load_decoded(int)).records == (7, 2)
    await state.aclose()


async def test_concurrent_changes_and_compactions_lose_nothing(tmp_path: Path) -> None:
    """Changes racing compactions are all on disk afterwards: the snapshot is taken under the lock."""
    state = await open_state(tmp_path)
    memory: list[bytes] = []
    rng = random.Random(7)

    async def writer(w: int) -> None:
        for i in range(15):
            record = f"{w}-{i}".encode()
            memory.append(record)
            await state.append(record)
            if rng.random() < 0.5:
                await trio.lowlevel.checkpoint()

    async def compactor() -> None:
        for _ in range(10):
            await state.compact(lambda: list(memory))
            await trio.lowlevel.checkpoint()

    with trio.fail_after(60):
        async with trio.open_nursery() as nursery:
            for w in range(4):
                nursery.start_soon(writer, w)
            nursery.start_soon(compactor)
    await state.aclose()
    assert sorted(set(reload(tmp_path))) == sorted(memory)


async def test_compaction_keeps_records_queued_while_it_writes(tmp_path: Path) -> None:
    """A change made while the snapshot is being written is journaled after the truncation."""
    state = await open_state(tmp_path)
    memory = [b"base"]
    entered = trio.Event()

    def snapshot() -> list[bytes]:
        entered.set()
        return list(memory)

    async with trio.open_nursery() as nursery:
        nursery.start_soon(state.compact, snapshot)
        await entered.wait()
        # The compaction holds the lock and is in its worker thread now.
        memory.append(b"late")
        state.append_nowait(b"late")
    await state.flush()
    assert snapshot_on_disk(tmp_path) == [b"base"]
    assert reload(tmp_path) == (b"base", b"late")
    await state.aclose()


async def test_serve_batches_flushes_per_interval(tmp_path: Path, autojump_clock: object) -> None:
    """The flusher writes the first record at once, then at most one batch per interval."""
    state = await open_state(tmp_path, "nflog", inline=True)
    with trio.fail_after(100):
        async with serving(state, flush_interval=5.0):
            state.append_nowait(b"a")
            await trio.sleep(1)
            assert reload(tmp_path, "nflog") == (b"a",)
            state.append_nowait(b"b")
            state.append_nowait(b"c")
            await trio.sleep(1)
            assert reload(tmp_path, "nflog") == (b"a",)
            await trio.sleep(5)
            assert reload(tmp_path, "nflog") == (b"a", b"b", b"c")
    await state.aclose()


async def test_serve_compacts_every_interval_and_at_shutdown(
    tmp_path: Path, autojump_clock: object
) -> None:
    """Maintenance snapshots every interval, and once more when the service is cancelled."""
    state = await open_state(tmp_path, inline=True)
    memory = [b"s1"]
    await state.append(b"s1")
    with trio.fail_after(10_000), structlog.testing.capture_logs() as logs:
        async with serving(state, snapshot=lambda: list(memory)):
            await trio.sleep(899)
            assert not (tmp_path / "silences").exists()
            await trio.sleep(2)
            assert snapshot_on_disk(tmp_path) == [b"s1"]
            assert (tmp_path / "silences.wal").stat().st_size == 0
            memory.append(b"s2")
            await state.append(b"s2")
    assert snapshot_on_disk(tmp_path) == [b"s1", b"s2"]
    assert (tmp_path / "silences.wal").stat().st_size == 0
    assert any(e["event"] == "state.snapshot" and e.get("final") for e in logs)
    # The journal stays usable after the final snapshot.
    await state.append(b"after")
    assert reload(tmp_path) == (b"s1", b"s2", b"after")
    await state.aclose()


async def test_flusher_retries_after_write_error(
    tmp_path: Path, autojump_clock: object, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A failed batch write is logged and retried; no queued record is lost."""
    state = await open_state(tmp_path, "nflog", inline=True)
    real = state.journal.append_many
    failures = [OSError(28, "No space left on device")]

    def flaky(records: list[bytes], sync: bool = True) -> None:
        if failures:
            raise failures.pop()
        real(records, sync)

    monkeypatch.setattr(state.journal, "append_many", flaky)
    with structlog.testing.capture_logs() as logs:
        async with serving(state, flush_interval=1.0):
            state.append_nowait(b"a")
            await trio.sleep(0.5)
            assert reload(tmp_path, "nflog") == ()
            assert state.pending == 1
            await trio.sleep(1)
            assert reload(tmp_path, "nflog") == (b"a",)
            # Keep the shutdown snapshot from erasing what this test checks.
            monkeypatch.setattr(state.journal, "compact", lambda records: None)
    [event] = [e for e in logs if e["event"] == "state.write_failed"]
    assert event["state"] == "nflog" and "No space" in event["error"]
    await state.aclose()


async def test_failed_compaction_keeps_queued_records(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """If the snapshot cannot be written, queued records are still flushed to the journal."""
    state = await open_state(tmp_path)
    state.append_nowait(b"queued")

    def broken(records: list[bytes]) -> None:
        raise OSError(5, "I/O error")

    monkeypatch.setattr(state.journal, "compact", broken)
    with pytest.raises(OSError, match="I/O error"):
        await state.compact(lambda: [b"queued"])
    assert state.pending == 1
    await state.flush()
    assert reload(tmp_path) == (b"queued",)
    await state.aclose()


async def test_cancelled_appender_record_still_written(tmp_path: Path) -> None:
    """A caller cancelled while waiting for the lock leaves its record queued for the next flush."""
    state = await open_state(tmp_path)
    entered = trio.Event()
    release = trio.Event()

    def snapshot() -> list[bytes]:
        entered.set()
        return []

    async with trio.open_nursery() as nursery:

        async def slow_compaction() -> None:
            await state.compact(snapshot)
            await release.wait()

        nursery.start_soon(slow_compaction)
        await entered.wait()
        with trio.move_on_after(0) as scope:
            await state.append(b"mine")
        release.set()
    assert scope.cancelled_caught or reload(tmp_path) == (b"mine",)
    await state.flush()
    assert reload(tmp_path) == (b"mine",)
    await state.aclose()


async def test_failed_maintenance_is_reported_and_retried(
    tmp_path: Path, autojump_clock: object, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A snapshot that cannot be written calls the error hook, and the next interval tries again."""
    state = await open_state(tmp_path, inline=True)
    errors: list[OSError] = []
    real = state.journal.compact
    failures = [OSError(28, "No space left on device")]

    def flaky(records: list[bytes]) -> None:
        if failures:
            raise failures.pop()
        real(records)

    monkeypatch.setattr(state.journal, "compact", flaky)
    async with serving(
        state, snapshot=lambda: [b"s"], maintenance_interval=10, on_maintenance_error=errors.append
    ):
        await trio.sleep(11)
        assert [e.errno for e in errors] == [28]
        assert not (tmp_path / "silences").exists()
        await trio.sleep(10)
        assert snapshot_on_disk(tmp_path) == [b"s"]
    await state.aclose()
