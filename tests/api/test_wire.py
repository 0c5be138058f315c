"""Direct routes on the wire (daemon.api.wire and StrictTCPServer's side of it): what is
taken, what goes to h11, and that a client cannot tell the two apart."""

from __future__ import annotations

import functools
import json
import re
import ssl
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import h11
import pytest
import trio
from cryptography import x509
from hypercorn.config import Config as HypercornConfig
from hypothesis import given, settings
from hypothesis import strategies as st

import daemon.api.app as app_module
from daemon.api import create_app
from daemon.api.server import StrictTCPServer, serve_api
from daemon.api.wire import (
    MAX_BODY,
    Pending,
    ResponseError,
    Verdict,
    WireRequest,
    encode_response,
    request_lines,
    take_request,
)
from tests.api.conftest import FakeBackend

LINES = request_lines([("POST", "/api/v2/alerts"), ("POST", "/api/v2/silences")])
GOOD = json.dumps([{"labels": {"alertname": "A", "job": "j"}}]).encode()


def post(
    body: bytes = GOOD,
    *,
    path: bytes = b"/api/v2/alerts",
    extra: bytes = b"",
    ctype: bytes = b"application/json",
) -> bytes:
    return (
        b"POST " + path + b" HTTP/1.1\r\nHost: x\r\nContent-Type: " + ctype + b"\r\n" + extra
        + b"Content-Length: %d\r\n\r\n" % len(body) + body
    )  # fmt: skip


# --- the pure part ------------------------------------------------------------------------


def test_a_plain_request_is_taken_with_its_headers_and_body() -> None:
    request = post(extra=b"X-Mixed-Case:  v a \t\r\nConnection: Keep-Alive\r\n")
    found = take_request(request + b"GET / HTTP/1.1\r\n", LINES)
    assert found == WireRequest(
        method="POST",
        path="/api/v2/alerts",
        query_string=b"",
        headers=[
            (b"host", b"x"),
            (b"content-type", b"application/json"),
            (b"x-mixed-case", b"v a"),
            (b"connection", b"Keep-Alive"),
            (b"content-length", b"%d" % len(GOOD)),
        ],
        body=GOOD,
        end=len(request),
    )
    with_query = take_request(post(path=b"/api/v2/silences?a=b&c=%20"), LINES)
    assert isinstance(with_query, WireRequest)
    assert (with_query.path, with_query.query_string) == ("/api/v2/silences", b"a=b&c=%20")


def test_the_bytes_of_a_request_still_arriving_are_held() -> None:
    request = post()
    head_end = request.index(b"\r\n\r\n") + 4
    for cut in (1, 5, 12, 20, head_end - 1):
        assert take_request(request[:cut], LINES) == Pending(head_done=False), cut
    assert take_request(b"POST /api/v2/alerts?a=b HTT", LINES) == Pending(head_done=False)
    for cut in (head_end, len(request) - 1):
        # With the head read, the whole request's size: nothing changes before that.
        assert take_request(request[:cut], LINES) == Pending(head_done=True, needs=len(request))


