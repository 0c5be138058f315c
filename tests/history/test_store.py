"""The trio store service: intake, batched writes, pruning timers and failures that never raise."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

import pytest
import trio
import trio.testing
from structlog.testing import capture_logs

from daemon import metrics
from daemon.clock import TrioClock
from daemon.history.query import HistoryQuery
from daemon.history.store import HistoryStore, HistoryUnavailable
from tests.history.conftest import T0, S, make_record, run_inline

HOUR = 3600 * S


def dropped(reason: str) -> float:
    value = metrics.REGISTRY.get_sample_value("tocsin_history_dropped_total", {"reason": reason})
    return value or 0.0


def pruned(reason: str) -> float:
    value = metrics.REGISTRY.get_sample_value("tocsin_history_pruned_total", {"reason": reason})
    return value or 0.0


def rows_on_disk(tmp_path: Path) -> int:
    """Rows in the store's file, read with a connection of its own (after the store closed)."""
    check = sqlite3.connect(tmp_path / "history.db")
    try:
        rows: int = check.execute("SELECT count(*) FROM history").fetchone()[0]
        return rows
    finally:
        check.close()


async def count(store: HistoryStore) -> int:
    return len((await store.query(HistoryQuery(limit=1000))).items)


async def test_started_means_open_and_queryable(tmp_path: Path) -> None:
    """nursery.start returns once history.db exists and answers queries; before that, queries refuse."""
    store = HistoryStore(tmp_path)
    with pytest.raises(HistoryUnavailable):
        await store.query(HistoryQuery())
    with trio.fail_after(10):
        async with trio.open_nursery() as nursery:
            await nursery.start(store.run)
            assert (tmp_path / "history.db").exists()
            assert (await store.query(HistoryQuery())).items == ()
            nursery.cancel_scope.cancel()
    with pytest.raises(HistoryUnavailable):
        await store.query(HistoryQuery())


async def test_records_are_written_in_batches(tmp_path: Path) -> None:
    """Records queued together reach the database (in real worker threads), none lost."""
    store = HistoryStore(tmp_path, batch_size=7, clock=TrioClock(T0))
    with trio.fail_after(10):
        async with trio.open_nursery() as nursery:
            await nursery.start(store.run)
            for i in range(50):
                store.record(make_record(T0 + i))
            await store.wait_written()
            assert await count(store) == 50
            nursery.cancel_scope.cancel()


async def test_full_queue_drops_and_counts(tmp_path: Path) -> None:
    """record() on a full queue returns at once, drops the record and counts queue_full."""
    store = HistoryStore(tmp_path, queue_size=2)
    before = dropped("queue_full")
    for i in range(5):
        store.record(make_record(T0 + i))
    assert dropped("queue_full") - before == 3


async def test_record_after_stop_is_counted_not_raised(tmp_path: Path) -> None:
    """Once the store has stopped, record() counts the loss as closed and returns normally."""
    store = HistoryStore(tmp_path, run_sync=run_inline)
    with trio.fail_after(10):
        async with trio.open_nursery() as nursery:
            await nursery.start(store.run)
            nursery.cancel_scope.cancel()
    before = dropped("closed")
    store.record(make_record())
    assert dropped("closed") - before == 1


async def test_shutdown_writes_what_is_queued(tmp_path: Path) -> None:
    """Cancelling the store still writes the records already queued before closing the file."""
    store = HistoryStore(tmp_path, run_sync=run_inline)
    with trio.fail_after(10):
        async with trio.open_nursery() as nursery:
            await nursery.start(store.run)
            for i in range(5):
                store.record(make_record(T0 + i))
            nursery.cancel_scope.cancel()
    assert rows_on_disk(tmp_path) == 5


async def test_retention_prunes_on_its_timer(
    tmp_path: Path, autojump_clock: trio.testing.MockClock
) -> None:
    """Rows older than retention disappear at the next prune tick, not before."""
    clock = TrioClock(T0)
    store = HistoryStore(
        tmp_path, retention=2 * HOUR, prune_interval=600, clock=clock, run_sync=run_inline
    )
    before = pruned("retention")
    with trio.fail_after(10 * 3600):
        async with trio.open_nursery() as nursery:
            await nursery.start(store.run)
            store.record(make_record(clock.now()))
            await store.wait_written()
            await trio.sleep(2 * 3600 - 1)
            store.record(make_record(clock.now()))
            await store.wait_written()
            await trio.sleep(599)
            # First row is now 2h+10m old but the tick at 2h was before it expired.
            assert await count(store) == 2
            await trio.sleep(3)
            assert await count(store) == 1
            assert pruned("retention") - before == 1
            nursery.cancel_scope.cancel()


