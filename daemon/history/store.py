"""The history store service: a bounded intake, one writer actor, queries in threads.

Theory of operation:

* The notifier calls :meth:`HistoryStore.record` (sync, O(1)). It puts the record on a
  bounded trio memory channel and returns; a full queue drops the record and counts it
  (``tocsin_history_dropped_total{reason="queue_full"}``). It never blocks and never
  raises: history must not cost a notification anything.
* :meth:`HistoryStore.run` is the one task that owns the database. It waits for a
  record, takes whatever else is queued (up to ``batch_size``), and writes the batch in
  a worker thread under its own ``CapacityLimiter(1)``. While records keep coming it
  writes at most once per ``write_interval``, so a burst of notifications shares a few
  transactions instead of paying a thread hand-off and a commit per handful. A batch
  that fails (disk full, database locked past ``busy_timeout``, I/O error) is dropped
  whole, counted by reason and logged as ``history.write_failed``; the loop carries on.
* Every ``prune_interval`` seconds (trio's clock) the same task deletes rows older than
  ``retention`` (wall clock) and the oldest rows beyond ``max_rows``.
* Queries run on a separate reader connection (WAL lets it read while the writer
  writes) in a worker thread under a second ``CapacityLimiter(1)``.

Cancellation: on cancel, ``run`` drains what is already queued into one last shielded
write bounded by ``shutdown_timeout``, then closes the database.
"""

from __future__ import annotations

import math
import sqlite3
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import attrs
import structlog
import trio
from prometheus_client import Counter

from daemon import metrics
from daemon.clock import Clock, SystemClock
from daemon.gocompat.duration import parse_duration
from daemon.history.database import (
    DB_FILENAME,
    HistoryDatabase,
    HistoryPage,
    PruneResult,
    failure_reason,
)
from daemon.history.intake import Intake
from daemon.history.query import HistoryQuery
from daemon.history.record import HistoryRecord

log = structlog.get_logger("daemon.history")

#: ``--history.retention``'s default.
DEFAULT_RETENTION = parse_duration("7d")
DEFAULT_MAX_ROWS = 1_000_000
DEFAULT_QUEUE_SIZE = 10_000
DEFAULT_BATCH_SIZE = 1_000
DEFAULT_WRITE_INTERVAL = 0.25

dropped_total = Counter(
    "tocsin_history_dropped_total",
    "History records lost before reaching the database, by reason.",
    ["reason"],
    registry=metrics.REGISTRY,
)
written_total = Counter(
    "tocsin_history_written_total",
    "History records written to the database.",
    registry=metrics.REGISTRY,
)
pruned_total = Counter(
    "tocsin_history_pruned_total",
    "History rows deleted by retention or by the size cap.",
    ["reason"],
    registry=metrics.REGISTRY,
)
for _reason in ("queue_full", "closed", "full", "locked", "io", "error"):
    dropped_total.labels(_reason)
for _reason in ("retention", "size"):
    pruned_total.labels(_reason)


#: ``trio.to_thread.run_sync``'s shape. Tests pass a runner that calls inline, so
#: timer tests on ``autojump_clock`` do not race real threads.
RunSync = Callable[..., Awaitable[Any]]


def _count_drop(reason: str, count: int) -> None:
    dropped_total.labels(reason).inc(count)


class HistoryUnavailable(RuntimeError):
    """The store is not running (not started yet, or stopped): nothing to query."""


