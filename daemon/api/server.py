"""Serving the API app with hypercorn on trio, with a graceful stop on cancellation.

hypercorn's own ``serve`` is replaced by a small copy of its trio worker loop so that
each connection runs :class:`StrictTCPServer`, which differs from hypercorn's
``TCPServer`` in these places:

- every byte read goes through :class:`daemon.api.framing.RequestFraming` before h11
  sees it: ambiguous framing (CL+TE, repeated Content-Length, obs-fold) gets a 400 and
  the connection is closed, and heads and bodies have read deadlines (h11 and hypercorn
  have no option for either; hypercorn's ``read_timeout`` is per read, so one byte
  every few seconds holds a connection forever);
- closing a connection is shielded. hypercorn closes a ``Connection: close`` (or
  HTTP/1.0) connection from inside the app's task, which quart-trio has just
  cancelled, so the close never happens and the client waits for EOF until it gives up
  (hypercorn issue #330). That was the ">5 s without an answer" seen with such
  clients.
- the end of a connection (``send_eof`` and close) waits for the send lock. trio's
  ``SocketStream.send_eof`` holds the stream's send-conflict detector across a
  checkpoint, and hypercorn calls it without the lock that guards ``send_all``; when
  the client closed a keep-alive connection while the app's task was finishing its
  answer, that answer's ``send_all`` hit the detector and hypercorn logged
  ``trio.BusyResourceError: another task is currently sending data``.
- keep-alive's timeout is a deadline on the connection's read, not a task restarted per
  request (:class:`_KeepAliveWatch`);
- an answer's bytes are written to the socket at once when it has room, without the
  scheduler rounds of the lock and the stream (:meth:`StrictTCPServer._send_raw`), and
  a request's pieces go to its app task the same way (:func:`_put_without_rounds`);
- a plain request to one of the app's direct routes, arriving while nothing else is in
  progress on the connection, is taken from the bytes read and handed to the app
  without h11 and hypercorn's stream (:mod:`daemon.api.wire`, the measurement there).
"""

from __future__ import annotations

import functools
import math
import os
import socket
import ssl
import sys
from collections.abc import Awaitable, Callable, Sequence

import h11
import trio
from hypercorn.config import Config as HypercornConfig
from hypercorn.events import Closed, Event, RawData, Updated
from hypercorn.protocol.h11 import H11Protocol
from hypercorn.trio.lifespan import Lifespan
from hypercorn.trio.task_group import TaskGroup
from hypercorn.trio.tcp_server import MAX_RECV, TCPServer
from hypercorn.trio.worker_context import WorkerContext
from hypercorn.typing import (
    AppWrapper,
    ASGIReceiveEvent,
    ASGISendEvent,
    ConnectionState,
    Scope,
)
from hypercorn.utils import wrap_app
from quart_trio import QuartTrio

from daemon.api.direct import direct_routes_of
from daemon.api.framing import (
    DEFAULT_HEADER_TIMEOUT,
    DEFAULT_READ_TIMEOUT,
    FramingError,
    RequestFraming,
)
from daemon.api.limits import Message
from daemon.api.webconfig import ASGIApp, WebConfigFile, WebGate
from daemon.api.wire import (
    Pending,
    ResponseError,
    Verdict,
    WireRequest,
    encode_response,
    request_lines,
    take_request,
)

#: How long open connections may finish after a stop before they are cut.
DEFAULT_GRACE_SECONDS = 5.0
#: Bound on the shielded close of one connection.
_CLOSE_SECONDS = 2.0


def _bad_request(reason: str) -> bytes:
    """Go's net/http answer to a malformed request (``400 Bad Request: <reason>``)."""
    text = f"400 Bad Request: {reason}".encode()
    return (
        b"HTTP/1.1 400 Bad Request\r\nContent-Type: text/plain; charset=utf-8\r\n"
        b"Connection: close\r\nContent-Length: " + str(len(text)).encode() + b"\r\n\r\n" + text
    )


