"""A tiny loopback HTTP sink for plain end-to-end webhook checks (real sockets, no autojump)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from functools import partial

import attrs
import pytest
import trio


@attrs.define
class Received:
    """One request as the sink saw it."""

    head: bytes
    body: bytes


@attrs.define
class LoopbackSink:
    """Answers every request with the next queued status (200 once the queue is empty)."""

    url: str = ""
    statuses: list[int] = attrs.field(factory=list)
    received: list[Received] = attrs.field(factory=list)
    #: Set when the first request has been recorded.
    arrived: trio.Event = attrs.field(factory=trio.Event)

    async def handle(self, stream: trio.SocketStream) -> None:
        data = b""
        while b"\r\n\r\n" not in data:
            chunk = await stream.receive_some(65536)
            if not chunk:
                return
            data += chunk
        head, _, body = data.partition(b"\r\n\r\n")
        length = 0
        for line in head.split(b"\r\n")[1:]:
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"content-length":
                length = int(value)
        while len(body) < length:
            chunk = await stream.receive_some(65536)
            if not chunk:
                return
            body += chunk
        self.received.append(Received(head, body))
        self.arrived.set()
        status = self.statuses.pop(0) if self.statuses else 200
        await stream.send_all(
            f"HTTP/1.1 {status} X\r\nContent-Length: 0\r\nConnection: close\r\n\r\n".encode()
        )
        await stream.aclose()


@pytest.fixture
async def loopback_sink(nursery: trio.Nursery) -> AsyncIterator[LoopbackSink]:
    """A running sink on 127.0.0.1:<ephemeral>; stopped with the test's nursery."""
    sink = LoopbackSink()
    listeners = await nursery.start(partial(trio.serve_tcp, sink.handle, 0, host="127.0.0.1"))
    port = listeners[0].socket.getsockname()[1]
    sink.url = f"http://127.0.0.1:{port}/hook"
    yield sink
