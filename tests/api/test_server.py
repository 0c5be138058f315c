"""Serving the app over a real loopback socket with hypercorn (daemon.api.server)."""

import socket
import struct
from typing import Any

import httpx
import trio
import trio.testing

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


async def test_cancellation_lets_in_flight_requests_finish(backend: FakeBackend) -> None:
    """A request being handled when serve_api is cancelled still gets its answer."""
    app = create_app(backend)
    entered, release = trio.Event(), trio.Event()

    @app.route("/slow")
    async def slow() -> str:
        entered.set()
        await release.wait()
        return "done"

    server_scope = trio.CancelScope()
    results: list[httpx.Response] = []

    async def run_server(*, task_status: trio.TaskStatus[int] = trio.TASK_STATUS_IGNORED) -> None:
        with server_scope:
            await serve_api(app, "127.0.0.1", 0, task_status=task_status)

    async def client(port: int) -> None:
        async with httpx.AsyncClient() as c:
            results.append(await c.get(f"http://127.0.0.1:{port}/slow"))

    with trio.fail_after(30):
        async with trio.open_nursery() as nursery:
            port = await nursery.start(run_server)
            nursery.start_soon(client, port)
            await entered.wait()
            server_scope.cancel()
            # serve_api is now draining; the handler has not answered yet.
            await trio.testing.wait_all_tasks_blocked()
            assert results == []
            release.set()
    assert [(r.status_code, r.text) for r in results] == [(200, "done")]


class _ClosedCounter:
    """The part of hypercorn's protocol that protocol_send calls when a send fails."""

    def __init__(self) -> None:
        self.closed = 0

    async def handle(self, event: object) -> None:
        self.closed += 1


async def test_answer_sent_while_the_connection_closes_is_not_a_busy_stream() -> None:
    """An answer's bytes sent while the client's EOF closes the stream wait for the close
    instead of raising trio.BusyResourceError (the error hypercorn logged under keep-alive
    POST runs when the client closed its connections)."""
    from hypercorn.config import Config as HypercornConfig
    from hypercorn.events import Closed, RawData
    from hypercorn.trio.worker_context import WorkerContext
    from hypercorn.typing import ConnectionState

    from daemon.api.server import StrictTCPServer

    # trio runs one batch of ready tasks in random order; 30 rounds make it certain
    # (1 - 2**-30) that the close ran first in some round.
    for _ in range(30):
        ours, theirs = trio.socket.socketpair()
        server = StrictTCPServer(
            None,
            HypercornConfig(),
            WorkerContext(None),
            ConnectionState({}),
            trio.SocketStream(ours),
        )
        protocol = _ClosedCounter()
        server.protocol = protocol  # type: ignore[assignment]
        with trio.fail_after(10):
            async with trio.open_nursery() as nursery:
                # The reader task closes (send_eof checkpoints holding the stream's
                # send-conflict detector) while the app's task sends its answer.
                nursery.start_soon(server.protocol_send, Closed())
                nursery.start_soon(server.protocol_send, RawData(b"HTTP/1.1 200 OK\r\n\r\n"))
        theirs.close()


