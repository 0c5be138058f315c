"""Strict request framing: ambiguous requests get a 400 and a closed connection, never a
smuggled second request; slow clients meet read deadlines; Connection: close closes."""

from __future__ import annotations

import contextlib
import json
import math
from collections.abc import AsyncIterator

import h11
import pytest
import trio
from hypothesis import given
from hypothesis import strategies as st

from daemon.api import create_app
from daemon.api.framing import FramingError, RequestFraming
from daemon.api.server import StrictTCPServer, serve_api
from tests.api.conftest import FakeBackend

SMUGGLED_ALERT = json.dumps([{"labels": {"alertname": "smuggled"}}]).encode()
SMUGGLED = (
    b"POST /api/v2/alerts HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
    b"Content-Length: " + str(len(SMUGGLED_ALERT)).encode() + b"\r\n\r\n" + SMUGGLED_ALERT
)


def _chunked_then_smuggled(te_header: bytes, extra: bytes = b"") -> bytes:
    """A POST whose Content-Length covers the smuggled request, whose chunked body ends
    before it: a CL-reading proxy sees one request, a TE-reading server two."""
    body = b"0\r\n\r\n" + SMUGGLED
    return (
        b"POST /api/v2/alerts HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        + extra
        + b"Content-Length: "
        + str(len(body)).encode()
        + b"\r\n"
        + te_header
        + b"\r\n\r\n"
        + body
    )


AMBIGUOUS = {
    "cl+te": _chunked_then_smuggled(b"Transfer-Encoding: chunked"),
    "cl+te upper": _chunked_then_smuggled(b"TRANSFER-ENCODING: CHUNKED"),
    "cl+te spaces": _chunked_then_smuggled(b"Transfer-Encoding:   chunked  "),
    "cl+te tab": _chunked_then_smuggled(b"transfer-encoding:\tchunked"),
    "cl+te folded": _chunked_then_smuggled(b"X-Pad: a\r\n Transfer-Encoding: chunked"),
    "obs-fold": (
        b"GET /api/v2/status HTTP/1.1\r\nHost: x\r\nX-A: 1\r\n\tcontinued\r\n\r\n" + SMUGGLED
    ),
    "two equal content-lengths": (
        b"POST /api/v2/alerts HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        b"Content-Length: 2\r\nContent-Length: 2\r\n\r\n[]" + SMUGGLED
    ),
    "conflicting content-lengths": (
        b"POST /api/v2/alerts HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        b"Content-Length: 2\r\nContent-Length: 200\r\n\r\n[]" + SMUGGLED
    ),
    "huge content-length": (
        b"POST /api/v2/alerts HTTP/1.1\r\nHost: x\r\nContent-Length: " + b"9" * 5000 + b"\r\n\r\n"
    ),
    "content-length list": (
        b"POST /api/v2/alerts HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        b"Content-Length: 2, 2\r\n\r\n[]" + SMUGGLED
    ),
    # h11 takes lines ended by a bare LF: so must the checks.
    "cl+te bare lf": _chunked_then_smuggled(b"Transfer-Encoding: chunked").replace(
        b"\r\n", b"\n", 5
    ),
    "cl+te bare lf, crlf blank line": (
        b"POST /api/v2/alerts HTTP/1.1\nHost: x\nContent-Type: application/json\n"
        b"Content-Length: 2\nTransfer-Encoding: chunked\n\r\n0\r\n\r\n" + SMUGGLED
    ),
    "two content-lengths bare lf": (
        b"POST /api/v2/alerts HTTP/1.1\nHost: x\nContent-Type: application/json\n"
        b"Content-Length: 2\nContent-Length: 2\n\n[]" + SMUGGLED
    ),
    "obs-fold bare lf": (
        b"GET /api/v2/status HTTP/1.1\nHost: x\nX-A: 1\n\tcontinued\n\n" + SMUGGLED
    ),
}


