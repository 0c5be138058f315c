"""POST /api/v2/alerts served beside quart (daemon.api.direct): the same answers as
quart's route, the body limit, and a client leaving mid-body."""

from __future__ import annotations

import json
from typing import Any

import pytest
import trio

from daemon.api import create_app
from daemon.api.server import serve_api
from daemon.api.tenancy import TENANT_KEY, RequestBackend
from daemon.clock import FixedClock
from daemon.store import AlertStore
from tests.api.conftest import NOW, Api, FakeBackend, config

GOOD = json.dumps([{"labels": {"alertname": "A", "job": "j"}}])

#: (body, content type, extra headers) of requests whose answers must not change.
CASES: list[tuple[bytes | str, str | None, dict[str, str]]] = [
    (GOOD, "application/json", {}),
    (GOOD, "application/json; charset=utf-8", {"Origin": "http://ui.example"}),
    (GOOD, None, {}),
    (GOOD, "text/plain", {}),
    (GOOD, "application/", {}),
    ("[", "application/json", {}),
    ("{}", "application/json", {}),
    ("", "application/json", {}),
    (json.dumps([{"labels": {}}]), "application/json", {}),
    (json.dumps([{"labels": {"a-b": "x"}}, {"labels": {"ok": "y"}}]), "application/json", {}),
    (json.dumps([{"labels": {"alertname": "B"}, "startsAt": "yesterday"}]), "application/json", {}),
    (b"[" + b'{"labels":{"x":"y"}},' * 3 + b'{"labels":{"x":"z"}}]', "application/json", {}),
    ("x" * 200, "application/json", {}),  # over the 100-byte limit below
]


def _backend() -> FakeBackend:
    clock = FixedClock(NOW)
    return FakeBackend(config("default"), AlertStore(clock), clock)


async def _answer(
    direct: bool, body: bytes | str, ctype: str | None, headers: dict[str, str]
) -> Any:
    api = Api(_backend(), direct_routes=direct, max_body_bytes=100 if len(body) == 200 else 2**20)
    status, data, hdrs = await api.request("POST", "/api/v2/alerts", body, ctype, headers=headers)
    stored = sorted(sorted(a.labels.items()) for a in api.backend.store.list())
    return status, data, sorted(hdrs.items()), stored


@pytest.mark.parametrize(("body", "ctype", "headers"), CASES)
async def test_direct_route_answers_as_quart_does(
    body: bytes | str, ctype: str | None, headers: dict[str, str]
) -> None:
    """Status, headers, body and what is stored are those of quart's route."""
    assert await _answer(True, body, ctype, headers) == await _answer(False, body, ctype, headers)


async def raw_exchange(port: int, request: bytes, close_after: bool = False) -> bytes:
    """Send ``request`` on a new connection; the reply (head and some body), or b"" at once
    with ``close_after`` (the client leaves)."""
    stream = await trio.open_tcp_stream("127.0.0.1", port)
    async with stream:
        await stream.send_all(request)
        if close_after:
            return b""
        out = b""
        with trio.move_on_after(5):
            while b"\r\n\r\n" not in out or not out.split(b"\r\n\r\n", 1)[1]:
                chunk = await stream.receive_some(65536)
                if not chunk:
                    break
                out += chunk
        return out


async def test_over_hypercorn_limit_chunked_body_and_client_leaving() -> None:
    """Over a real socket: a chunked body past the limit is a 413 storing nothing, a
    client that leaves mid-body stores nothing, and a good POST is stored (200)."""
    backend = _backend()
    app = create_app(backend, max_body_bytes=64)
    head = b"POST /api/v2/alerts HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
    with trio.fail_after(30):
        async with trio.open_nursery() as nursery:
            port = await nursery.start(serve_api, app, "127.0.0.1", 0)
            big = b'[{"labels":{"alertname":"' + b"x" * 80 + b'"}}]'
            chunked = head + b"Transfer-Encoding: chunked\r\n\r\n"
            chunked += f"{len(big):x}\r\n".encode() + big + b"\r\n0\r\n\r\n"
            reply = await raw_exchange(port, chunked)
            assert reply.startswith(b"HTTP/1.1 413"), reply
            assert b"request body too large (limit 64 bytes)" in reply
            partial = head + b"Content-Length: 40\r\n\r\n" + b'[{"labels":{"alertname":'
            await raw_exchange(port, partial, close_after=True)
            await trio.sleep(0.2)
            assert backend.store.list() == []
            good = b'[{"labels":{"alertname":"ok"}}]'
            reply = await raw_exchange(
                port, head + f"Content-Length: {len(good)}\r\n\r\n".encode() + good
            )
            assert reply.startswith(b"HTTP/1.1 200"), reply
            assert [a.labels for a in backend.store.list()] == [{"alertname": "ok"}]
            nursery.cancel_scope.cancel()


async def test_a_tenants_post_reaches_its_own_pipeline_outside_quart() -> None:
    """With tenancy the direct route resolves the request's pipeline from the scope the
    gate marked (RequestBackend.for_scope), as quart's route does from its context; a
    tenant gone mid-request is quart's 404."""
    pipelines = {None: _backend(), "team-a": _backend()}

    class Directory:
        def backend_for(self, tenant: str | None) -> FakeBackend | None:
            return pipelines.get(tenant)

    backend = RequestBackend(Directory())  # type: ignore[arg-type]
    app = create_app(backend)  # type: ignore[arg-type]
    body = json.dumps([{"labels": {"alertname": "Mine"}}]).encode()

    async def post(tenant: str | None) -> tuple[int, bytes]:
        scope_extra = {TENANT_KEY: tenant} if tenant else {}
        client = app.test_client()
        resp = await client.open(
            "/api/v2/alerts",
            method="POST",
            data=body,
            headers={"Content-Type": "application/json"},
            scope_base=scope_extra,
        )
        return resp.status_code, await resp.get_data(as_text=False)

    assert await post("team-a") == (200, b"")
    assert [a.labels for a in pipelines["team-a"].store.list()] == [{"alertname": "Mine"}]
    assert pipelines[None].store.list() == []
    assert await post(None) == (200, b"")
    assert [a.labels for a in pipelines[None].store.list()] == [{"alertname": "Mine"}]
    assert await post("gone") == (404, b"404 page not found\n")