@attrs.define(eq=False)
class HistoryStore:
    """The notification history under ``storage_path``. Start with ``nursery.start(store.run)``.

    ``retention`` is a parsed duration (ns). ``prune_interval``, ``busy_timeout`` and
    ``shutdown_timeout`` are seconds. ``clock`` gives the wall time retention is
    measured against.
    """

    storage_path: Path = attrs.field(converter=Path)
    retention: int = DEFAULT_RETENTION
    max_rows: int = DEFAULT_MAX_ROWS
    clock: Clock = attrs.field(factory=SystemClock)
    queue_size: int = DEFAULT_QUEUE_SIZE
    batch_size: int = DEFAULT_BATCH_SIZE
    #: Seconds between the starts of two writes while records keep coming: a burst's
    #: records share one transaction. The first record after a quiet spell is written
    #: at once, and :meth:`wait_written` cuts the gathering short.
    write_interval: float = DEFAULT_WRITE_INTERVAL
    prune_interval: float = 60.0
    busy_timeout: float = 1.0
    shutdown_timeout: float = 5.0
    max_page_count: int | None = None
    run_sync: RunSync = trio.to_thread.run_sync

    _intake: Intake = attrs.field(init=False)
    _db: HistoryDatabase | None = attrs.field(default=None, init=False)
    _write_limiter: trio.CapacityLimiter = attrs.field(init=False)
    _read_limiter: trio.CapacityLimiter = attrs.field(init=False)

    def __attrs_post_init__(self) -> None:
        self._intake = Intake(self.queue_size, _count_drop)
        self._write_limiter = trio.CapacityLimiter(1)
        self._read_limiter = trio.CapacityLimiter(1)

    @property
    def path(self) -> Path:
        return self.storage_path / DB_FILENAME

    def record(self, rec: HistoryRecord) -> None:
        """Queue ``rec`` for writing. Never blocks, never raises; a lost record is counted.

        Call it from the trio thread (the notification pipeline).
        """
        self._intake.put(rec)

    async def wait_written(self) -> None:
        """Wait until every record accepted before this call is written or dropped."""
        await self._intake.wait_settled()

    async def query(self, query: HistoryQuery) -> HistoryPage:
        """One page of history, newest first; raises :class:`HistoryUnavailable` if not running.

        sqlite3 errors (a corrupt file, say) propagate: the API answers 500.
        """
        db = self._db
        if db is None:
            raise HistoryUnavailable("the history store is not running")
        page: HistoryPage = await self.run_sync(db.query, query, limiter=self._read_limiter)
        return page

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Open the database, report started, then write and prune until cancelled.

        Error handling: a database that cannot be opened raises out of ``nursery.start``
        (the daemon refuses to start with a broken ``--storage.path``, as for the nflog).
        Write and prune errors are counted and logged, never raised.
        """
        db = await self.run_sync(
            lambda: HistoryDatabase(
                self.path, busy_timeout=self.busy_timeout, max_page_count=self.max_page_count
            ),
            limiter=self._write_limiter,
        )
        self._db = db
        log.info("history.opened", path=str(self.path))
        task_status.started()
        # Taken from the intake and not yet written: the shutdown write includes them.
        batch: list[HistoryRecord] = []
        try:
            next_prune = trio.current_time()
            last_write = -math.inf
            while True:
                with trio.move_on_at(next_prune):
                    batch.append(await self._intake.receive())
                if batch:
                    # While records keep coming, one write per write_interval: a
                    # transaction (and a thread hand-off) per handful of records cost
                    # the notifier's thread more than the records (see write_interval).
                    deadline = min(last_write + self.write_interval, next_prune)
                    if deadline > trio.current_time():
                        await self._intake.wait_batch(self.batch_size - len(batch), deadline)
                    self._intake.take_queued(batch, self.batch_size)
                    last_write = trio.current_time()
                    taken, batch = batch, []
                    # Shielded: a cancel at the thread limiter's checkpoint would lose
                    # the records taken (the thread, once started, is waited for anyway).
                    with trio.CancelScope(shield=True):
                        await self._write(db, taken)
                if trio.current_time() >= next_prune:
                    await self._prune(db)
                    next_prune = trio.current_time() + self.prune_interval
        finally:
            self._db = None
            batch += self._intake.close()
            with trio.move_on_after(self.shutdown_timeout, shield=True):
                if batch:
                    await self._write(db, batch)
                # A query still running on the reader keeps the read limiter: wait for it.
                async with self._read_limiter:
                    await self.run_sync(db.close, limiter=self._write_limiter)

    async def _write(self, db: HistoryDatabase, batch: list[HistoryRecord]) -> None:
        try:
            await self.run_sync(db.write, batch, limiter=self._write_limiter)
        except (sqlite3.Error, ValueError) as exc:
            # ValueError: text the encoders refuse (UnicodeEncodeError). Bad data loses
            # its batch, counted; it must not stop the store or the daemon.
            reason = failure_reason(exc) if isinstance(exc, sqlite3.Error) else "error"
            dropped_total.labels(reason).inc(len(batch))
            log.error("history.write_failed", reason=reason, error=str(exc), records=len(batch))
        else:
            written_total.inc(len(batch))
        finally:
            self._intake.settle(len(batch))

    async def _prune(self, db: HistoryDatabase) -> None:
        before = self.clock.now() - self.retention
        try:
            result: PruneResult = await self.run_sync(
                lambda: db.prune(before=before, max_rows=self.max_rows),
                limiter=self._write_limiter,
            )
        except sqlite3.Error as exc:
            log.error("history.prune_failed", reason=failure_reason(exc), error=str(exc))
            return
        if result.expired:
            pruned_total.labels("retention").inc(result.expired)
        if result.over_cap:
            pruned_total.labels("size").inc(result.over_cap)
        if result.expired or result.over_cap:
            log.info("history.pruned", expired=result.expired, over_cap=result.over_cap)


__all__ = [
    "DEFAULT_BATCH_SIZE",
    "DEFAULT_MAX_ROWS",
    "DEFAULT_QUEUE_SIZE",
    "DEFAULT_RETENTION",
    "HistoryStore",
    "HistoryUnavailable",
    "dropped_total",
    "pruned_total",
    "written_total",
]