@pytest.mark.parametrize("name", sorted(AMBIGUOUS))
def test_framing_refuses_ambiguous_heads(name: str) -> None:
    """The pure checker refuses each ambiguous head and stays refused."""
    framing = RequestFraming()
    with pytest.raises(FramingError):
        framing.feed(AMBIGUOUS[name], 0.0)
    with pytest.raises(FramingError):
        framing.feed(b"GET / HTTP/1.1\r\n\r\n", 0.0)


def test_framing_follows_pipelined_bodies_byte_by_byte() -> None:
    """Content-Length and chunked bodies are skipped exactly, even one byte per read,
    so an ambiguous head after them is still found."""
    stream = (
        b"POST /a HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nX-A: "
        b"POST /b HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"3;ext=1\r\n\r\n\r\r\n0\r\nTrailer: 1\r\n\r\n"
        b"GET /c HTTP/1.1\r\nHost: x\r\n\r\n"
    )
    framing = RequestFraming()
    for i in range(len(stream)):
        framing.feed(stream[i : i + 1], 0.0)
    assert framing.requests == 3
    with pytest.raises(FramingError):
        framing.feed(b"GET /d HTTP/1.1\r\nContent-Length: 1\r\ncontent-length: 1\r\n\r\n", 0.0)


@pytest.mark.parametrize("size", [b"-1", b"0x5", b"+5", b"", b"5 5", b"\xff"])
def test_framing_stops_at_a_malformed_chunk_size(size: bytes) -> None:
    """A chunk-size line that is not plain hex ends the connection's framing: what
    follows is never taken for a request (and h11 answers the bad chunk)."""
    framing = RequestFraming()
    framing.feed(b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n" + size + b"\r\n", 0.0)
    with pytest.raises(FramingError):
        framing.feed(b"abcde\r\n0\r\n\r\nGET / HTTP/1.1\r\n\r\n", 0.0)


def test_framing_deadlines() -> None:
    """A head must end within the header timeout of its first byte, the body within the
    read timeout; between requests there is no deadline."""
    framing = RequestFraming(header_timeout=10, read_timeout=60)
    assert framing.deadline() == math.inf
    framing.feed(b"POST / HTTP/1.1\r\nHost: x\r\n", 100.0)
    assert framing.deadline() == 110.0
    framing.feed(b"Content-Length: 4\r\n\r\nab", 105.0)
    assert framing.deadline() == 160.0
    framing.feed(b"cd", 120.0)
    assert framing.deadline() == math.inf


def test_framing_refuses_oversized_head() -> None:
    """A head that never ends is refused once it passes the size limit."""
    framing = RequestFraming(max_head_bytes=1024)
    with pytest.raises(FramingError, match="too large"):
        framing.feed(b"GET / HTTP/1.1\r\n" + b"X-A: b\r\n" * 200, 0.0)


@pytest.fixture
async def served(backend: FakeBackend) -> AsyncIterator[int]:
    async with trio.open_nursery() as nursery:
        port: int = await nursery.start(serve_api, create_app(backend), "127.0.0.1", 0)
        yield port
        nursery.cancel_scope.cancel()


async def _exchange(port: int, data: bytes, wait: float = 5.0) -> tuple[bytes, bool]:
    """Send ``data``; read until EOF or ``wait``; (bytes read, closed by the server)."""
    stream = await trio.open_tcp_stream("127.0.0.1", port)
    received = b""
    closed = False
    async with stream:
        await stream.send_all(data)
        with trio.move_on_after(wait):
            while True:
                chunk = await stream.receive_some(65536)
                if not chunk:
                    closed = True
                    break
                received += chunk
    return received, closed


@pytest.mark.parametrize("name", sorted(AMBIGUOUS))
async def test_ambiguous_request_gets_400_and_close_and_nothing_runs(
    name: str, served: int, backend: FakeBackend
) -> None:
    """Over a real socket: 400, the connection closed, and neither the request nor the
    smuggled one behind it reached the API."""
    with trio.fail_after(20):
        received, closed = await _exchange(served, AMBIGUOUS[name])
    assert received.startswith(b"HTTP/1.1 400 Bad Request\r\n"), received
    assert received.count(b"HTTP/1.1") == 1
    assert closed
    assert backend.ingested == []


async def test_plain_pipelining_still_works(served: int, backend: FakeBackend) -> None:
    """Two well-framed pipelined requests are both answered (the guard is not a blunt
    one-request-per-connection rule)."""
    first = (
        b"POST /api/v2/alerts HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        b"Transfer-Encoding: chunked\r\n\r\n2\r\n[]\r\n0\r\n\r\n"
    )
    with trio.fail_after(20):
        received, _ = await _exchange(served, first + SMUGGLED, wait=2)
    assert received.count(b"HTTP/1.1 200") == 2
    assert [a.labels["alertname"] for a in backend.ingested] == ["smuggled"]


@pytest.mark.parametrize(
    "media", [b"application/xml", b"application/x-www-form-urlencoded", b"*/*"]
)
@pytest.mark.parametrize("path", [b"/api/v2/alerts", b"/api/v2/silences"])
async def test_connection_close_gets_answer_and_eof_at_once(
    media: bytes, path: bytes, served: int
) -> None:
    """A wrong Content-Type from a client that reads to EOF (Connection: close, as
    HTTP/1.0 tools do) gets its 415 and the close at once (hypercorn never closed)."""
    request = (
        b"POST " + path + b" HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
        b"Content-Type: " + media + b"\r\nContent-Length: 2\r\n\r\n{}"
    )
    with trio.fail_after(3):
        received, closed = await _exchange(served, request, wait=3)
    assert closed
    status = received.split(b"\r\n", 1)[0]
    # The fake backend has no silences routes: 404 there, 415 on alerts.
    assert status in (b"HTTP/1.1 415 ", b"HTTP/1.1 404 ")


async def test_slow_head_is_cut_at_the_header_deadline(
    backend: FakeBackend, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A client that trickles a head (slowloris) is disconnected at the header deadline,
    however often it sends a byte."""
    monkeypatch.setattr(StrictTCPServer, "header_timeout", 0.5)
    async with trio.open_nursery() as nursery:
        port = await nursery.start(serve_api, create_app(backend), "127.0.0.1", 0)
        stream = await trio.open_tcp_stream("127.0.0.1", port)
        started = trio.current_time()
        with trio.fail_after(10):
            async with stream:
                closed = False
                for byte in b"GET /api/v2/status HTTP/1.1\r\nHost: x\r\nX-Slow: " + b"a" * 100:
                    try:
                        await stream.send_all(bytes([byte]))
                    except trio.BrokenResourceError:
                        closed = True
                        break
                    with trio.move_on_after(0.1):
                        if await stream.receive_some(100) == b"":
                            closed = True
                            break
        assert closed
        assert trio.current_time() - started < 3
        nursery.cancel_scope.cancel()


async def test_slow_body_is_cut_at_the_read_deadline(
    backend: FakeBackend, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A body that never completes is cut at the read deadline; nothing is ingested."""
    monkeypatch.setattr(StrictTCPServer, "read_timeout", 0.5)
    async with trio.open_nursery() as nursery:
        port = await nursery.start(serve_api, create_app(backend), "127.0.0.1", 0)
        head = (
            b"POST /api/v2/alerts HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            b"Content-Length: 100\r\n\r\n["
        )
        with trio.fail_after(5):
            _, closed = await _exchange(port, head, wait=4)
        assert closed
        assert backend.ingested == []
        nursery.cancel_scope.cancel()


_REQUESTS = [
    b"GET /a HTTP/1.1\r\nHost: x\r\n\r\n",
    b"POST /b HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nabc",
    b"POST /c HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nab\r\n0\r\n\r\n",
    b"POST /d HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n",
    b"GET /e HTTP/1.1\nHost: x\n\n",
    b"POST /f HTTP/1.1\nHost: x\r\nContent-Length: 2\n\r\nab",
    b"POST /g HTTP/1.1\nHost: x\nTransfer-Encoding: chunked\n\n2\r\nab\r\n0\r\nT: 1\n\n",
]


@given(
    picks=st.lists(st.sampled_from(range(len(_REQUESTS))), min_size=1, max_size=8),
    cuts=st.lists(st.integers(min_value=1, max_value=40), max_size=40),
)
def test_well_framed_streams_split_anywhere_are_followed(picks: list[int], cuts: list[int]) -> None:
    """Any sequence of well-framed requests, cut into reads anywhere, is followed to the
    exact request count with no refusal and no deadline left pending."""
    stream = b"".join(_REQUESTS[i] for i in picks)
    framing = RequestFraming()
    pos = 0
    for size in [*cuts, len(stream)]:
        framing.feed(stream[pos : pos + size], 0.0)
        pos += size
    seen, clean = _h11_requests_until_error(stream)
    assert clean
    assert framing.requests == len(picks) == seen
    assert framing.deadline() == math.inf


@given(st.binary(max_size=2000))
def test_arbitrary_bytes_only_ever_raise_framing_error(data: bytes) -> None:
    """Garbage never raises anything but FramingError (an exception of any other kind
    would kill the connection task unanswered)."""
    framing = RequestFraming(max_head_bytes=512)
    with contextlib.suppress(FramingError):
        framing.feed(b"POST / HTTP/1.1\r\n" + data, 0.0)
        framing.feed(data, 1.0)


def _h11_requests_until_error(stream: bytes) -> tuple[int, bool]:
    """(requests h11 reads from ``stream`` before it stops, whether it stopped cleanly)."""
    server = h11.Connection(h11.SERVER)
    server.receive_data(stream)
    count = 0
    try:
        while True:
            event = server.next_event()
            if event is h11.NEED_DATA:
                # Cleanly read only if it stopped between requests with nothing left.
                return count, server.their_state is h11.IDLE and not server.trailing_data[0]
            if isinstance(event, h11.Request):
                count += 1
            elif isinstance(event, h11.EndOfMessage):
                server.send(h11.Response(status_code=200, headers=[("Content-Length", "0")]))
                server.send(h11.EndOfMessage())
                server.start_next_cycle()
    except h11.RemoteProtocolError:
        return count, False


_EOL = st.sampled_from([b"\r\n", b"\n"])


@st.composite
def _loose_request(draw: st.DrawFn) -> bytes:
    """A request with any line ends, and chunk framing bytes that may be off."""
    eol = lambda: draw(_EOL)  # noqa: E731
    head = b"POST /x HTTP/1.1" + eol() + b"Host: x" + eol()
    kind = draw(st.sampled_from(["none", "length", "chunked"]))
    body = b""
    if kind == "length":
        data = draw(st.binary(max_size=8))
        head += b"Content-Length: %d" % len(data) + eol()
        body = data
    elif kind == "chunked":
        head += b"Transfer-Encoding: chunked" + eol()
        for _ in range(draw(st.integers(0, 2))):
            data = draw(st.binary(min_size=1, max_size=6))
            after = draw(st.sampled_from([b"\r\n", b"\n", b"XY", b"\r\r", b"Z\n"]))
            ext = draw(st.sampled_from([b"", b";a", b";a=b", b" \t", b";a\nb"]))
            body += b"%x" % len(data) + ext + draw(_EOL) + data + after
        body += b"0" + draw(st.sampled_from([b"", b";z"])) + draw(_EOL)
        if draw(st.booleans()):
            body += b"T: 1" + eol()
        body += eol()
    return head + eol() + body


@given(st.lists(_loose_request(), min_size=1, max_size=4), st.binary(max_size=2))
def test_h11_never_reads_a_request_the_framing_did_not_check(
    requests: list[bytes], tail: bytes
) -> None:
    """Whatever the line ends and chunk bytes, if the framing passes the stream, h11
    reads no more requests from it than the framing counted (each of which had its head
    checked), and exactly as many when h11 reads it cleanly to the end. (Where they
    differ, h11 is inside a chunked body the framing has left: it then refuses the
    chunk-size line it is reading, which must end in CRLF and cannot hold a LF.)"""
    stream = b"".join(requests) + tail
    framing = RequestFraming()
    try:
        framing.feed(stream, 0.0)
    except FramingError:
        return  # the connection is closed before h11 sees any of it
    seen, clean = _h11_requests_until_error(stream)
    assert seen <= framing.requests
    if clean and not tail:
        assert seen == framing.requests
