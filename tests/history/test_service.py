"""start_history: the store and the sinks asked for, behind one record() call."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import pytest
import trio
import trio.testing

from daemon.clock import TrioClock
from daemon.history.export import FanOut
from daemon.history.query import HistoryQuery
from daemon.history.service import start_history
from tests.history.conftest import T0, make_record


async def test_store_only_by_default(tmp_path: Path) -> None:
    """Without sinks the recorder is the store itself, started and queryable."""
    with trio.fail_after(10):
        async with trio.open_nursery() as nursery:
            history = await start_history(nursery, tmp_path, clock=TrioClock(T0))
            assert history.recorder is history.store
            history.recorder.record(make_record(T0))
            await history.store.wait_written()
            assert len((await history.store.query(HistoryQuery())).items) == 1
            nursery.cancel_scope.cancel()


async def test_one_record_reaches_store_file_and_webhook(tmp_path: Path) -> None:
    """With an export file and a webhook, one record() feeds the database, the file and the webhook."""
    posted: list[bytes] = []

    def handler(request: httpx.Request) -> httpx.Response:
        posted.append(request.content)
        return httpx.Response(200)

    export = tmp_path / "events.jsonl"
    async with httpx.AsyncClient(transport=httpx.MockTransport(handler)) as client:
        with trio.fail_after(10):
            async with trio.open_nursery() as nursery:
                history = await start_history(
                    nursery,
                    tmp_path,
                    clock=TrioClock(T0),
                    export_file=export,
                    webhook_url="http://history.invalid/",
                    http_client=client,
                    instance="node-1",
                )
                assert isinstance(history.recorder, FanOut)
                history.recorder.record(make_record(T0))
                await history.wait_written()
                nursery.cancel_scope.cancel()
    assert json.loads(export.read_text())["instance"] == "node-1"
    # The webhook's default body is the export file's own lines.
    assert posted[0].decode() == export.read_text()


async def test_webhook_format_nm_posts_notification_managers_body(tmp_path: Path) -> None:
    """webhook_format="nm" (--history.webhook-format=nm) posts NM's history body instead."""
    posted: list[bytes] = []

    def handler(request: httpx.Request) -> httpx.Response:
        posted.append(request.content)
        return httpx.Response(200)

    async with httpx.AsyncClient(transport=httpx.MockTransport(handler)) as client:
        with trio.fail_after(10):
            async with trio.open_nursery() as nursery:
                history = await start_history(
                    nursery,
                    tmp_path,
                    clock=TrioClock(T0),
                    webhook_url="http://history.invalid/",
                    webhook_format="nm",
                    http_client=client,
                )
                history.recorder.record(make_record(T0))
                await history.wait_written()
                nursery.cancel_scope.cancel()
    assert json.loads(posted[0])["alerts"][0]["labels"]["receiver"] == "team-a"


async def test_webhook_without_client_is_refused(tmp_path: Path) -> None:
    """Asking for a webhook without an HTTP client is a configuration error, raised at start."""
    with trio.fail_after(10), pytest.raises(ExceptionGroup) as info:
        async with trio.open_nursery() as nursery:
            await start_history(nursery, tmp_path, webhook_url="http://x.invalid/")
    assert info.group_contains(ValueError, match="http_client")
    assert not (tmp_path / "history.db").exists()
