"""Serving the app over a real loopback socket with hypercorn (daemon.api.server)."""

import httpx
import trio

from daemon.api import create_app
from daemon.api.server import serve_api
from tests.api.conftest import FakeBackend


async def test_serves_over_tcp_and_stops_on_cancel(backend: FakeBackend) -> None:
    """serve_api reports its port, answers real HTTP, and returns promptly when cancelled."""
    app = create_app(backend)
    with trio.fail_after(30):
        async with trio.open_nursery() as nursery:
            port = await nursery.start(serve_api, app, "127.0.0.1", 0)
            assert port > 0
            async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as client:
                resp = await client.post(
                    "/api/v2/alerts",
                    content=b'[{"labels":{"alertname":"net"}}]',
                    headers={"Content-Type": "application/json"},
                )
                assert (resp.status_code, resp.content) == (200, b"")
                assert "content-type" not in resp.headers
                resp = await client.get("/api/v2/alerts")
                assert resp.status_code == 200
                assert resp.json()[0]["labels"] == {"alertname": "net"}
                resp = await client.head("/-/healthy")
                assert (resp.status_code, resp.content) == (200, b"")
            nursery.cancel_scope.cancel()
        # The listener is closed once serve_api has returned.
        with trio.move_on_after(5):
            try:
                await trio.open_tcp_stream("127.0.0.1", port)
            except OSError:
                pass
            else:
                raise AssertionError("still listening after cancellation")
