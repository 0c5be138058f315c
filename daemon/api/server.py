"""Serving the API app with hypercorn on trio, with a graceful stop on cancellation."""

from __future__ import annotations

import functools
import socket
import ssl
from collections.abc import Sequence

import trio
from hypercorn.config import Config as HypercornConfig
from hypercorn.trio import serve
from quart_trio import QuartTrio

from daemon.api.webconfig import ASGIApp, WebConfigFile, WebGate

#: How long open connections may finish after a stop before they are cut.
DEFAULT_GRACE_SECONDS = 5.0


async def serve_api(
    app: QuartTrio,
    host: str,
    port: int,
    *,
    sock: socket.socket | None = None,
    more_socks: Sequence[socket.socket] = (),
    web_config: WebConfigFile | None = None,
    tls: ssl.SSLContext | None = None,
    grace_seconds: float = DEFAULT_GRACE_SECONDS,
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
    ``tls`` every connection is TLS with that context.
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
    stop = trio.Event()
    server_scope = trio.CancelScope(shield=True)

    served: ASGIApp = app if web_config is None else WebGate(app, web_config)

    async def run(*, task_status: trio.TaskStatus[list[str]] = trio.TASK_STATUS_IGNORED) -> None:
        with server_scope:
            await serve(
                served,
                config,
                shutdown_trigger=stop.wait,
                task_status=task_status,
                mode="asgi",
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
