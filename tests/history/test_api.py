"""GET /api/v1/history through quart's test client, over a running store."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import pytest
import trio

from daemon.api import create_app
from daemon.api.history import HISTORY_PATH, history_routes
from daemon.clock import FixedClock, TrioClock
from daemon.history.database import HistoryPage
from daemon.history.query import HistoryQuery
from daemon.history.record import Outcome, Status
from daemon.history.store import HistoryStore
from daemon.store import AlertStore
from tests.api.conftest import NOW, FakeBackend, config
from tests.history.conftest import T0, make_record


@pytest.fixture
def backend() -> FakeBackend:
    clock = FixedClock(NOW)
    return FakeBackend(config("default"), AlertStore(clock), clock)


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[HistoryStore]:
    s = HistoryStore(tmp_path, clock=TrioClock(T0))
    async with trio.open_nursery() as nursery:
        await nursery.start(s.run)
        s.record(make_record(T0, receiver="a", alerts={"alertname": "A", "sev": "crit"}))
        s.record(make_record(T0 + 1, receiver="b", status=Status.RESOLVED))
        s.record(make_record(T0 + 2, receiver="a", outcome=Outcome.FAILED, error="boom"))
        s.record(make_record(T0 + 3, receiver="a", tenant="t1"))
        await s.wait_written()
        yield s
        nursery.cancel_scope.cancel()


async def get(
    backend: FakeBackend,
    source: Any,
    query: list[tuple[str, str]] | None = None,
    tenant: Callable[[], str | None] | None = None,
) -> tuple[int, Any]:
    app = create_app(backend, extra_routes=history_routes(source, request_tenant=tenant))
    path = f"/{HISTORY_PATH}" + (f"?{urlencode(query)}" if query else "")
    with trio.fail_after(10):
        resp = await app.test_client().get(path)
        data = await resp.get_data(as_text=False)
    assert resp.headers["Content-Type"] == "application/json"
    assert data.endswith(b"\n")
    return resp.status_code, json.loads(data)


async def test_lists_newest_first_and_pages(backend: FakeBackend, store: HistoryStore) -> None:
    """Items come newest first; next_cursor leads to the rest and is null on the last page."""
    status, doc = await get(backend, store, [("limit", "3")])
    assert status == 200
    assert [i["time"] for i in doc["items"]] == [
        "2026-01-01T00:00:00.000000003Z",
        "2026-01-01T00:00:00.000000002Z",
        "2026-01-01T00:00:00.000000001Z",
    ]
    assert doc["items"][1]["error"] == "boom"
    status, doc = await get(backend, store, [("limit", "3"), ("cursor", doc["next_cursor"])])
    assert status == 200
    assert [i["receiver"] for i in doc["items"]] == ["a"]
    assert doc["next_cursor"] is None


async def test_filters_from_the_query_string(backend: FakeBackend, store: HistoryStore) -> None:
    """receiver, status, outcome, tenant, from/to and filter combine as AND."""

    async def times(*query: tuple[str, str]) -> list[int]:
        status, doc = await get(backend, store, list(query))
        assert status == 200, doc
        # The nanoseconds past T0 ("...00:00Z" has none).
        return [int(i["time"][20:-1] or 0) for i in doc["items"]]

    assert await times(("receiver", "a")) == [3, 2, 0]
    assert await times(("receiver", "a"), ("outcome", "failed")) == [2]
    assert await times(("status", "resolved")) == [1]
    assert await times(("tenant", "t1")) == [3]
    assert await times(("filter", 'sev=~"cr.*"')) == [0]
    assert await times(
        ("from", "2026-01-01T00:00:00.000000001Z"), ("to", "2026-01-01T00:00:00.000000002Z")
    ) == [
        2,
        1,
    ]
    assert await times(("integration", "webhook[0]"), ("receiver", "b")) == [1]


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ([("status", "bogus")], "invalid status 'bogus': want firing|resolved"),
        ([("limit", "5000")], "invalid limit '5000': want an integer from 1 to 1000"),
        ([("from", "now")], 'invalid from: parsing time "now" as RFC 3339 failed'),
        ([("cursor", "xyz")], "invalid cursor"),
    ],
)
async def test_bad_parameters_answer_400(
    backend: FakeBackend, store: HistoryStore, query: list[tuple[str, str]], message: str
) -> None:
    """A bad parameter is a 400 whose error says what is wrong."""
    assert await get(backend, store, query) == (400, {"error": message})


async def test_store_not_running_answers_503(backend: FakeBackend, tmp_path: Path) -> None:
    """Before the store has started (or after it stopped) the endpoint answers 503."""
    status, doc = await get(backend, HistoryStore(tmp_path))
    assert status == 503
    assert doc == {"error": "the history store is not running"}


async def test_request_tenant_pins_the_query(backend: FakeBackend, store: HistoryStore) -> None:
    """With request_tenant, a tenant sees only its own rows and may not ask for another's."""
    status, doc = await get(backend, store, tenant=lambda: "t1")
    assert status == 200
    assert [i["tenant"] for i in doc["items"]] == ["t1"]
    status, doc = await get(backend, store, [("tenant", "t2")], tenant=lambda: "t1")
    assert status == 403
    status, doc = await get(backend, store, tenant=lambda: None)
    assert len(doc["items"]) == 4


async def test_source_protocol_receives_the_parsed_query(backend: FakeBackend) -> None:
    """The handler hands the source a parsed HistoryQuery: any object with query() will do."""
    seen: list[HistoryQuery] = []

    class Source:
        async def query(self, query: HistoryQuery) -> HistoryPage:
            seen.append(query)
            return HistoryPage((), None)

    assert await get(backend, Source(), [("receiver", "x")]) == (
        200,
        {"items": [], "next_cursor": None},
    )
    assert seen == [HistoryQuery(receiver="x")]


async def test_hostile_queries_answer_fast_and_change_nothing(
    backend: FakeBackend, tmp_path: Path
) -> None:
    """A regex bomb over a long stored value, a 1 MB cursor, a huge limit and a filter
    nested past Go's limit each get an answer within the deadline; the records stay."""
    s = HistoryStore(tmp_path, clock=TrioClock(T0))
    async with trio.open_nursery() as nursery:
        await nursery.start(s.run)
        s.record(make_record(T0, receiver="a", alerts={"alertname": "A", "victim": "x" * 50_000}))
        await s.wait_written()
        bomb = [("filter", 'victim=~"(x+x+)+y"')]
        assert await get(backend, s, bomb) == (200, {"items": [], "next_cursor": None})
        status, doc = await get(backend, s, [("cursor", "A" * 1_000_000)])
        assert (status, doc) == (400, {"error": "invalid cursor"})
        status, _ = await get(backend, s, [("limit", "9" * 10_000)])
        assert status == 400
        status, doc = await get(backend, s, [("filter", "a=~" + "(" * 1001 + "x" + ")" * 1001)])
        assert status == 400 and "nests too deeply" in doc["error"]
        status, doc = await get(backend, s)
        assert status == 200 and len(doc["items"]) == 1
        nursery.cancel_scope.cancel()