@pytest.mark.parametrize(
    "request_bytes",
    [
        b"GET /api/v2/alerts HTTP/1.1\r\nHost: x\r\n\r\n",
        b"GET ",
        b"POST /api/v2/alerts/groups",
        b"post /api/v2/alerts HTTP/1.1\r\nHost: x\r\n\r\n",
        b"POST /api/v2/alerts HTTP/1.0\r\nHost: x\r\n\r\n",
        b"POST /api/v2/alert%73 HTTP/1.1\r\nHost: x\r\n\r\n",
        b"POST http://x/api/v2/alerts HTTP/1.1\r\nHost: x\r\n\r\n",
        b"POST /api/v2/alerts?a=\x7f HTTP/1.1\r\nHost: x\r\n\r\n",
        b"POST /api/v2/alerts  HTTP/1.1\r\nHost: x\r\n\r\n",
        b"\r\nPOST /api/v2/alerts HTTP/1.1\r\nHost: x\r\n\r\n",
        b"POST /api/v2/alerts HTTP/1.1\r\nContent-Length: 0\r\n\r\n",
        b"POST /api/v2/alerts HTTP/1.1\r\nHost: x\r\nHost: y\r\n\r\n",
        b"POST /api/v2/alerts HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n",
        b"POST /api/v2/alerts HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\n\r\n",
        b"POST /api/v2/alerts HTTP/1.1\r\nHost: x\r\nUpgrade: h2c\r\n\r\n",
        b"POST /api/v2/alerts HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
        b"POST /api/v2/alerts HTTP/1.1\r\nHost: x\r\nConnection: keep-alive, Upgrade\r\n\r\n",
        b"POST /api/v2/alerts HTTP/1.1\r\nHost: x\r\nno colon\r\n\r\n",
        b"POST /api/v2/alerts HTTP/1.1\r\nHost: x\r\nBad Name: v\r\n\r\n",
        b"POST /api/v2/alerts HTTP/1.1\r\nHost: x\r\nX: a\x00b\r\n\r\n",
        b"POST /api/v2/alerts HTTP/1.1\r\nHost: x\r\nX: a\r\n folded\r\n\r\n",
        b"POST /api/v2/alerts HTTP/1.1\r\nHost: x\r\nContent-Length: +5\r\n\r\n",
        b"POST /api/v2/alerts HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n" % (MAX_BODY + 1),
        b"POST /api/v2/alerts HTTP/1.1\r\nHost: x\r\nX: " + b"a" * 17000,
        b"POST /api/v2/alerts HTTP/1.1\nHost: x\nContent-Length: 2\n\n[]",
        b"POST /api/v2/alerts HTTP/1.1\nHo",
        b"POST /api/v2/alerts HTTP/1.1\r\nHost: x\nContent-Le",
    ],
)
def test_anything_not_plain_goes_to_h11(request_bytes: bytes) -> None:
    assert take_request(request_bytes, LINES) is Verdict.H11


def _h11_answer(status: int, headers: list[tuple[bytes, bytes]], body: bytes) -> bytes:
    """What h11, as hypercorn drives it, writes for this answer to a keep-alive request."""
    server = h11.Connection(h11.SERVER)
    server.receive_data(b"POST /api/v2/alerts HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n")
    assert isinstance(server.next_event(), h11.Request)
    assert isinstance(server.next_event(), h11.EndOfMessage)
    out = server.send(h11.Response(status_code=status, headers=headers)) or b""
    out += server.send(h11.Data(data=body)) or b""
    out += server.send(h11.EndOfMessage()) or b""
    return out


SERVER_HEADERS = [(b"date", b"Mon, 07 Dec 2026 05:57:47 GMT"), (b"server", b"hypercorn-h11")]


@pytest.mark.parametrize(
    ("status", "headers", "body"),
    [
        (200, [(b"content-length", b"0"), (b"vary", b"Origin")], b""),
        (400, [(b"content-type", b"application/json"), (b"content-length", b"13")], b"{\"code\":400}\n"),
        (413, [(b"content-length", b"2"), (b"x-odd", b" padded \t")], b"ab"),
        (503, [(b"Content-Length", b"1"), (b"connection", b"close")], b"x"),
    ],
)  # fmt: skip
def test_an_answer_is_written_as_h11_writes_hypercorns(
    status: int, headers: list[tuple[bytes, bytes]], body: bytes
) -> None:
    written, closes = encode_response(status, headers, body, SERVER_HEADERS)
    stripped = [(name.strip(), value.strip()) for name, value in headers]
    assert written == _h11_answer(status, stripped + SERVER_HEADERS, body)
    assert closes == ((b"connection", b"close") in headers)


@pytest.mark.parametrize(
    ("status", "headers", "body"),
    [
        (200, [], b"x"),
        (200, [(b"content-length", b"2")], b"x"),
        (204, [(b"content-length", b"0")], b""),
        (100, [(b"content-length", b"0")], b""),
        (200, [(b"transfer-encoding", b"chunked"), (b"content-length", b"1")], b"x"),
        (200, [(b"content-length", b"1"), (b"x", b"a\r\nb")], b"x"),
        (200, [(b"content-length", b"1"), (b"content-length", b"2")], b"x"),
    ],
)
def test_an_answer_that_needs_h11_is_an_error(
    status: int, headers: list[tuple[bytes, bytes]], body: bytes
) -> None:
    with pytest.raises(ResponseError):
        encode_response(status, headers, body, SERVER_HEADERS)


