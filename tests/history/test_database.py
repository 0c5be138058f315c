"""The synchronous SQLite layer: writes, filters, paging, pruning and its failures."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from pathlib import Path

import attrs
import pytest

from daemon.history.database import HistoryDatabase, failure_reason
from daemon.history.query import Cursor, HistoryQuery
from daemon.history.record import HistoryRecord, Outcome, Status
from daemon.matcher import parse_matcher
from tests.history.conftest import T0, S, make_record


@pytest.fixture
def db(tmp_path: Path) -> Iterator[HistoryDatabase]:
    d = HistoryDatabase(tmp_path / "history.db", busy_timeout=0.05)
    yield d
    d.close()


def times(records: tuple[HistoryRecord, ...]) -> list[int]:
    return [r.time for r in records]


def test_round_trip_keeps_every_field(db: HistoryDatabase) -> None:
    """A record reads back equal to what was written, tenant and error included."""
    rec = make_record(
        alerts=[{"alertname": "A", "x": "é<>"}, {"alertname": "A", "x": "2"}],
        outcome=Outcome.FAILED,
        error="webhook[0]: 500",
        tenant="t1",
    )
    db.write([rec])
    assert db.query(HistoryQuery()).items == (rec,)


def test_newest_first_with_ties_by_insertion(db: HistoryDatabase) -> None:
    """Rows come newest first; rows of the same nanosecond come last-inserted first."""
    a, b, c = (
        make_record(T0, receiver="a"),
        make_record(T0 + 1, receiver="b"),
        make_record(T0, receiver="c"),
    )
    db.write([a, b, c])
    assert [r.receiver for r in db.query(HistoryQuery()).items] == ["b", "c", "a"]


def test_filters(db: HistoryDatabase) -> None:
    """receiver, integration (with and without index), status, outcome, tenant and time bounds filter rows."""
    db.write(
        [
            make_record(T0, receiver="a", integration="webhook", index=0),
            make_record(T0 + 1, receiver="b", integration="slack", index=1, status=Status.RESOLVED),
            make_record(T0 + 2, receiver="a", integration="slack", index=0, outcome=Outcome.FAILED),
            make_record(T0 + 3, receiver="a", outcome=Outcome.SUPPRESSED, tenant="t1"),
        ]
    )

    def q(**kw: object) -> list[int]:
        return [r.time - T0 for r in db.query(HistoryQuery(**kw)).items]  # type: ignore[arg-type]

    assert q(receiver="a") == [3, 2, 0]
    assert q(integration="slack") == [2, 1]
    assert q(integration="slack", integration_index=1) == [1]
    assert q(status=Status.RESOLVED) == [1]
    assert q(status=Status.FIRING) == [3, 2, 0]
    assert q(outcome=Outcome.FAILED) == [2]
    assert q(outcome=Outcome.SUPPRESSED) == [3]
    assert q(tenant="t1") == [3]
    assert q(tenant="") == [2, 1, 0]
    assert q(since=T0 + 1, until=T0 + 2) == [2, 1]
    assert q(receiver="nobody") == []


def test_label_filter_matches_any_alert(db: HistoryDatabase) -> None:
    """filter keeps a row when one of its alerts matches every matcher (regexes included)."""
    db.write(
        [
            make_record(T0, alerts=[{"alertname": "A", "sev": "crit"}]),
            make_record(
                T0 + 1,
                alerts=[{"alertname": "B", "sev": "warn"}, {"alertname": "B", "sev": "info"}],
            ),
            make_record(T0 + 2, alerts=[{"alertname": "C"}]),
        ]
    )
    page = db.query(HistoryQuery(matchers=(parse_matcher('sev=~"crit|info"'),)))
    assert times(page.items) == [T0 + 1, T0]
    assert page.next_cursor is None
    page = db.query(
        HistoryQuery(matchers=(parse_matcher("alertname=B"), parse_matcher("sev=crit")))
    )
    assert page.items == ()


def test_cursor_pages_cover_every_row_once_under_inserts(db: HistoryDatabase) -> None:
    """Following next_cursor visits each row exactly once, even with rows inserted between pages.

    Rows inserted newer than the cursor never show; rows inserted with an older time
    (a late record) show once, in their place.
    """
    db.write([make_record(T0 + i % 7, receiver=f"r{i}") for i in range(50)])
    seen: list[str] = []
    cursor: Cursor | None = None
    pages = 0
    while True:
        page = db.query(HistoryQuery(limit=8, cursor=cursor))
        seen += [r.receiver for r in page.items]
        pages += 1
        db.write(
            [
                make_record(T0 + 100 + pages, receiver="late-new"),
                make_record(T0 - 1, receiver=f"late-old{pages}"),
            ]
        )
        if page.next_cursor is None:
            break
        cursor = page.next_cursor
    assert len(seen) == len(set(seen))
    assert "late-new" not in seen
    assert sorted(r for r in seen if r.startswith("r")) == sorted(f"r{i}" for i in range(50))
    assert sum(r.startswith("late-old") for r in seen) == pages - 1


def test_last_full_page_has_no_cursor(db: HistoryDatabase) -> None:
    """A page that ends exactly at the last row says so: no next_cursor."""
    db.write([make_record(T0 + i) for i in range(4)])
    page = db.query(HistoryQuery(limit=4))
    assert len(page.items) == 4 and page.next_cursor is None
    page = db.query(HistoryQuery(limit=3))
    assert page.next_cursor == Cursor(T0 + 1, 2)


def test_selective_filter_answers_within_the_scan_window(db: HistoryDatabase) -> None:
    """A filter that matches little stops at the end of the SQL window and hands back a cursor."""
    db.write([make_record(T0 + i, alerts={"alertname": "A" if i else "Z"}) for i in range(30)])
    query = HistoryQuery(matchers=(parse_matcher("alertname=Z"),))
    page = db.query(query, scan_window=10)
    assert page.items == () and page.next_cursor == Cursor(T0 + 20, 21)
    found: list[HistoryRecord] = []
    while page.next_cursor is not None:
        page = db.query(attrs.evolve(query, cursor=page.next_cursor), scan_window=10)
        found += page.items
    assert times(tuple(found)) == [T0]


def test_filter_the_prefilter_cannot_narrow_stops_at_the_check_budget(db: HistoryDatabase) -> None:
    """With only != matchers every row is a candidate; Python checks check_budget of them per page."""
    db.write([make_record(T0 + i, alerts={"alertname": "A" if i else "Z"}) for i in range(30)])
    query = HistoryQuery(matchers=(parse_matcher("alertname!=A"),))
    page = db.query(query, check_budget=10)
    assert page.items == () and page.next_cursor == Cursor(T0 + 20, 21)
    pages = [page]
    while pages[-1].next_cursor is not None:
        pages.append(db.query(attrs.evolve(query, cursor=pages[-1].next_cursor), check_budget=10))
    assert [times(p.items) for p in pages] == [[], [], [T0]]


@pytest.mark.parametrize(
    "matcher",
    ['v="say \\"hi\\""', 'v=~"say.*"', "v!=x", 'w=""', 'v=~".*"', 'v!~"nope"'],
)
def test_prefilter_never_hides_a_match(db: HistoryDatabase, matcher: str) -> None:
    """Values with quotes, backslashes and non-ASCII still match through the SQL prefilter."""
    db.write([make_record(T0, alerts=[{"alertname": "A"}, {"alertname": "A", "v": 'say "hi"'}])])
    m = parse_matcher(matcher)
    assert len(db.query(HistoryQuery(matchers=(m,))).items) == 1


def test_prune_drops_expired_rows(db: HistoryDatabase) -> None:
    """Rows strictly older than the retention edge go; the rest stay."""
    db.write([make_record(T0 + i * S) for i in range(10)])
    result = db.prune(before=T0 + 4 * S, max_rows=100)
    assert (result.expired, result.over_cap) == (4, 0)
    assert times(db.query(HistoryQuery()).items)[-1] == T0 + 4 * S


def test_size_cap_drops_the_oldest(db: HistoryDatabase) -> None:
    """Beyond max_rows the oldest rows (by time, then insertion) go first."""
    db.write([make_record(T0 + (i % 5) * S, receiver=f"r{i}") for i in range(10)])
    result = db.prune(before=0, max_rows=3)
    assert (result.expired, result.over_cap) == (0, 7)
    assert [r.receiver for r in db.query(HistoryQuery()).items] == ["r9", "r4", "r8"]
    assert db.prune(before=0, max_rows=3).over_cap == 0


def test_full_database_fails_the_write_as_full(tmp_path: Path) -> None:
    """A database at max_page_count refuses the batch whole, and the error classifies as full."""
    db = HistoryDatabase(tmp_path / "history.db", max_page_count=8)
    try:
        big = [make_record(T0 + i, alerts={"alertname": "A", "pad": "x" * 2000}) for i in range(40)]
        with pytest.raises(sqlite3.Error) as info:
            db.write(big)
        assert failure_reason(info.value) == "full"
        assert db.count() == 0
        db.write([make_record()])
        assert db.count() == 1
    finally:
        db.close()


def test_locked_database_fails_the_write_as_locked(db: HistoryDatabase) -> None:
    """Another connection's exclusive transaction makes a write fail as locked after busy_timeout."""
    other = sqlite3.connect(db.path, isolation_level=None)
    other.execute("BEGIN EXCLUSIVE")
    try:
        with pytest.raises(sqlite3.Error) as info:
            db.write([make_record()])
        assert failure_reason(info.value) == "locked"
    finally:
        other.execute("ROLLBACK")
        other.close()
    db.write([make_record()])
    assert db.count() == 1
