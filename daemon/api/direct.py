"""Direct routes: a few hot endpoints answered at the ASGI level, beside quart.

Quart's per-request machinery (a request context, the request and body objects, URL
matching, signals, the response conversion) costs about 0.3 ms a request here: a no-op
POST handler on hypercorn answered 1,293 requests/s through quart-trio and 2,167/s as a
bare ASGI app (4 keep-alive connections, same client, same run). On the notification
critical path (a paced alert with ``group_wait: 0``) that was a fifth of the time from
the request's bytes to the webhook's write, and ingest pays it per POST.

So the endpoint Prometheus calls, ``POST <prefix>/api/v2/alerts``, and the silence POST
(``POST <prefix>/api/v2/silences``, whose answer already waits for an fsync) are
served here with the same handler logic (:func:`daemon.api.app.accept_alerts`,
:func:`daemon.api.silences.accept_silences`; ``served_directly`` in
:mod:`daemon.api.app` lists them) and the same responses: each is built as a quart
``Response`` and sent with quart's own header encoding, in one body message. Every
other request, and every method or path not listed, goes to quart.

What quart did that is done here too: the body limit (a ``Content-Length`` over it is
refused before reading; a chunked body as soon as it passes it), the first header of a
name wins, header values are latin-1. A client that disconnects before its body is
complete gets nothing stored and no answer, as when quart cancelled its handler. One
that disconnects later is not cancelled: a silence whose record is being fsynced is
written and applied, and the answer is dropped.
"""

from __future__ import annotations

import weakref
from collections.abc import Awaitable, Callable, Collection, Mapping
from typing import cast

import trio
from quart import Response
from quart.utils import encode_headers
from werkzeug.exceptions import RequestEntityTooLarge

from daemon.api.limits import AsgiApp, Message, Receive, Scope, Send


class Disconnected(Exception):
    """The client went away before its request body was complete."""


def header(scope: Scope, name: bytes) -> str | None:
    """The first value of header ``name`` (lower case), as quart's ``headers.get``."""
    for key, value in scope["headers"]:
        if key == name:
            return bytes(value).decode("latin-1")
    return None


async def read_body(scope: Scope, receive: Receive, limit: int | None) -> bytes:
    """The whole request body; ``RequestEntityTooLarge`` past ``limit`` bytes.

    Raises :class:`Disconnected` if the client leaves first.
    """
    declared = header(scope, b"content-length")
    length = int(declared) if declared is not None and declared.strip().isdigit() else None
    if limit is not None and length is not None and length > limit:
        raise RequestEntityTooLarge()
    chunks: list[bytes] = []
    size = 0
    take_queued = _queued_taker(receive)
    while True:
        queued = take_queued() if take_queued is not None else None
        message = queued if queued is not None else await receive()
        if message["type"] != "http.request":
            raise Disconnected()
        chunk = message.get("body", b"")
        if chunk:
            size += len(chunk)
            if limit is not None and size > limit:
                raise RequestEntityTooLarge()
            chunks.append(chunk)
        if not message.get("more_body", False):
            # The server's end of the body. hypercorn keeps a keep-alive connection only
            # if its HTTP state machine has seen the whole request when the answer is
            # complete; an answer made before this message closed the connection, at
            # times under the client's next request. The reader queues it together
            # with the body's last bytes (daemon.api.server), so it costs no round.
            break
    return chunks[0] if len(chunks) == 1 else b"".join(chunks)


def _queued_taker(receive: Receive) -> Callable[[], Message | None] | None:
    """For hypercorn's ``receive`` (its app queue's bound ``MemoryReceiveChannel.receive``),
    a call that takes a message already queued, or None if none is; else None.

    trio's ``receive`` waits a scheduler round even for a message that is there (a
    cancel-shielded checkpoint), and a small body is always there when the handler
    starts: that round was ~60 us of a paced alert's way to its notification (timeline
    of marks). Cancellation is still seen at the handler's later checkpoints.
    """
    channel = getattr(receive, "__self__", None)
    if not isinstance(channel, trio.MemoryReceiveChannel):
        return None
    take = channel.receive_nowait

    def take_queued() -> Message | None:
        try:
            return cast(Message, take())
        except trio.WouldBlock:
            return None

    return take_queued


async def send_response(send: Send, response: Response) -> None:
    """``response`` as quart sends it (same status and headers), its body in one message."""
    payload = await response.get_data(as_text=False)
    await send(
        {
            "type": "http.response.start",
            "status": response.status_code,
            "headers": encode_headers(response.headers),
        }
    )
    await send({"type": "http.response.body", "body": payload, "more_body": False})


#: A direct handler: the request's scope and body reader; returns the response.
DirectHandler = Callable[[Scope, Receive], Awaitable[Response | None]]


#: The direct routes of each app that has some (see :func:`register_direct_routes`).
_REGISTERED: weakref.WeakKeyDictionary[object, frozenset[tuple[str, str]]] = (
    weakref.WeakKeyDictionary()
)


def register_direct_routes(app: object, routes: Collection[tuple[str, str]]) -> None:
    """Record that ``app`` (the quart app) answers these (method, path) directly, for
    the server's wire path (:mod:`daemon.api.wire`)."""
    _REGISTERED[app] = frozenset(routes)


def direct_routes_of(app: object) -> frozenset[tuple[str, str]]:
    """The (method, path) pairs :func:`register_direct_routes` recorded for ``app``."""
    try:
        return _REGISTERED.get(app, frozenset())
    except TypeError:  # not weakly referenceable: nothing was recorded
        return frozenset()


def with_direct_routes(app: AsgiApp, routes: Mapping[tuple[str, str], DirectHandler]) -> AsgiApp:
    """``app``, with the requests whose exact (method, path) is in ``routes`` answered by
    their handler instead. A handler returning None sends nothing (the client left)."""

    async def direct(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            handler = routes.get((scope["method"], scope["path"]))
            if handler is not None:
                response = await handler(scope, receive)
                if response is not None:
                    await send_response(send, response)
                return
        await app(scope, receive, send)

    return direct


__all__ = [
    "DirectHandler",
    "Disconnected",
    "direct_routes_of",
    "header",
    "read_body",
    "register_direct_routes",
    "send_response",
    "with_direct_routes",
]