class _KeepAliveWatch:
    """Stands in for hypercorn's per-connection idle task (``TrioSingleTask``).

    hypercorn stops that task when a request arrives and starts a new one when the
    answer is done: a lock and a ``nursery.start`` per request, about a fifth of a small
    request's cost (silence POSTs at 4 connections: 1,509-1,561/s without it against
    1,187-1,265/s). Here the keep-alive timeout is a deadline on the connection's read
    (:meth:`StrictTCPServer._read_data`), and one task per connection, started by
    hypercorn's single call at the start, waits for the server's shutdown.
    """

    def __init__(self, server: StrictTCPServer) -> None:
        self._server = server
        self._started = False

    async def restart(self, task_group: object, action: object) -> None:
        if not self._started:
            self._started = True
            await task_group._nursery.start(self._server._watch_shutdown)  # type: ignore[attr-defined]

    async def stop(self) -> None:
        return None


def _put_without_rounds(task_group: TaskGroup) -> None:
    """Make the queue from this connection's reader into each request's app task take a
    message without a scheduler round when there is room.

    hypercorn's reader handed each piece of a request (its body, then the body's end)
    to the app with trio's channel ``send``, a checkpoint each, so the reader stopped
    between the body and its end: two rounds a request, and the direct routes (which
    read a body to its end message, :func:`daemon.api.direct.read_body`) waited a round
    for the end.
    A full queue (hypercorn's ``max_app_queue_size``) still waits, as before. The task
    group's ``spawn_app`` is wrapped on this one instance.
    """
    spawn = task_group.spawn_app

    async def spawn_app(
        app: AppWrapper,
        config: HypercornConfig,
        scope: Scope,
        send: Callable[[ASGISendEvent | None], Awaitable[None]],
    ) -> Callable[[ASGIReceiveEvent], Awaitable[None]]:
        put = await spawn(app, config, scope, send)
        channel = getattr(put, "__self__", None)
        if not isinstance(channel, trio.MemorySendChannel):
            return put  # not the trio channel this was written against: as hypercorn

        async def put_now(message: ASGIReceiveEvent) -> None:
            try:
                channel.send_nowait(message)
            except trio.WouldBlock:
                await channel.send(message)

        return put_now

    task_group.spawn_app = spawn_app  # type: ignore[method-assign]


#: How an HTTP/2 client's connection preface (prior knowledge) starts.
_H2_PREFACE_START = b"PRI * HTTP/2.0"