async def test_size_cap_prunes_on_its_timer(
    tmp_path: Path, autojump_clock: trio.testing.MockClock
) -> None:
    """Above max_rows the oldest rows go at the next prune tick."""
    clock = TrioClock(T0)
    store = HistoryStore(tmp_path, max_rows=10, prune_interval=60, clock=clock, run_sync=run_inline)
    before = pruned("size")
    with trio.fail_after(3600):
        async with trio.open_nursery() as nursery:
            await nursery.start(store.run)
            await trio.sleep(1)  # past the tick at start
            for i in range(25):
                store.record(make_record(clock.now() + i, receiver=f"r{i}"))
            await store.wait_written()
            assert await count(store) == 25
            await trio.sleep(61)
            page = await store.query(HistoryQuery())
            assert [r.receiver for r in page.items] == [f"r{i}" for i in range(24, 14, -1)]
            assert pruned("size") - before == 15
            nursery.cancel_scope.cancel()


async def test_full_disk_loses_rows_counted_and_logged(tmp_path: Path) -> None:
    """A full database drops the batch, counts it as full, logs history.write_failed and keeps running."""
    store = HistoryStore(tmp_path, max_page_count=8, batch_size=50)
    before = dropped("full")
    with trio.fail_after(10), capture_logs() as logs:
        async with trio.open_nursery() as nursery:
            await nursery.start(store.run)
            for i in range(40):
                store.record(make_record(T0 + i, alerts={"alertname": "A", "pad": "x" * 2000}))
            await store.wait_written()
            assert dropped("full") - before == 40
            store.record(make_record(T0))
            await store.wait_written()
            assert await count(store) == 1
            nursery.cancel_scope.cancel()
    failed = [e for e in logs if e["event"] == "history.write_failed"]
    assert failed and failed[0]["reason"] == "full" and failed[0]["records"] == 40


async def test_locked_database_loses_rows_counted_and_logged(tmp_path: Path) -> None:
    """While another connection holds BEGIN EXCLUSIVE, batches are dropped as locked; after, writes resume."""
    store = HistoryStore(tmp_path, busy_timeout=0.05)
    before = dropped("locked")
    with trio.fail_after(10), capture_logs() as logs:
        async with trio.open_nursery() as nursery:
            await nursery.start(store.run)
            other = sqlite3.connect(store.path, isolation_level=None)
            other.execute("BEGIN EXCLUSIVE")
            try:
                for i in range(3):
                    store.record(make_record(T0 + i))
                await store.wait_written()
            finally:
                other.execute("ROLLBACK")
                other.close()
            assert dropped("locked") - before == 3
            store.record(make_record(T0 + 10))
            await store.wait_written()
            assert await count(store) == 1
            nursery.cancel_scope.cancel()
    assert any(e["event"] == "history.write_failed" and e["reason"] == "locked" for e in logs)


async def test_unencodable_text_loses_its_batch_only(tmp_path: Path) -> None:
    """A record whose text SQLite cannot encode (a lone surrogate) is dropped and counted; the store goes on."""
    store = HistoryStore(tmp_path, run_sync=run_inline, clock=TrioClock(T0))
    before = dropped("error")
    with trio.fail_after(10):
        async with trio.open_nursery() as nursery:
            await nursery.start(store.run)
            store.record(make_record(T0, receiver="bad\udc80"))
            await store.wait_written()
            store.record(make_record(T0))
            await store.wait_written()
            assert await count(store) == 1
            nursery.cancel_scope.cancel()
    assert dropped("error") - before == 1


class WriteLog:
    """A ``run_sync`` that runs inline and notes each database write: when, how many rows."""

    def __init__(self) -> None:
        self.writes: list[tuple[float, int]] = []

    async def __call__(self, fn: Any, *args: Any, limiter: object = None) -> Any:
        if getattr(fn, "__name__", "") == "write":
            self.writes.append((trio.current_time(), len(args[0])))
        return await run_inline(fn, *args)