# --- over a socket ------------------------------------------------------------------------


@pytest.fixture
def taken(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[str]]:
    """The paths of the requests the wire path answered."""
    seen: list[str] = []
    real = StrictTCPServer._answer_wire

    async def counting(self: StrictTCPServer, request: WireRequest) -> bool:
        seen.append(request.path)
        return await real(self, request)

    monkeypatch.setattr(StrictTCPServer, "_answer_wire", counting)
    yield seen


async def _read_answers(stream: trio.SocketStream, count: int) -> list[bytes]:
    """``count`` whole answers (Content-Length framed) from ``stream``."""
    buffer = b""
    answers: list[bytes] = []
    while len(answers) < count:
        head_end = buffer.find(b"\r\n\r\n")
        if head_end >= 0:
            length = int(re.search(rb"(?i)content-length: (\d+)", buffer[:head_end])[1])  # type: ignore[index]
            end = head_end + 4 + length
            if len(buffer) >= end:
                answers.append(buffer[:end])
                buffer = buffer[end:]
                continue
        chunk = await stream.receive_some(65536)
        assert chunk, f"closed after {answers}"
        buffer += chunk
    return answers


def _undated(answer: bytes) -> bytes:
    return re.sub(rb"\r\ndate: [^\r]*", b"", answer)


async def _serve(nursery: trio.Nursery, backend: FakeBackend, wire: bool, **kwargs: Any) -> int:
    app = create_app(backend, **kwargs)
    port: int = await nursery.start(functools.partial(serve_api, app, "127.0.0.1", 0, wire=wire))
    return port


REQUESTS = [
    post(),
    post(ctype=b"text/plain"),
    post(b"["),
    post(b"x" * 300),  # over the 200-byte limit below
    post(json.dumps([{"labels": {}}]).encode(), extra=b"Origin: http://ui.example\r\n"),
    post(path=b"/api/v2/alerts?x=1"),
]


async def test_answers_and_what_is_stored_are_those_of_the_h11_path(
    backend: FakeBackend, taken: list[str]
) -> None:
    """Byte for byte (but the date), and the same alerts stored."""
    answers: dict[bool, list[bytes]] = {}
    stored: dict[bool, list[Any]] = {}
    for wire in (True, False):
        backend.ingested.clear()
        with trio.fail_after(20):
            async with trio.open_nursery() as nursery:
                port = await _serve(nursery, backend, wire, max_body_bytes=200)
                stream = await trio.open_tcp_stream("127.0.0.1", port)
                got = []
                for request in REQUESTS:
                    await stream.send_all(request)
                    got += await _read_answers(stream, 1)
                await stream.aclose()
                nursery.cancel_scope.cancel()
        answers[wire] = [_undated(a) for a in got]
        stored[wire] = sorted(sorted(a.labels.items()) for a in backend.ingested)
    assert len(taken) == len(REQUESTS)
    assert answers[True] == answers[False]
    assert stored[True] == stored[False] != []
    assert answers[True][0].startswith(b"HTTP/1.1 200 \r\n")
    assert b"HTTP/1.1 413 " in answers[True][3]


async def test_a_request_with_bare_lf_lines_is_answered_by_h11_at_once(
    backend: FakeBackend, taken: list[str]
) -> None:
    """h11 takes a head whose lines end with a bare LF; held for a CRLF that never
    comes, it would have had no answer until the header deadline closed the connection."""
    request = post().replace(b"\r\n", b"\n")
    with trio.fail_after(5):
        async with trio.open_nursery() as nursery:
            port = await _serve(nursery, backend, True)
            stream = await trio.open_tcp_stream("127.0.0.1", port)
            await stream.send_all(request)
            [answer] = await _read_answers(stream, 1)
            await stream.aclose()
            nursery.cancel_scope.cancel()
    assert answer.startswith(b"HTTP/1.1 200 ")
    assert len(backend.ingested) == 1
    assert taken == []