class StrictTCPServer(TCPServer):
    """hypercorn's connection handler with strict framing, deadlines and a safe close."""

    header_timeout = DEFAULT_HEADER_TIMEOUT
    read_timeout = DEFAULT_READ_TIMEOUT

    def __init__(
        self, *args: object, wire_lines: frozenset[bytes] = frozenset(), **kwargs: object
    ) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self.idle_task = _KeepAliveWatch(self)  # type: ignore[assignment]
        #: The request-line starts of the app's direct routes (daemon.api.wire).
        self._wire_lines = wire_lines
        #: Between requests (as hypercorn's Updated events say) since _idle_since.
        self._idle = True
        self._idle_since = trio.current_time()
        self._shutting_down = False
        #: The scope of the read in progress, whose deadline an answer may bring closer.
        self._read_scope: trio.CancelScope | None = None
        self._watch_scope: trio.CancelScope | None = None
        #: While a held direct request's body arrives: how many bytes it takes in all.
        self._wire_needs = 0
        #: While the reader waits for answers after the client's end: set when the
        #: protocol reports idleness or closes (None otherwise: no event per request).
        self._progress: trio.Event | None = None
        self._closing = False

    def _idle_deadline(self) -> float:
        """When this connection is closed for idling (hypercorn's keep-alive timeout, or
        at once while the server shuts down); inf while a request is in progress."""
        if not self._idle:
            return math.inf
        if self._stopping():
            return -math.inf
        return self._idle_since + self.config.keep_alive_timeout

    def _stopping(self) -> bool:
        """Whether the server is shutting down, as hypercorn asks it (the event itself:
        this connection's watcher learns of it a scheduler round later)."""
        return self._shutting_down or self.context.terminated.is_set()

    def _idle_changed(self) -> None:
        scope = self._read_scope
        if scope is not None:
            scope.deadline = min(scope.deadline, self._idle_deadline())

    async def _watch_shutdown(self, task_status: trio.TaskStatus[None]) -> None:
        with trio.CancelScope() as scope:
            self._watch_scope = scope
            task_status.started()
            await self.context.terminated.wait()
            self._shutting_down = True
            self._idle_changed()

    async def protocol_send(self, event: Event) -> None:
        if isinstance(event, Updated):
            # hypercorn's idle task, without a task per request (see _KeepAliveWatch).
            self._idle = event.idle
            if event.idle:
                self._idle_since = trio.current_time()
                self._idle_changed()
                self._progressed()
            return
        if isinstance(event, RawData):
            await self._send_raw(event.data)
            return
        if isinstance(event, Closed):
            self._closing = True
            self._progressed()
            # Shielded: the caller may be the app's task, already cancelled by quart-trio.
            with trio.CancelScope(shield=True), trio.move_on_after(_CLOSE_SECONDS):
                await super().protocol_send(event)
            return
        await super().protocol_send(event)

    def _progressed(self) -> None:
        if self._progress is not None:
            self._progress.set()

    async def _answer_before_closing(self) -> None:
        """The client ended its side of the connection after its request: answer what it
        asked before closing, as Go's server does (hypercorn closed at once and its
        answer was dropped: a half-closing client, an alert stored and no answer).

        Waits while a request is in progress (pipelined ones in turn) until hypercorn
        closes the connection after the last answer, at most ``read_timeout``. A request
        whose body the end cut short is h11's to refuse, which closes too.
        """
        with trio.move_on_after(self.read_timeout):
            while not self._idle and not self._closing:
                self._progress = trio.Event()
                await self._progress.wait()
        self._progress = None

    async def _send_raw(self, data: bytes) -> None:
        """hypercorn's send of an answer's bytes, without the scheduler rounds that buy
        nothing.

        hypercorn took the send lock and sent through trio's stream, and each of the two
        checkpoints even when nothing waits; h11 ends a Content-Length body with an
        empty chunk, which hypercorn sent too (the lock and a checkpoint again). So a
        small answer cost four scheduler rounds, about a tenth of a small request's
        time. Here an empty chunk is nothing to send, the lock is taken at once when it
        is free, and the bytes go to the socket at once when it has room; the rest (a
        full socket buffer, TLS) through the stream as before. Shielded and under the
        lock as hypercorn's; a failed send hands the protocol ``Closed`` the same way.
        """
        if not data:
            return
        lock = self.send_lock
        try:
            lock.acquire_nowait()
        except trio.WouldBlock:
            await lock.acquire()
        try:
            with trio.CancelScope(shield=True):
                sent = self._send_now(data)
                if sent < len(data):
                    await self.stream.send_all(memoryview(data)[sent:] if sent else data)
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            await self.protocol.handle(Closed())
        finally:
            lock.release()

    def _send_now(self, data: bytes) -> int:
        """Write what the socket takes now, without waiting; 0 when the stream is not a
        plain open socket (TLS, closed: the stream's own send handles and reports it).
        The caller holds the send lock, the only way to this stream's sends."""
        # hypercorn annotates its stream as an SSLStream; plain TCP is a SocketStream.
        stream: trio.abc.Stream = self.stream
        if type(stream) is not trio.SocketStream:
            return 0
        fd = stream.socket.fileno()
        if fd < 0:
            return 0
        try:
            return os.write(fd, data)
        except BlockingIOError:
            return 0
        except OSError as exc:
            # What trio's send_all raises for a reset or a closed peer.
            raise trio.BrokenResourceError(str(exc)) from exc

    async def _close(self) -> None:
        # hypercorn's close (send_eof, then aclose) with send_eof serialized with
        # send_all (see the module docstring). The task holding the lock may get here
        # itself: a failed send_all hands Closed to the protocol, which can close the
        # connection from inside that call; trio's Lock is not re-entrant. The wait for
        # the lock is bounded and aclose always runs: a send stuck on a client that
        # does not read is ended by the close (it then sees ClosedResourceError).
        try:
            with trio.move_on_after(_CLOSE_SECONDS):
                if self.send_lock.statistics().owner is trio.lowlevel.current_task():
                    await self._send_eof()
                else:
                    async with self.send_lock:
                        await self._send_eof()
        finally:
            await self.stream.aclose()

    async def _send_eof(self) -> None:
        try:
            await self.stream.send_eof()
        except (trio.BrokenResourceError, trio.ClosedResourceError, AttributeError):
            pass  # the peer is gone already, or the stream is TLS (no half-close)

    async def _read_data(self) -> None:
        # hypercorn's run has made this connection's task group by now, and no request
        # has been read yet.
        _put_without_rounds(self._task_group)
        try:
            await self._read_requests()
        finally:
            if self._watch_scope is not None:
                self._watch_scope.cancel()

    async def _read_requests(self) -> None:
        framing: RequestFraming | None = RequestFraming(
            header_timeout=self.header_timeout, read_timeout=self.read_timeout
        )
        per_read = self.config.read_timeout or math.inf
        #: Bytes read and kept from h11 while they may be a direct request.
        held = bytearray()
        if type(self.protocol.protocol) is not H11Protocol:
            framing = None  # HTTP/2 chosen by ALPN: see below
        first = True
        while True:
            # One cancel scope per read, not three: hypercorn's per-read timeout, the
            # framing deadline and the keep-alive timeout all close the connection, so
            # the earliest one is enough.
            deadline = min(
                framing.deadline() if framing is not None else math.inf,
                trio.current_time() + per_read,
                self._idle_deadline(),
            )
            try:
                with trio.move_on_at(deadline) as late:
                    self._read_scope = late
                    data = await self.stream.receive_some(MAX_RECV)
            except (trio.ClosedResourceError, trio.BrokenResourceError):
                break
            finally:
                self._read_scope = None
            if late.cancelled_caught:
                break  # as Go's server: a read past its deadline closes the connection
            data = bytes(data)
            if first and data.startswith(_H2_PREFACE_START):
                # HTTP/2 (ALPN, prior knowledge as here, or an h2c upgrade below):
                # binary frames that h2 frames itself, not HTTP/1.1 heads. Fed to the
                # framing they read as one endless head, and the connection was cut at
                # 16 KiB or after the header timeout.
                framing = None
            first = False
            if framing is not None:
                try:
                    framing.feed(data, trio.current_time())
                except FramingError as exc:
                    if framing.requests == 0:
                        # Nothing else was sent on this connection, so the 400 cannot cut
                        # into another response.
                        await super().protocol_send(RawData(_bad_request(str(exc))))
                    break
            if self._wire_lines and framing is not None:
                if data and (held or self._wire_ready()):
                    held += data
                    if len(held) < self._wire_needs:
                        # The body of a held request is still arriving: its head was
                        # read already, and reading it again on every read of a slow
                        # body cost its whole parse each time.
                        continue
                    data, keep = await self._serve_wire(held)
                    if not keep:
                        break
                    if not data:
                        continue
                elif held:
                    # The client ended its side inside a request we held: h11 has it,
                    # then the end, and answers as it would have.
                    await self.protocol.handle(RawData(bytes(held)))
                    held.clear()
                    self._wire_needs = 0
            await self.protocol.handle(RawData(data))
            if framing is not None and type(self.protocol.protocol) is not H11Protocol:
                framing = None  # switched to HTTP/2 (an h2c upgrade, or the preface)
            if data == b"":
                await self._answer_before_closing()
                break
        await self.protocol_send(Closed())

    def _wire_ready(self) -> bool:
        """Whether a request starting now may be taken on the wire: between requests,
        not shutting down, HTTP/1.1 with nothing in h11's buffer."""
        if not self._idle or self._stopping():
            return False
        protocol = self.protocol.protocol
        if type(protocol) is not H11Protocol:
            return False
        connection = protocol.connection
        return (
            type(connection) is h11.Connection
            and connection.their_state is h11.IDLE
            and connection.our_state is h11.IDLE
            and not connection.trailing_data[0]
        )

    async def _serve_wire(self, held: bytearray) -> tuple[bytes, bool]:
        """Answer the direct requests at the front of ``held`` (bytes read and kept
        from h11, see :mod:`daemon.api.wire`); return the bytes h11 gets now (all of
        ``held`` once it is not ours) and False if the connection must close."""
        while held:
            found = take_request(held, self._wire_lines)
            if isinstance(found, Pending):
                if found.head_done:
                    # Inside a request, as hypercorn is once h11 has its head: the
                    # keep-alive timeout no longer applies (the framing's does).
                    self._idle = False
                self._wire_needs = found.needs
                return b"", True
            self._wire_needs = 0
            if found is Verdict.H11:
                data = bytes(held)
                held.clear()
                return data, True
            del held[: found.end]
            if not await self._answer_wire(found):
                return b"", False
        return b"", True

    async def _answer_wire(self, request: WireRequest) -> bool:
        """Run the app for ``request`` in this task and write its answer; False if
        the connection closes after it.

        The app gets what hypercorn would give it (the scope, the whole body in one
        message) and runs as under hypercorn's task group: an exception is logged and
        answered 500 with the connection closed. Its answer is written as soon as it
        is complete, even while the app runs on (the limiter answers 503 at
        ``--web.timeout`` and returns only when the handler does: written when the app
        returned, that answer came when the handler ended, as late as with no timeout
        at all); one the app leaves unfinished is not written at all, and the
        connection is closed (hypercorn would have written the part it had and closed).
        A second ``receive`` waits: the direct handlers never make one, and the
        connection is not read while the app runs.
        """
        protocol = self.protocol.protocol
        assert isinstance(protocol, H11Protocol)
        protocol.keep_alive_requests += 1
        self._idle = False
        scope = {
            "type": "http",
            "http_version": "1.1",
            "asgi": {"spec_version": "2.1", "version": "3.0"},
            "method": request.method,
            "scheme": "https" if protocol.ssl else "http",
            "path": request.path,
            "raw_path": request.path.encode("ascii"),
            "query_string": request.query_string,
            "root_path": self.config.root_path,
            "headers": request.headers,
            "client": protocol.client,
            "server": protocol.server,
            "state": protocol.connection_state.copy(),
            "extensions": {},
        }
        body: bytes | None = request.body
        start: Message | None = None
        chunks: list[bytes] = []
        complete = False

        async def receive() -> Message:
            nonlocal body
            if body is None:
                await trio.sleep_forever()
            message: Message = {"type": "http.request", "body": body, "more_body": False}
            body = None
            return message

        server_headers = self.config.response_headers("h11")
        #: Once the answer is written: whether the connection closes after it.
        written: bool | None = None

        async def send(message: Message) -> None:
            nonlocal start, complete, written
            if message["type"] == "http.response.start" and start is None:
                start = message
            elif message["type"] == "http.response.body" and start is not None and not complete:
                chunks.append(bytes(message.get("body", b"")))
                complete = not message.get("more_body", False)
                if complete:
                    try:
                        data, closes = encode_response(
                            int(start["status"]),
                            start.get("headers", ()),
                            b"".join(chunks),
                            server_headers,
                        )
                    except ResponseError:
                        return  # answered as a crash once the app has returned
                    written = closes
                    await self._send_raw(data)

        failed = False
        try:
            await self.app(scope, receive, send, trio.to_thread.run_sync, trio.from_thread.run)  # type: ignore[arg-type]
        except trio.Cancelled:
            raise
        except BaseExceptionGroup as error:
            _, others = error.split(trio.Cancelled)
            if others is None:
                raise
            failed = True
            # Inside the handler, as hypercorn logs it: the record carries the traceback.
            await self.config.log.exception("Error in ASGI Framework")
        except Exception:
            failed = True
            await self.config.log.exception("Error in ASGI Framework")
        if written is not None:
            closes = written
        else:
            if start is not None and not complete:
                return False
            try:
                if start is None:
                    raise ResponseError("no answer")
                data, closes = encode_response(
                    int(start["status"]), start.get("headers", ()), b"".join(chunks), server_headers
                )
            except ResponseError:
                if not failed:
                    await self.config.log.exception("Error in ASGI Framework")
                # hypercorn's answer to an app that ended without one.
                data, closes = encode_response(
                    500, ((b"content-length", b"0"), (b"connection", b"close")), b"", server_headers
                )
            await self._send_raw(data)
        if closes or self._stopping():
            # Stopping: hypercorn ends a connection after the answer in progress too,
            # and takes no request queued behind it.
            return False
        self._idle = True
        self._idle_since = trio.current_time()
        return True


