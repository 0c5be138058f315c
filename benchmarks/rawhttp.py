"""A minimal HTTP/1.1 keep-alive client on raw sockets, for the benchmarks' POST loads.

The client must not be what a benchmark measures. httpx spent about 1.7 ms of CPU per
100-alert POST here (and each ``AsyncClient`` builds an SSL context as it starts), so
four httpx connections topped out near 30k alerts/s whichever daemon answered: in issue
15's ingest both Alertmanager and tocsin read ~30k, and tocsin/AM ~1.0, while this
client (0.13 ms a POST) let Alertmanager take 43-57k alerts/s and tocsin 43-44k.

Each request is written whole; the answer is read by its ``Content-Length`` (every
daemon answer these benchmarks POST to has one; a chunked answer is refused rather than
misread).
"""

from __future__ import annotations

import urllib.parse

import trio


async def request(stream: trio.SocketStream, raw: bytes, buf: bytearray) -> tuple[int, bytes]:
    """Send ``raw`` (a whole request) and read one answer; its status and body. ``buf``
    carries bytes read past the answer to the next call on the same connection."""
    await stream.send_all(raw)
    while True:
        end = buf.find(b"\r\n\r\n")
        if end >= 0:
            break
        data = await stream.receive_some(65536)
        if not data:
            raise RuntimeError("connection closed")
        buf += data
    head = bytes(buf[:end]).lower()
    status = int(head[9:12])
    size = 0
    for line in head.split(b"\r\n"):
        if line.startswith(b"content-length:"):
            size = int(line.split(b":", 1)[1])
        elif line.startswith(b"transfer-encoding:"):
            raise RuntimeError("a chunked answer: this client reads Content-Length only")
    while len(buf) < end + 4 + size:
        data = await stream.receive_some(65536)
        if not data:
            raise RuntimeError("connection closed")
        buf += data
    body = bytes(buf[end + 4 : end + 4 + size])
    del buf[: end + 4 + size]
    return status, body


async def post_bodies(
    url: str,
    path: str,
    bodies: list[bytes],
    connections: int,
    headers: dict[str, str] | None = None,
    answers: list[bytes] | None = None,
) -> None:
    """POST every body to ``url`` + ``path`` (JSON), over ``connections`` keep-alive
    connections each taking the next body once its answer is in; any status but 200
    fails the run. With ``answers``, each answer's body is appended to it."""
    parts = urllib.parse.urlsplit(url)
    host, port = parts.hostname or "127.0.0.1", parts.port or 80
    extra = "".join(f"{name}: {value}\r\n" for name, value in (headers or {}).items())
    send, receive = trio.open_memory_channel[bytes](len(bodies))
    for b in bodies:
        send.send_nowait(b)
    send.close()

    async def worker() -> None:
        stream = await trio.open_tcp_stream(host, port)
        buf = bytearray()
        async with stream:
            async for body in receive:
                raw = (
                    f"POST {path} HTTP/1.1\r\nHost: {host}:{port}\r\n{extra}"
                    f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
                ).encode() + body
                status, answer = await request(stream, raw, buf)
                if status != 200:
                    raise RuntimeError(f"POST {path}: {status}")
                if answers is not None:
                    answers.append(answer)

    async with trio.open_nursery() as nursery:
        for _ in range(connections):
            nursery.start_soon(worker)