async def test_pipelined_and_mixed_requests_are_answered_in_order(
    backend: FakeBackend, taken: list[str]
) -> None:
    """Direct and other requests in one write, either order: every answer, in order; a
    direct request behind one h11 has is h11's too (its answer must wait)."""
    health = b"GET /-/healthy HTTP/1.1\r\nHost: x\r\n\r\n"
    stream_bytes = post() + health + post() + post() + health + post(b"[")
    with trio.fail_after(20):
        async with trio.open_nursery() as nursery:
            port = await _serve(nursery, backend, True)
            stream = await trio.open_tcp_stream("127.0.0.1", port)
            await stream.send_all(stream_bytes)
            answers = await _read_answers(stream, 6)
            await stream.aclose()
            nursery.cancel_scope.cancel()
    statuses = [a.split(b"\r\n", 1)[0] for a in answers]
    assert statuses == [b"HTTP/1.1 200 "] * 5 + [b"HTTP/1.1 400 "]
    assert b"OK" in answers[1] and b"OK" in answers[4]
    assert len(backend.ingested) == 3
    assert taken == ["/api/v2/alerts"]  # the rest were behind h11's requests


async def test_a_request_split_anywhere_is_taken_once_whole(
    backend: FakeBackend, taken: list[str]
) -> None:
    request = post()
    with trio.fail_after(20):
        async with trio.open_nursery() as nursery:
            port = await _serve(nursery, backend, True)
            stream = await trio.open_tcp_stream("127.0.0.1", port)
            for cut in (3, 40, request.index(b"\r\n\r\n") + 4, len(request) - 1):
                await stream.send_all(request[:cut])
                await trio.sleep(0.05)
                await stream.send_all(request[cut:])
                [answer] = await _read_answers(stream, 1)
                assert answer.startswith(b"HTTP/1.1 200 "), (cut, answer)
            for byte in request:
                await stream.send_all(bytes([byte]))
            [answer] = await _read_answers(stream, 1)
            assert answer.startswith(b"HTTP/1.1 200 ")
            await stream.aclose()
            nursery.cancel_scope.cancel()
    assert len(taken) == 5


async def test_the_keep_alive_timeout_counts_from_a_wire_answer_not_inside_a_body(
    backend: FakeBackend, monkeypatch: pytest.MonkeyPatch, taken: list[str]
) -> None:
    """A body slower than the keep-alive timeout is still read (hypercorn's timeout is
    for idle connections), and the idle connection after the answer is closed by it."""
    monkeypatch.setattr(HypercornConfig, "keep_alive_timeout", 0.5)
    request = post()
    with trio.fail_after(20):
        async with trio.open_nursery() as nursery:
            port = await _serve(nursery, backend, True)
            stream = await trio.open_tcp_stream("127.0.0.1", port)
            cut = request.index(b"\r\n\r\n") + 5
            await stream.send_all(request[:cut])
            await trio.sleep(1.0)
            await stream.send_all(request[cut:])
            [answer] = await _read_answers(stream, 1)
            assert answer.startswith(b"HTTP/1.1 200 ")
            answered = trio.current_time()
            assert await stream.receive_some(100) == b""
            assert 0.4 <= trio.current_time() - answered < 2
            await stream.aclose()
            nursery.cancel_scope.cancel()
    assert taken == ["/api/v2/alerts"]


async def test_a_client_leaving_inside_a_held_request_is_answered_as_by_h11(
    backend: FakeBackend,
) -> None:
    """Its end of the stream inside a request line, a head or a body: h11 has the held
    bytes and the end, answers as it does without the wire path, and nothing is stored."""
    answers: dict[bool, list[bytes]] = {True: [], False: []}
    for wire in (True, False):
        with trio.fail_after(20):
            async with trio.open_nursery() as nursery:
                port = await _serve(nursery, backend, wire)
                for cut in (10, 40, len(post()) - 3):
                    stream = await trio.open_tcp_stream("127.0.0.1", port)
                    await stream.send_all(post()[:cut])
                    await stream.send_eof()
                    got = b""
                    while chunk := await stream.receive_some(65536):
                        got += chunk
                    answers[wire].append(_undated(got))
                    await stream.aclose()
                nursery.cancel_scope.cancel()
    assert answers[True] == answers[False]
    assert backend.ingested == []