async def quiet_then_burst(store: HistoryStore, burst: int, gap: float = 0.0) -> None:
    """One record (written at once: the store was quiet), then ``burst`` more, ``gap`` s apart."""
    store.record(make_record(T0))
    await trio.sleep(0.01)
    for i in range(1, burst + 1):
        store.record(make_record(T0 + i))
        if gap:
            await trio.sleep(gap)


async def test_a_burst_shares_one_write_per_interval(
    tmp_path: Path, autojump_clock: trio.testing.MockClock
) -> None:
    """The first record after a quiet spell is written at once; records arriving during
    the next write_interval wait for it and go in one write, none lost."""
    log = WriteLog()
    store = HistoryStore(tmp_path, run_sync=log, write_interval=0.25, prune_interval=3600)
    async with trio.open_nursery() as nursery:
        await nursery.start(store.run)
        start = trio.current_time()
        await quiet_then_burst(store, 30, gap=0.005)
        await trio.sleep(1)
        assert await count(store) == 31
        nursery.cancel_scope.cancel()
    writes = [(round(t - start, 3), n) for t, n in log.writes]
    assert writes == [(0.0, 1), (0.25, 30)]


async def test_a_full_batch_does_not_wait_for_the_interval(
    tmp_path: Path, autojump_clock: trio.testing.MockClock
) -> None:
    """Once batch_size records are queued they are written without waiting out write_interval."""
    log = WriteLog()
    store = HistoryStore(
        tmp_path, run_sync=log, batch_size=10, write_interval=5.0, prune_interval=3600
    )
    async with trio.open_nursery() as nursery:
        await nursery.start(store.run)
        start = trio.current_time()
        await quiet_then_burst(store, 10)
        await trio.sleep(0.01)
        assert [n for _, n in log.writes] == [1, 10]
        assert log.writes[-1][0] - start < 0.1
        nursery.cancel_scope.cancel()


async def test_wait_written_cuts_the_gathering_short(
    tmp_path: Path, autojump_clock: trio.testing.MockClock
) -> None:
    """A caller waiting for its records gets them written at once, not a write_interval later,
    whether it starts waiting before or after the store began gathering."""
    store = HistoryStore(tmp_path, run_sync=run_inline, write_interval=60.0, prune_interval=3600)
    async with trio.open_nursery() as nursery:
        await nursery.start(store.run)
        store.record(make_record(T0))
        await store.wait_written()
        start = trio.current_time()
        store.record(make_record(T0 + 1))
        await store.wait_written()  # before the store took the record
        store.record(make_record(T0 + 2))
        await trio.sleep(1)  # the store is gathering now
        await store.wait_written()
        assert trio.current_time() - start < 2
        assert await count(store) == 3
        nursery.cancel_scope.cancel()


async def test_shutdown_while_gathering_writes_the_gathered(
    tmp_path: Path, autojump_clock: trio.testing.MockClock
) -> None:
    """Cancelled while it waits out write_interval, the store still writes what it held."""
    store = HistoryStore(tmp_path, run_sync=run_inline, write_interval=60.0, prune_interval=3600)
    async with trio.open_nursery() as nursery:
        await nursery.start(store.run)
        await quiet_then_burst(store, 3)
        await trio.sleep(1)
        nursery.cancel_scope.cancel()
    assert rows_on_disk(tmp_path) == 4


async def test_records_taken_when_the_store_is_cancelled_are_written(tmp_path: Path) -> None:
    """A cancel that lands while a write waits for its thread (the runner's checkpoint)
    does not lose the records that write took: they are on disk after the stop."""
    cancel = trio.CancelScope()

    async def cancelling(fn: Any, *args: Any, limiter: object = None) -> Any:
        if getattr(fn, "__name__", "") == "write":
            cancel.cancel()
        return await run_inline(fn, *args)

    store = HistoryStore(tmp_path, run_sync=cancelling, prune_interval=3600)

    async def run_store(*, task_status: trio.TaskStatus[None]) -> None:
        with cancel:
            await store.run(task_status=task_status)

    with trio.fail_after(10):
        async with trio.open_nursery() as nursery:
            await nursery.start(run_store)
            for i in range(3):
                store.record(make_record(T0 + i))
    assert rows_on_disk(tmp_path) == 3