async def _worker_serve(
    app: AppWrapper,
    config: HypercornConfig,
    *,
    shutdown_trigger: Callable[[], Awaitable[None]],
    wire_lines: frozenset[bytes] = frozenset(),
    task_status: trio.TaskStatus[list[str]] = trio.TASK_STATUS_IGNORED,
) -> None:
    """hypercorn's ``trio.run.worker_serve`` (TCP only) with :class:`StrictTCPServer`."""
    lifespan_state: dict[str, object] = {}
    lifespan = Lifespan(app, config, lifespan_state)
    context = WorkerContext(None)
    async with trio.open_nursery() as lifespan_nursery:
        await lifespan_nursery.start(lifespan.handle_lifespan)
        await lifespan.wait_for_startup()
        async with trio.open_nursery() as server_nursery:
            sockets = config.create_sockets()
            listeners: list[trio.abc.Listener[trio.abc.Stream]] = []
            binds = []
            ssl_context = config.create_ssl_context()
            for sock in sockets.secure_sockets:
                sock.listen(config.backlog)
                assert ssl_context is not None
                listeners.append(
                    trio.SSLListener(
                        trio.SocketListener(trio.socket.from_stdlib_socket(sock)),
                        ssl_context,
                        https_compatible=True,
                    )
                )
                binds.append(f"https://{sock.getsockname()[0]}:{sock.getsockname()[1]}")
            for sock in sockets.insecure_sockets:
                sock.listen(config.backlog)
                listeners.append(trio.SocketListener(trio.socket.from_stdlib_socket(sock)))
                binds.append(f"http://{sock.getsockname()[0]}:{sock.getsockname()[1]}")
            task_status.started(binds)
            async with trio.open_nursery() as accept_nursery:
                accept_nursery.start_soon(
                    functools.partial(
                        trio.serve_listeners,
                        functools.partial(
                            StrictTCPServer,
                            app,
                            config,
                            context,
                            ConnectionState(lifespan_state.copy()),
                            wire_lines=wire_lines,
                        ),
                        listeners,
                        handler_nursery=server_nursery,
                    )
                )
                await shutdown_trigger()
                accept_nursery.cancel_scope.cancel()
            await context.terminated.set()
            server_nursery.cancel_scope.deadline = trio.current_time() + config.graceful_timeout
        await lifespan.wait_for_shutdown()
        lifespan_nursery.cancel_scope.cancel()


