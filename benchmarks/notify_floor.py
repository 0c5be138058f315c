"""The floor of a paced notification in Python on trio: the least a trio program can do.

A server that reads each ``POST /api/v2/alerts``, decodes the JSON, opens a connection to
the webhook sink (or uses the one it kept, if the sink keeps connections), writes a
minimal webhook naming the alert's ``alertname`` as its group, reads the sink's answer,
and answers the POST with an empty 200. No store, no
routing, no groups, no pipeline, no HTTP library; ``GET /-/ready`` answers 200 so the
benchmark's start-up check works. :mod:`benchmarks.notify_latency` runs it beside the
daemons with ``--floor``: what is left between its figures and Alertmanager's is what
the language and the event loop cost on this machine, not anything tocsin does.

    .venv/bin/python -m benchmarks.notify_floor PORT SINK_PORT
"""

from __future__ import annotations

import json
import sys
from contextlib import AbstractContextManager

import trio

from benchmarks.harness import Daemon, start_module

_OK = b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"


def _content_length(head: bytes) -> int:
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            return int(value)
    return 0


class _Receiver:
    """The sink, over a kept connection while it keeps it (HTTP/1.1) and a new one per
    webhook when it closes them (HTTP/1.0)."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.stream: trio.SocketStream | None = None

    async def notify(self, body: bytes) -> None:
        name = json.loads(body)[0]["labels"]["alertname"]
        payload = json.dumps({"groupLabels": {"alertname": name}, "alerts": []}).encode()
        if self.stream is None:
            self.stream = await trio.open_tcp_stream("127.0.0.1", self.port)
        stream = self.stream
        await stream.send_all(
            b"POST /hook HTTP/1.1\r\nHost: sink\r\nContent-Type: application/json\r\n"
            b"Content-Length: %d\r\n\r\n" % len(payload) + payload
        )
        answer = b""
        while b"\r\n\r\n" not in answer:  # the sink's answers have no body
            data = await stream.receive_some(65536)
            if not data:
                break
            answer += data
        if not answer.startswith(b"HTTP/1.1"):
            self.stream = None
            await stream.aclose()


async def _serve_connection(receiver: _Receiver, stream: trio.SocketStream) -> None:
    buffer = b""
    while data := await stream.receive_some(65536):
        buffer += data
        while (end := buffer.find(b"\r\n\r\n")) >= 0:
            head = buffer[:end]
            length = _content_length(head)
            if len(buffer) < end + 4 + length:
                break
            body = buffer[end + 4 : end + 4 + length]
            buffer = buffer[end + 4 + length :]
            if head.startswith(b"POST /api/v2/alerts "):
                await receiver.notify(body)
            await stream.send_all(_OK)


async def serve(port: int, sink_port: int) -> None:
    receiver = _Receiver(sink_port)

    async def handler(stream: trio.SocketStream) -> None:
        await _serve_connection(receiver, stream)

    await trio.serve_tcp(handler, port, host="127.0.0.1")


def start_floor(sink_port: int) -> AbstractContextManager[Daemon]:
    """The floor server in its own process, ready."""
    return start_module("trio floor", "benchmarks.notify_floor", "{port}", str(sink_port))


if __name__ == "__main__":
    trio.run(serve, int(sys.argv[1]), int(sys.argv[2]))