async def _stop_during_a_post(
    backend: FakeBackend, monkeypatch: pytest.MonkeyPatch, wire: bool, *, same_step: bool = False
) -> tuple[bytes, list[str]]:
    """Two POSTs in one write; the server stops while the first is being handled, which
    goes on 0.2 s later or, with ``same_step``, in the scheduler step the server's stop
    event is set. (What the client got, the alertnames stored.)"""
    from hypercorn.trio.worker_context import EventWrapper

    real_parse = app_module.run_cooperatively
    real_set = EventWrapper.set
    entered, release = trio.Event(), trio.Event()

    async def set_and_release(self: EventWrapper) -> None:
        await real_set(self)
        release.set()

    if same_step:
        monkeypatch.setattr(EventWrapper, "set", set_and_release)

    async def held_parse(steps: Any) -> Any:
        if not entered.is_set():
            entered.set()
            await release.wait()
        return await real_parse(steps)

    monkeypatch.setattr(app_module, "run_cooperatively", held_parse)
    server_scope = trio.CancelScope()
    app = create_app(backend)

    async def run_server(*, task_status: trio.TaskStatus[int] = trio.TASK_STATUS_IGNORED) -> None:
        with server_scope:
            await serve_api(
                app, "127.0.0.1", 0, wire=wire, grace_seconds=2, task_status=task_status
            )

    with trio.fail_after(20):
        async with trio.open_nursery() as nursery:
            port = await nursery.start(run_server)
            stream = await trio.open_tcp_stream("127.0.0.1", port)
            second = post(json.dumps([{"labels": {"alertname": "second"}}]).encode())
            await stream.send_all(post() + second)
            await entered.wait()
            server_scope.cancel()
            if not same_step:
                await trio.sleep(0.2)  # the server has seen its stop; the POST still runs
                release.set()
            got = b""
            while chunk := await stream.receive_some(65536):
                got += chunk
            await stream.aclose()
    monkeypatch.setattr(EventWrapper, "set", real_set)
    monkeypatch.setattr(app_module, "run_cooperatively", real_parse)
    return _undated(got), sorted(a.labels["alertname"] for a in backend.ingested)