async def serve_api(
    app: QuartTrio | ASGIApp,
    host: str,
    port: int,
    *,
    sock: socket.socket | None = None,
    more_socks: Sequence[socket.socket] = (),
    web_config: WebConfigFile | None = None,
    tls: ssl.SSLContext | None = None,
    grace_seconds: float = DEFAULT_GRACE_SECONDS,
    wire: bool = True,
    task_status: trio.TaskStatus[int] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Serve ``app`` on ``host:port``; ``task_status.started(bound_port)`` once listening.

    Cancellation: cancelling the caller stops accepting connections, lets in-flight
    requests finish for up to ``grace_seconds``, then returns by re-raising the
    cancellation. The server runs in a shielded scope so that the stop is graceful
    rather than an immediate cut.

    Error handling: bind failures (address in use) propagate before ``started``.
    With ``sock`` (and ``more_socks``), serve those listening sockets instead of
    binding ``host:port``; the port reported is the first socket's. With
    ``web_config`` every request passes :class:`daemon.api.webconfig.WebGate`; with
    ``tls`` every connection is TLS with that context. The app's direct routes
    (:func:`daemon.api.direct.direct_routes_of`) are taken on the wire
    (:mod:`daemon.api.wire`) unless ``wire`` is False.
    """
    config = HypercornConfig() if tls is None else _TLSConfig(tls)
    if sock is not None:
        # A socket the caller bound already (so it knew the port before building
        # anything that embeds the external URL); hypercorn takes it by descriptor.
        # hypercorn takes the descriptor over and closes it; detach so that our socket
        # object does not close the same number again later.
        config.bind = [f"fd://{s.detach()}" for s in (sock, *more_socks)]
    else:
        config.bind = [f"[{host}]:{port}" if ":" in host else f"{host}:{port}"]
    config.accesslog = None
    # tocsin logs its own web.listening event; hypercorn's banner would be a second,
    # differently formatted line on stdout.
    config.loglevel = "WARNING"
    config.graceful_timeout = grace_seconds
    # Go's server (Alertmanager's) keeps a connection for any number of requests;
    # hypercorn ends it after 1,000 ("Connection: close" on the last answer), so a
    # Prometheus posting alerts had to reconnect every 1,000 POSTs.
    config.keep_alive_max_requests = sys.maxsize
    stop = trio.Event()
    server_scope = trio.CancelScope(shield=True)
    served: ASGIApp = app if web_config is None else WebGate(app, web_config)
    wrapped = wrap_app(served, config.wsgi_max_body_size, "asgi")
    wire_lines = request_lines(direct_routes_of(app)) if wire else frozenset()

    async def run(*, task_status: trio.TaskStatus[list[str]] = trio.TASK_STATUS_IGNORED) -> None:
        with server_scope:
            await _worker_serve(
                wrapped,
                config,
                shutdown_trigger=stop.wait,
                wire_lines=wire_lines,
                task_status=task_status,
            )

    async with trio.open_nursery() as nursery:
        binds: list[str] = await nursery.start(functools.partial(run))
        task_status.started(int(binds[0].rsplit(":", 1)[1]))
        try:
            await trio.sleep_forever()
        finally:
            stop.set()
            # Hypercorn drains for grace_seconds itself; this deadline bounds the rest.
            server_scope.deadline = trio.current_time() + grace_seconds + 1.0


class _TLSConfig(HypercornConfig):
    """hypercorn's config with TLS from our context (hypercorn would build its own from
    file names, once; ours re-reads the web config per connection)."""

    def __init__(self, context: ssl.SSLContext) -> None:
        super().__init__()
        self._context = context

    @property
    def ssl_enabled(self) -> bool:
        return True

    def create_ssl_context(self) -> ssl.SSLContext | None:
        return self._context
