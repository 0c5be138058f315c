"""The history database: synchronous SQLite calls, each meant to run in a worker thread.

Nothing here touches trio; :class:`daemon.history.store.HistoryStore` owns one
:class:`HistoryDatabase` and calls it through ``trio.to_thread.run_sync`` with a
``CapacityLimiter(1)`` per connection, so a connection is never used by two threads at
once (hence ``check_same_thread=False``).

* WAL journal: the API's reader connection reads while the writer writes.
* ``synchronous=NORMAL``: a power cut may lose the last batches, never corrupt the
  file; history is a convenience, not the nflog.
* Errors are sqlite3's own; the caller classifies them with :func:`failure_reason`.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from pathlib import Path

import attrs

from daemon.history.codec import (
    COLUMNS,
    INSERT,
    SCHEMA,
    SCHEMA_VERSION,
    body_alert_labels,
    record_to_row,
)
from daemon.history.codec import row_to_record as _row_to_record
from daemon.history.query import (
    CHECK_BUDGET,
    SCAN_WINDOW,
    Cursor,
    HistoryQuery,
    any_alert_matches,
    prefilter_sql,
    select_sql,
)
from daemon.history.record import HistoryRecord

#: The file name under ``--storage.path``.
DB_FILENAME = "history.db"

#: Rows fetched from SQLite at a time while the label filter scans.
_FETCH = 256


@attrs.frozen
class HistoryPage:
    """One page of a listing: records newest first, and where the next page starts."""

    items: tuple[HistoryRecord, ...]
    next_cursor: Cursor | None


@attrs.frozen
class PruneResult:
    expired: int
    over_cap: int


def failure_reason(exc: sqlite3.Error) -> str:
    """The ``reason`` label for a failed write: ``full``, ``locked``, ``io`` or ``error``."""
    code = getattr(exc, "sqlite_errorcode", None)
    primary = code & 0xFF if isinstance(code, int) else None
    if primary == sqlite3.SQLITE_FULL:
        return "full"
    if primary in (sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED):
        return "locked"
    if primary in (sqlite3.SQLITE_IOERR, sqlite3.SQLITE_CANTOPEN):
        return "io"
    return "error"


class HistoryDatabase:
    """One writer connection and one reader connection to ``history.db``.

    ``busy_timeout`` (seconds) is how long a write waits for a lock held elsewhere
    before it fails as ``locked``. ``max_page_count`` caps the file at that many
    pages (a hard size cap; writes beyond it fail as ``full``).
    """

    def __init__(
        self,
        path: Path,
        *,
        busy_timeout: float = 1.0,
        max_page_count: int | None = None,
    ) -> None:
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        # isolation_level=None: transactions are ours (BEGIN IMMEDIATE ... COMMIT).
        self.writer = sqlite3.connect(
            path, timeout=busy_timeout, isolation_level=None, check_same_thread=False
        )
        try:
            self.writer.execute("PRAGMA journal_mode=WAL")
            self.writer.execute("PRAGMA synchronous=NORMAL")
            if max_page_count is not None:
                self.writer.execute(f"PRAGMA max_page_count={int(max_page_count)}")
            self.writer.executescript(SCHEMA)
            self.writer.execute(f"PRAGMA user_version={SCHEMA_VERSION}")
            self.reader = sqlite3.connect(
                path, timeout=busy_timeout, isolation_level=None, check_same_thread=False
            )
            self.reader.execute("PRAGMA query_only=ON")
        except BaseException:
            self.writer.close()
            raise

    def close(self) -> None:
        self.reader.close()
        self.writer.close()

    def _transaction(self, statements: Sequence[tuple[str, Sequence[object]]]) -> list[int]:
        """Run statements in one write transaction; their row counts. Rolls back on error."""
        conn = self.writer
        conn.execute("BEGIN IMMEDIATE")
        try:
            counts = [conn.execute(sql, params).rowcount for sql, params in statements]
            conn.execute("COMMIT")
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise
        return counts

    def write(self, records: Sequence[HistoryRecord]) -> None:
        """Insert ``records`` in one transaction: all of them or, on error, none."""
        rows = [record_to_row(r) for r in records]
        conn = self.writer
        conn.execute("BEGIN IMMEDIATE")
        try:
            conn.executemany(INSERT, rows)
            conn.execute("COMMIT")
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise

    def prune(self, *, before: int, max_rows: int) -> PruneResult:
        """Delete rows older than ``before`` (Unix ns), then the oldest beyond ``max_rows``."""
        expired = self._transaction([("DELETE FROM history WHERE time < ?", (before,))])[0]
        over_cap = 0
        # Row ids only grow, so the id span bounds the row count: the usual case costs
        # two index lookups and skips the OFFSET walk.
        low, high = self.writer.execute("SELECT min(id), max(id) FROM history").fetchone()
        if low is not None and high - low + 1 > max_rows:
            edge = self.writer.execute(
                "SELECT time, id FROM history ORDER BY time DESC, id DESC LIMIT 1 OFFSET ?",
                (max_rows,),
            ).fetchone()
            if edge is not None:
                over_cap = self._transaction(
                    [
                        (
                            "DELETE FROM history WHERE time < ? OR (time = ? AND id <= ?)",
                            (edge[0], edge[0], edge[1]),
                        )
                    ]
                )[0]
        return PruneResult(expired, over_cap)

    def count(self) -> int:
        return int(self.reader.execute("SELECT count(*) FROM history").fetchone()[0])

    def query(
        self,
        query: HistoryQuery,
        *,
        scan_window: int = SCAN_WINDOW,
        check_budget: int = CHECK_BUDGET,
    ) -> HistoryPage:
        """One page of ``query`` from the reader connection."""
        if query.matchers:
            return self._filtered(query, scan_window, check_budget)
        sql, params = select_sql(query)
        rows = self.reader.execute(f"{sql} LIMIT ?", [*params, query.limit + 1]).fetchall()
        more = len(rows) > query.limit
        rows = rows[: query.limit]
        last = rows[-1] if more else None
        return HistoryPage(
            tuple(_row_to_record(r) for r in rows),
            Cursor(last[1], last[0]) if last is not None else None,
        )

    def _filtered(self, query: HistoryQuery, scan_window: int, check_budget: int) -> HistoryPage:
        """A label-filtered page: SQLite's prefilter over a window, then exact checks here.

        The window is read in chunks, so a filter that matches often stops after a
        few chunks rather than reading the whole window.
        """
        pre, pre_params = prefilter_sql(query.matchers)
        sql, params = select_sql(query, columns=f"id, time, {pre}")
        items: list[HistoryRecord] = []
        checked = seen = 0
        previous: Cursor | None = None
        # Parameters in text order: the prefilter's (in the column list) come first.
        window = self.reader.execute(f"{sql} LIMIT ?", [*pre_params, *params, scan_window])
        try:
            while positions := window.fetchmany(_FETCH):
                seen += len(positions)
                candidates = [(row_id, time) for row_id, time, maybe in positions if maybe]
                marks = ",".join("?" * len(candidates))
                rows = self.reader.execute(
                    f"SELECT {COLUMNS} FROM history WHERE id IN ({marks})",
                    [row_id for row_id, _ in candidates],
                ).fetchall()
                by_id = {row[0]: row for row in rows}
                for row_id, time in candidates:
                    if checked == check_budget:
                        # Budget spent with candidates left: resume after the last one checked.
                        return HistoryPage(tuple(items), previous)
                    row = by_id.get(row_id)
                    checked += 1
                    previous = Cursor(time, row_id)
                    if row is not None and any_alert_matches(
                        query.matchers, body_alert_labels(row[-1])
                    ):
                        items.append(_row_to_record(row))
                        if len(items) == query.limit:
                            return HistoryPage(tuple(items), previous)
                last_id, last_time, _ = positions[-1]
        finally:
            window.close()
        if seen == scan_window:
            return HistoryPage(tuple(items), Cursor(last_time, last_id))
        return HistoryPage(tuple(items), None)


__all__ = ["DB_FILENAME", "HistoryDatabase", "HistoryPage", "PruneResult", "failure_reason"]