async def test_a_stop_ends_the_connection_after_the_answer_in_progress(
    backend: FakeBackend, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The server stops while a POST is being handled, with a second one queued behind
    it on the connection: as on the h11 path, the first is answered and stored, the
    connection closes, and the second never runs."""
    on_wire = await _stop_during_a_post(backend, monkeypatch, True)
    backend.ingested.clear()
    assert on_wire == await _stop_during_a_post(backend, monkeypatch, False)
    answer, stored = on_wire
    assert answer.startswith(b"HTTP/1.1 200 ") and answer.count(b"HTTP/1.1") == 1
    assert stored == ["A"]


async def test_an_app_failure_is_hypercorns_500_and_a_closed_connection(
    backend: FakeBackend,
    monkeypatch: pytest.MonkeyPatch,
    taken: list[str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Answered and logged as hypercorn does: 500, closed, and the traceback logged."""

    def broken(self: FakeBackend, alerts: Any, now: int) -> None:
        raise RuntimeError("boom")

    monkeypatch.setattr(FakeBackend, "put_alerts", broken)
    answers = {}
    for wire in (True, False):
        with trio.fail_after(20):
            async with trio.open_nursery() as nursery:
                port = await _serve(nursery, backend, wire)
                stream = await trio.open_tcp_stream("127.0.0.1", port)
                await stream.send_all(post())
                [answer] = await _read_answers(stream, 1)
                assert await stream.receive_some(100) == b""
                await stream.aclose()
                nursery.cancel_scope.cancel()
        answers[wire] = _undated(answer)
        logged = [r for r in caplog.records if r.getMessage() == "Error in ASGI Framework"]
        assert len(logged) == 1 and logged[0].exc_info is not None, wire
        assert "boom" in str(logged[0].exc_info[1])
        caplog.clear()
    assert answers[True] == answers[False]
    assert answers[True].startswith(b"HTTP/1.1 500 \r\n")
    assert b"connection: close" in answers[True]
    assert taken == ["/api/v2/alerts"]


def _h11_reading(data: bytes) -> tuple[bytes, bytes, list[tuple[bytes, bytes]], bytes, int] | None:
    """(method, target, headers, body, end) of the first request h11 reads from
    ``data``, or None if h11 refuses it or has not all of it."""
    server = h11.Connection(h11.SERVER)
    server.receive_data(data)
    try:
        request = server.next_event()
        body = b""
        while isinstance(event := server.next_event(), h11.Data):
            body += bytes(event.data)
    except h11.RemoteProtocolError:
        return None
    if not isinstance(request, h11.Request) or not isinstance(event, h11.EndOfMessage):
        return None
    end = len(data) - len(server.trailing_data[0])
    return request.method, request.target, list(request.headers), body, end


_HEADER_TEXT = st.text(
    alphabet=st.sampled_from(list("aZ09-_ :;,\t\"'=()/\\\r\n\x00\x7f\xe9")), max_size=12
)


_HEADER_NAME = st.text(alphabet=st.sampled_from(list("aZ09-_!#~ ")), min_size=1, max_size=8)


@st.composite
def _requests(draw: st.DrawFn) -> bytes:
    target = draw(st.sampled_from([b"/api/v2/alerts", b"/api/v2/silences", b"/api/v2/alerts?a=b"]))
    lines = [b"POST " + target + b" HTTP/1.1", b"Host: x"]
    for _ in range(draw(st.integers(0, 3))):
        name = draw(st.one_of(_HEADER_NAME, _HEADER_TEXT)).encode("latin-1")
        value = draw(_HEADER_TEXT).encode("latin-1")
        lines.append(name + b":" + value)
    if draw(st.booleans()):
        lines.append(
            b"Connection: " + draw(st.sampled_from([b"keep-alive", b"Keep-Alive ", b"close"]))
        )
    body = draw(st.binary(max_size=10))
    lines.append(b"Content-Length: %d" % len(body))
    draw(st.randoms()).shuffle(lines[1:])
    return b"\r\n".join(lines) + b"\r\n\r\n" + body


@settings(max_examples=500)
@given(_requests())
def test_a_request_taken_on_the_wire_is_the_request_h11_reads(request: bytes) -> None:
    """Differential, against h11: a request taken on the wire has the method, target,
    headers (names lower-cased, values stripped, in order) and body h11 reads, and ends
    where h11's does; one h11 refuses is never taken."""
    found = take_request(request, LINES)
    read = _h11_reading(request)
    if isinstance(found, WireRequest):
        assert read is not None
        method, target, headers, body, end = read
        assert found.end == end
        query = b"?" + found.query_string if b"?" in target else b""
        assert (found.method.encode(), found.path.encode() + query) == (method, target)
        assert found.headers == headers
        assert found.body == body
    else:
        assert found is Verdict.H11


def test_a_route_path_that_is_not_plain_ascii_has_no_request_line() -> None:
    """A route prefix such as ``/été`` (which made the server fail to start) or
    ``/a%20b`` is left to h11: hypercorn unescapes the target and quart matches it."""
    routes = {
        ("POST", "/été/api/v2/alerts"),
        ("POST", "/a%20b/api/v2/alerts"),
        ("POST", "/api/v2/alerts"),
        ("POST", "/x-y_z.~/api/v2/silences"),
    }
    assert request_lines(routes) == {b"POST /api/v2/alerts", b"POST /x-y_z.~/api/v2/silences"}


async def test_a_slow_body_is_not_parsed_again_on_every_read(
    backend: FakeBackend, monkeypatch: pytest.MonkeyPatch, taken: list[str]
) -> None:
    """Once a held request's head is read, the bytes its body still needs are awaited
    without reading the head again: a client sending a big head and then its body a
    byte at a time made each read cost the head's whole parse."""
    import daemon.api.server as server_module

    calls: list[int] = []
    real = server_module.take_request

    def counting(buffer: bytes | bytearray, lines: frozenset[bytes]) -> object:
        calls.append(len(buffer))
        return real(buffer, lines)

    monkeypatch.setattr(server_module, "take_request", counting)
    body = json.dumps([{"labels": {"alertname": "slow"}}]).encode()
    request = post(body, extra=b"".join(b"X-Pad-%d: v\r\n" % i for i in range(200)))
    head_end = request.index(b"\r\n\r\n") + 4
    with trio.fail_after(20):
        async with trio.open_nursery() as nursery:
            port = await _serve(nursery, backend, True)
            stream = await trio.open_tcp_stream("127.0.0.1", port)
            await stream.send_all(request[:head_end])
            await trio.sleep(0.05)
            for i in range(head_end, len(request)):
                await stream.send_all(request[i : i + 1])
                await trio.sleep(0.005)  # a read each
            (answer,) = await _read_answers(stream, 1)
            await stream.aclose()
            nursery.cancel_scope.cancel()
    assert answer.startswith(b"HTTP/1.1 200 ")
    assert taken == ["/api/v2/alerts"]
    assert [a.labels["alertname"] for a in backend.ingested] == ["slow"]
    # The head's read and the body's last byte; not one per byte of the body.
    assert len(calls) <= 3, calls


async def test_a_body_over_the_wire_limit_is_refused_from_its_head_as_by_h11(
    backend: FakeBackend, taken: list[str]
) -> None:
    """A request the app refuses from its head (here its media type) is answered
    before its body is in when the body is over the wire path's limit: held on the
    wire, it waited for the whole body (up to 1 MiB per connection, also from clients
    the web config's auth refuses)."""
    size = 200 * 1024  # a batch of a thousand alerts, say
    assert size > MAX_BODY
    head = (
        b"POST /api/v2/alerts HTTP/1.1\r\nHost: x\r\nContent-Type: text/plain\r\n"
        b"Content-Length: %d\r\n\r\n" % size
    )
    with trio.fail_after(20):
        async with trio.open_nursery() as nursery:
            port = await _serve(nursery, backend, True)
            stream = await trio.open_tcp_stream("127.0.0.1", port)
            await stream.send_all(head + b"x" * 1024)
            with trio.fail_after(5):
                (answer,) = await _read_answers(stream, 1)
            await stream.aclose()
            nursery.cancel_scope.cancel()
    assert answer.startswith(b"HTTP/1.1 415 ")
    assert taken == []
    assert backend.ingested == []


async def test_the_limiters_timeout_answer_is_written_when_it_is_made(
    backend: FakeBackend, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``--web.timeout``'s 503 goes out at the timeout on both paths, while the handler
    runs on; on the wire path it went out only when the handler ended."""
    real_parse = app_module.run_cooperatively
    release = trio.Event()

    async def slow_parse(steps: Any) -> Any:
        await release.wait()
        return await real_parse(steps)

    monkeypatch.setattr(app_module, "run_cooperatively", slow_parse)
    answers: dict[bool, bytes] = {}
    for wire in (True, False):
        release = trio.Event()
        with trio.fail_after(20):
            async with trio.open_nursery() as nursery:
                port = await _serve(nursery, backend, wire, timeout_ns=200_000_000)
                stream = await trio.open_tcp_stream("127.0.0.1", port)
                await stream.send_all(post())
                with trio.fail_after(5):  # the handler is held until after the answer
                    (answer,) = await _read_answers(stream, 1)
                release.set()
                await stream.aclose()
                nursery.cancel_scope.cancel()
        answers[wire] = _undated(answer)
    assert answers[True] == answers[False]
    assert answers[True].startswith(b"HTTP/1.1 503 ")


async def test_a_stop_in_the_step_the_answer_is_released_takes_no_queued_request(
    backend: FakeBackend, monkeypatch: pytest.MonkeyPatch
) -> None:
    """As the test above, with the handler let go in the very scheduler step the server
    learns of its stop: the wire path asked a flag this connection sets a step later,
    and ran (and stored) the POST queued behind in some runs; hypercorn asks the event."""
    for _ in range(4):
        backend.ingested.clear()
        got, stored = await _stop_during_a_post(backend, monkeypatch, True, same_step=True)
        assert got.count(b"HTTP/1.1") == 1
        assert stored == ["A"]


async def _h2_posts(stream: trio.abc.Stream, count: int, body: bytes) -> list[int]:
    """``count`` alert POSTs over one HTTP/2 connection (``stream``: prior knowledge, or
    TLS with h2 chosen), each awaited in turn; the status of each, -1 where the
    connection ended first."""
    import h2.config
    import h2.connection
    import h2.events

    conn = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True))
    conn.initiate_connection()
    await stream.send_all(conn.data_to_send())
    statuses: list[int] = []
    async with stream:
        for _ in range(count):
            sid = conn.get_next_available_stream_id()
            conn.send_headers(
                sid,
                [
                    (":method", "POST"),
                    (":path", "/api/v2/alerts"),
                    (":scheme", "http"),
                    (":authority", "x"),
                    ("content-type", "application/json"),
                ],
            )
            conn.send_data(sid, body, end_stream=True)
            await stream.send_all(conn.data_to_send())
            status = -1
            done = False
            while not done:
                data = await stream.receive_some(65536)
                if not data:
                    break
                for event in conn.receive_data(data):
                    if isinstance(event, h2.events.ResponseReceived) and event.stream_id == sid:
                        status = int(dict(event.headers)[b":status"])
                    if isinstance(event, h2.events.StreamEnded) and event.stream_id == sid:
                        done = True
                    if isinstance(event, h2.events.DataReceived):
                        conn.acknowledge_received_data(event.flow_controlled_length, sid)
                await stream.send_all(conn.data_to_send())
            statuses.append(status)
            if status == -1:
                break
    return statuses


async def test_an_http2_connection_is_not_read_as_http1_heads(backend: FakeBackend) -> None:
    """HTTP/2's binary frames went through the HTTP/1.1 framing check, which read them
    as one endless head and cut the connection at 16 KiB (or the header timeout)."""
    alerts = [
        {"labels": {"alertname": f"h2-{i}"}, "annotations": {"pad": "x" * 40}} for i in range(40)
    ]
    body = json.dumps(alerts).encode()
    count = 16 * 1024 // len(body) + 4
    with trio.fail_after(20):
        async with trio.open_nursery() as nursery:
            port = await _serve(nursery, backend, True)
            stream = await trio.open_tcp_stream("127.0.0.1", port)
            statuses = await _h2_posts(stream, count, body)
            nursery.cancel_scope.cancel()
    assert statuses == [200] * count


async def test_an_http2_connection_over_tls_is_not_read_as_http1_heads(
    backend: FakeBackend, tmp_path: Path
) -> None:
    """The same over TLS with h2 chosen by ALPN (``http2: true``, the web config's
    default), as a Go client does."""
    from tests.notify.test_httpclient import make_cert

    ca = make_cert(tmp_path, "ca")
    leaf = make_cert(tmp_path, "leaf", ca, sans=[x509.DNSName("localhost")])
    server_ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_ctx.load_cert_chain(leaf.cert_file, leaf.key_file)
    server_ctx.set_alpn_protocols(["h2", "http/1.1"])
    client_ctx = ssl.create_default_context(cafile=ca.cert_file)
    client_ctx.set_alpn_protocols(["h2"])
    body = json.dumps([{"labels": {"alertname": f"tls-{i}"}} for i in range(60)]).encode()
    count = 16 * 1024 // len(body) + 4
    with trio.fail_after(20):
        async with trio.open_nursery() as nursery:
            app = create_app(backend)
            port = await nursery.start(
                functools.partial(serve_api, app, "127.0.0.1", 0, tls=server_ctx)
            )
            tcp = await trio.open_tcp_stream("127.0.0.1", port)
            stream = trio.SSLStream(tcp, client_ctx, server_hostname="localhost")
            await stream.do_handshake()
            assert stream.selected_alpn_protocol() == "h2"
            statuses = await _h2_posts(stream, count, body)
            nursery.cancel_scope.cancel()
    assert statuses == [200] * count


@pytest.mark.parametrize("wire", [True, False])
async def test_a_client_that_half_closes_after_its_requests_gets_their_answers(
    backend: FakeBackend, wire: bool
) -> None:
    """As from Go's server: the requests before the client's end of its side are
    answered, then the connection closes. hypercorn closed at once and dropped the
    answers in progress (the alert stored, no answer)."""
    health = b"GET /-/healthy HTTP/1.1\r\nHost: x\r\n\r\n"
    for sent, statuses in (
        (post(), [200]),
        (health, [200]),
        (health + post(), [200, 200]),
        (post() + post(), [200, 200]),
    ):
        with trio.fail_after(20):
            async with trio.open_nursery() as nursery:
                port = await _serve(nursery, backend, wire)
                stream = await trio.open_tcp_stream("127.0.0.1", port)
                await stream.send_all(sent)
                await stream.send_eof()
                got = b""
                while chunk := await stream.receive_some(65536):
                    got += chunk
                await stream.aclose()
                nursery.cancel_scope.cancel()
        assert [int(m) for m in re.findall(rb"HTTP/1.1 (\d+) ", got)] == statuses, got