async def test_close_does_not_wait_forever_for_a_stuck_send(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """A send stuck on a client that does not read holds the send lock; the close still
    closes the stream after a bounded wait, which ends that send."""
    from hypercorn.config import Config as HypercornConfig
    from hypercorn.trio.worker_context import WorkerContext
    from hypercorn.typing import ConnectionState

    from daemon.api.server import StrictTCPServer

    ours, theirs = trio.socket.socketpair()
    stream = trio.SocketStream(ours)
    server = StrictTCPServer(
        None, HypercornConfig(), WorkerContext(None), ConnectionState({}), stream
    )
    with trio.fail_after(60):
        async with trio.open_nursery() as nursery:

            async def stuck_sender() -> None:
                async with server.send_lock:
                    await trio.sleep_forever()

            nursery.start_soon(stuck_sender)
            await trio.testing.wait_all_tasks_blocked()
            await server._close()
            assert stream.socket.fileno() == -1
            nursery.cancel_scope.cancel()
    theirs.close()


async def _raw_request(stream: trio.SocketStream, path: str) -> bytes:
    await stream.send_all(f"GET {path} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = await stream.receive_some(65536)
        assert chunk, "closed before an answer"
        data += chunk
    return data


async def _closed_by_server(stream: trio.SocketStream) -> bool:
    """Read until EOF (the server closed) or a reset."""
    try:
        while await stream.receive_some(65536):
            pass
    except trio.BrokenResourceError:
        pass
    return True


async def test_keep_alive_timeout_closes_an_idle_connection_not_a_busy_one(
    backend: FakeBackend, autojump_clock: trio.testing.MockClock
) -> None:
    """hypercorn's keep-alive timeout (5 s) without its per-request idle task: an idle
    connection is closed after it, a request that takes longer is not cut, and the
    timeout counts from the answer."""
    app = create_app(backend)

    @app.route("/slow")
    async def slow() -> str:
        await trio.sleep(12)
        return "done"

    async with trio.open_nursery() as nursery:
        port = await nursery.start(serve_api, app, "127.0.0.1", 0)
        stream = await trio.open_tcp_stream("127.0.0.1", port)
        start = trio.current_time()
        head = await _raw_request(stream, "/slow")
        assert head.startswith(b"HTTP/1.1 200")
        assert trio.current_time() - start >= 12
        answered = trio.current_time()
        with trio.fail_after(30):
            assert await _closed_by_server(stream)
        assert 4.9 <= trio.current_time() - answered <= 6
        await stream.aclose()
        nursery.cancel_scope.cancel()


async def test_shutdown_closes_idle_keep_alive_connections_at_once(backend: FakeBackend) -> None:
    """A client holding an idle keep-alive connection does not hold up the stop for the
    grace period, and its connection is closed."""
    app = create_app(backend)
    server_scope = trio.CancelScope()

    async def run_server(*, task_status: trio.TaskStatus[int] = trio.TASK_STATUS_IGNORED) -> None:
        with server_scope:
            await serve_api(app, "127.0.0.1", 0, grace_seconds=20, task_status=task_status)

    with trio.fail_after(30):
        async with trio.open_nursery() as nursery:
            port = await nursery.start(run_server)
            stream = await trio.open_tcp_stream("127.0.0.1", port)
            assert (await _raw_request(stream, "/-/healthy")).startswith(b"HTTP/1.1 200")
            stopped = trio.current_time()
            server_scope.cancel()
        assert trio.current_time() - stopped < 3
        assert await _closed_by_server(stream)
        await stream.aclose()


def _sized_app(size: int, answered: list[int]) -> Any:
    """An ASGI app answering every GET with ``size`` bytes (a repeating pattern)."""

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            while True:
                kind = (await receive())["type"].rsplit(".", 1)[-1]  # startup / shutdown
                await send({"type": f"lifespan.{kind}.complete"})
                if kind == "shutdown":
                    return
        body = bytes(range(256)) * (size // 256)
        headers = [(b"content-length", str(len(body)).encode())]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": body})
        answered.append(len(body))

    return app


async def test_an_answer_larger_than_the_socket_takes_arrives_whole() -> None:
    """An answer the socket cannot take at once (a client that reads late): what the
    socket takes goes at once, the rest waits for room; the client gets every byte in
    order, and the connection serves the next request."""
    size = 8 * 1024 * 1024
    answered: list[int] = []
    with trio.fail_after(30):
        async with trio.open_nursery() as nursery:
            port = await nursery.start(serve_api, _sized_app(size, answered), "127.0.0.1", 0)
            stream = await trio.open_tcp_stream("127.0.0.1", port)
            for _ in range(2):
                await stream.send_all(b"GET /big HTTP/1.1\r\nHost: x\r\n\r\n")
                await trio.sleep(0.2)  # the server fills the socket and waits
                data = b""
                while b"\r\n\r\n" not in data:
                    data += await stream.receive_some(65536)
                head, _, body = data.partition(b"\r\n\r\n")
                assert head.startswith(b"HTTP/1.1 200")
                while len(body) < size:
                    chunk = await stream.receive_some(1 << 20)
                    assert chunk
                    body += chunk
                assert body == bytes(range(256)) * (size // 256)
            await stream.aclose()
            nursery.cancel_scope.cancel()
    assert answered == [size, size]


async def test_a_client_gone_before_its_answer_ends_only_its_connection() -> None:
    """The client resets its connection before the answer is written: the write fails,
    that connection closes, and the server answers the next client."""
    answered: list[int] = []
    with trio.fail_after(30):
        async with trio.open_nursery() as nursery:
            port = await nursery.start(serve_api, _sized_app(1 << 20, answered), "127.0.0.1", 0)
            for _ in range(5):
                sock = socket.create_connection(("127.0.0.1", port))
                sock.sendall(b"GET /x HTTP/1.1\r\nHost: x\r\n\r\n")
                # SO_LINGER 0: close sends a reset, so the server's write fails.
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                sock.close()
            stream = await trio.open_tcp_stream("127.0.0.1", port)
            await stream.send_all(b"GET /x HTTP/1.1\r\nHost: x\r\n\r\n")
            assert (await stream.receive_some(65536)).startswith(b"HTTP/1.1 200")
            await stream.aclose()
            nursery.cancel_scope.cancel()


async def test_a_whole_request_is_queued_for_its_app_before_it_runs() -> None:
    """A request that arrives whole (head, body and its end in one read) is all in the
    app's queue when the app first runs: the reader hands the pieces over without a
    scheduler round between them (hypercorn's channel send took one each), so hypercorn
    has seen the request's end before any answer can be complete."""
    queued: list[int] = []

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            while True:
                kind = (await receive())["type"].rsplit(".", 1)[-1]
                await send({"type": f"lifespan.{kind}.complete"})
                if kind == "shutdown":
                    return
        queued.append(receive.__self__.statistics().current_buffer_used)
        while (await receive()).get("more_body", False):
            pass
        headers = [(b"content-length", b"0")]
        await send({"type": "http.response.start", "status": 204, "headers": headers})
        await send({"type": "http.response.body", "body": b""})

    with trio.fail_after(30):
        async with trio.open_nursery() as nursery:
            port = await nursery.start(serve_api, app, "127.0.0.1", 0)
            stream = await trio.open_tcp_stream("127.0.0.1", port)
            request = b"POST /x HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nabc"
            for _ in range(20):
                await stream.send_all(request)
                data = b""
                while b"\r\n\r\n" not in data:
                    data += await stream.receive_some(65536)
                assert data.startswith(b"HTTP/1.1 204")
            await stream.aclose()
            nursery.cancel_scope.cancel()
    # The body and its end.
    assert queued == [2] * 20
