"""The notification HTTP/1.1 client against scripted loopback servers, and its pure parser."""

from __future__ import annotations

import gzip
import ipaddress
import socket
import ssl
from collections.abc import AsyncIterator, Callable
from functools import partial
from pathlib import Path
from typing import Any

import attrs
import httpx
import pytest
import trio
from cryptography import x509

from daemon.alert import Alert
from daemon.clock import ZERO_TIME
from daemon.config.model import HTTPConfig, WebhookConfig
from daemon.notify import firewall, http1
from daemon.notify.http1 import (
    DRAIN_LIMIT,
    Http1Client,
    ProtocolError,
    ResponseParser,
    _Connection,
    encode_request,
    parse_target,
)
from daemon.notify.httpclient import HttpClients, HttpxSender
from daemon.notify.receivers.webhook import WebhookIntegration
from daemon.notify.retry import NotifyError
from tests.notify.test_httpclient import make_cert
from tests.notify.test_webhook import ctx as webhook_ctx

OK = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"

# --- a scripted server ------------------------------------------------------------------


@attrs.define
class Scripted:
    """Answers the k-th request (over all connections) with ``replies[k]`` (the last repeats).

    A reply is raw bytes written in one send, a list of byte pieces written one by one,
    or None to never answer. The server closes a connection after each request whose
    index is in ``close_after``.
    """

    replies: list[bytes | list[bytes] | None]
    close_after: set[int] = attrs.field(factory=set)
    tls: ssl.SSLContext | None = None
    connections: int = 0
    requests: list[bytes] = attrs.field(factory=list)
    sni: list[str | None] = attrs.field(factory=list)
    closed: trio.Event = attrs.field(factory=trio.Event)
    #: Set once ``expected`` requests have arrived.
    expected: int = 0
    reached: trio.Event = attrs.field(factory=trio.Event)
    port: int = 0

    def url(self, host: str = "127.0.0.1", path: str = "/hook") -> str:
        scheme = "https" if self.tls is not None else "http"
        return f"{scheme}://{host}:{self.port}{path}"

    async def handle(self, raw: trio.SocketStream) -> None:
        self.connections += 1
        stream: trio.abc.Stream = raw
        try:
            if self.tls is not None:
                stream = trio.SSLStream(raw, self.tls, server_side=True)
                await stream.do_handshake()
            await self._serve(stream)
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            return

    async def _serve(self, stream: trio.abc.Stream) -> None:
        buf = b""
        while True:
            while b"\r\n\r\n" not in buf:
                data = await stream.receive_some(65536)
                if not data:
                    return
                buf += data
            head, _, buf = buf.partition(b"\r\n\r\n")
            length = 0
            for line in head.split(b"\r\n")[1:]:
                name, _, value = line.partition(b":")
                if name.lower() == b"content-length":
                    length = int(value)
            while len(buf) < length:
                buf += await stream.receive_some(65536)
            k = len(self.requests)
            self.requests.append(head + b"\r\n\r\n" + buf[:length])
            if len(self.requests) == self.expected:
                self.reached.set()
            buf = buf[length:]
            reply = self.replies[min(k, len(self.replies) - 1)]
            if reply is None:
                await trio.sleep_forever()
            for piece in [reply] if isinstance(reply, bytes) else reply:
                await stream.send_all(piece)
            if k in self.close_after:
                await stream.aclose()
                self.closed.set()
                return


async def serve(nursery: trio.Nursery, server: Scripted) -> Scripted:
    listeners = await nursery.start(partial(trio.serve_tcp, server.handle, 0, host="127.0.0.1"))
    server.port = listeners[0].socket.getsockname()[1]
    return server


MakeClient = Callable[..., Http1Client]


@pytest.fixture
async def client() -> AsyncIterator[MakeClient]:
    """Builds clients (timeout 30 s, 64 slots unless given) and closes them after the test."""
    made: list[Http1Client] = []

    def make(**kwargs: Any) -> Http1Client:
        kwargs.setdefault("timeout", 30.0)
        kwargs.setdefault("limiter", trio.CapacityLimiter(64))
        made.append(Http1Client(**kwargs))
        return made[-1]

    yield make
    for c in made:
        await c.aclose()


async def post(c: Http1Client, url: str, *, max_body: int = 65536, follow: bool = True) -> bytes:
    reply = await c.send(
        "POST",
        url,
        {"Content-Type": "text/plain"},
        b"hi",
        follow_redirects=follow,
        max_body=max_body,
    )
    assert reply.status_code == 200
    return reply.body


# --- connections ------------------------------------------------------------------------


async def test_sequential_requests_share_one_connection(
    client: MakeClient, nursery: trio.Nursery
) -> None:
    """Three requests in a row travel over one kept-alive connection."""
    server = await serve(nursery, Scripted([OK]))
    c = client()
    for _ in range(3):
        assert await post(c, server.url()) == b"ok"
    assert server.connections == 1
    assert c.statistics().connections_opened == 1
    assert c.statistics().idle_connections == 1


async def test_connection_closed_by_server_while_idle_is_replaced(
    client: MakeClient, nursery: trio.Nursery
) -> None:
    """A pooled connection the server closed is noticed before reuse; the request succeeds."""
    server = await serve(nursery, Scripted([OK], close_after={0}))
    c = client()
    await post(c, server.url())
    await server.closed.wait()
    assert await post(c, server.url()) == b"ok"
    assert server.connections == 2
    assert len(server.requests) == 2


async def test_stale_connection_is_retried_once_on_a_fresh_one(
    client: MakeClient, nursery: trio.Nursery, monkeypatch: pytest.MonkeyPatch
) -> None:
    """When the idle check misses the close, EOF before any reply byte retries on a new connection."""
    server = await serve(nursery, Scripted([OK], close_after={0}))
    monkeypatch.setattr(_Connection, "alive", lambda self: True)
    c = client()
    await post(c, server.url())
    await server.closed.wait()
    assert await post(c, server.url()) == b"ok"
    assert server.connections == 2


async def test_fresh_connection_eof_is_an_error_not_a_retry(
    client: MakeClient, nursery: trio.Nursery
) -> None:
    """A new connection closed before a reply fails with Go's EOF text and is not retried."""
    server = await serve(nursery, Scripted([b""], close_after={0}))
    c = client()
    with pytest.raises(NotifyError) as info:
        await post(c, server.url())
    assert str(info.value) == 'Post "<redacted>": unexpected EOF'
    assert info.value.retryable
    assert server.connections == 1


async def test_connection_close_header_is_honoured(
    client: MakeClient, nursery: trio.Nursery
) -> None:
    """A reply with ``Connection: close`` is not pooled: the next request opens a new one."""
    reply = b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 2\r\n\r\nok"
    server = await serve(nursery, Scripted([reply]))
    c = client()
    await post(c, server.url())
    await post(c, server.url())
    assert server.connections == 2
    assert c.statistics().idle_connections == 0


async def test_idle_connections_are_dropped_after_90_seconds(
    client: MakeClient, nursery: trio.Nursery, autojump_clock: trio.testing.MockClock
) -> None:
    """A connection idle longer than Go's IdleConnTimeout is closed, not reused."""
    server = await serve(nursery, Scripted([OK]))
    c = client()
    await post(c, server.url())
    await trio.sleep(89)
    await post(c, server.url())
    assert server.connections == 1
    await trio.sleep(91)
    await post(c, server.url())
    assert server.connections == 2


# --- bodies -----------------------------------------------------------------------------


async def test_content_length_body(client: MakeClient, nursery: trio.Nursery) -> None:
    """A Content-Length body arriving in pieces is read whole and the connection kept."""
    pieces = [b"HTTP/1.1 201 Created\r\nContent-", b"Length: 11\r\n\r\nhello", b" world"]
    server = await serve(nursery, Scripted([pieces, OK]))
    c = client()
    reply = await c.send("POST", server.url(), {}, b"x", follow_redirects=True, max_body=100)
    assert (reply.status_code, reply.body) == (201, b"hello world")
    await post(c, server.url())
    assert server.connections == 1


async def test_chunked_body(client: MakeClient, nursery: trio.Nursery) -> None:
    """A chunked body with extensions and trailers is decoded and the connection kept."""
    pieces = [
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5;ext=1\r\nhel",
        b"lo\r\n6\r\n world\r\n0\r\nX-Trailer: t\r\n",
        b"\r\n",
    ]
    server = await serve(nursery, Scripted([pieces, OK]))
    c = client()
    assert await post(c, server.url()) == b"hello world"
    assert await post(c, server.url()) == b"ok"
    assert server.connections == 1


async def test_read_to_close_body(client: MakeClient, nursery: trio.Nursery) -> None:
    """Without length or chunking the body runs to the server's close; no reuse after."""
    server = await serve(nursery, Scripted([b"HTTP/1.1 200 OK\r\n\r\nuntil close", OK], {0}))
    c = client()
    assert await post(c, server.url()) == b"until close"
    assert await post(c, server.url()) == b"ok"
    assert server.connections == 2


async def test_interim_replies_are_skipped(client: MakeClient, nursery: trio.Nursery) -> None:
    """100 Continue and 103 Early Hints come before the real reply and are skipped."""
    reply = (
        b"HTTP/1.1 100 Continue\r\n\r\n"
        b"HTTP/1.1 103 Early Hints\r\nLink: </x>\r\n\r\n"
        b"HTTP/1.1 202 Accepted\r\nContent-Length: 4\r\n\r\ndone"
    )
    server = await serve(nursery, Scripted([reply]))
    reply_ = await client().send("POST", server.url(), {}, b"", follow_redirects=True, max_body=9)
    assert (reply_.status_code, reply_.body) == (202, b"done")


async def test_body_is_capped_and_long_bodies_cost_the_connection(
    client: MakeClient, nursery: trio.Nursery
) -> None:
    """Only max_body bytes are kept; a body far past the cap closes the connection instead."""
    small = b"a" * 5000
    huge = b"b" * (DRAIN_LIMIT + 10_000)
    replies: list[bytes | list[bytes] | None] = [
        b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s" % (len(small), small),
        b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s" % (len(huge), huge),
        OK,
    ]
    server = await serve(nursery, Scripted(replies))
    c = client()
    assert await post(c, server.url(), max_body=100) == b"a" * 100
    assert await post(c, server.url(), max_body=100) == b"b" * 100
    assert server.connections == 1
    assert await post(c, server.url()) == b"ok"
    assert server.connections == 2


async def test_gzip_body_is_decoded(client: MakeClient, nursery: trio.Nursery) -> None:
    """Go asks for gzip, so a gzip-encoded reply body is decoded."""
    packed = gzip.compress(b"compressed text")
    reply = b"HTTP/1.1 500 E\r\nContent-Encoding: gzip\r\nContent-Length: %d\r\n\r\n%s" % (
        len(packed),
        packed,
    )
    server = await serve(nursery, Scripted([reply]))
    got = await client().send("GET", server.url(), {}, None, follow_redirects=True, max_body=99)
    assert (got.status_code, got.body) == (500, b"compressed text")
    assert b"Accept-Encoding: gzip\r\n" in server.requests[0]


# --- failures ---------------------------------------------------------------------------


async def test_timeout_is_a_retryable_error(
    client: MakeClient, nursery: trio.Nursery, autojump_clock: trio.testing.MockClock
) -> None:
    """A server that never answers fails the request after the timeout, retryably."""
    server = await serve(nursery, Scripted([None]))
    c = client(timeout=5.0)
    start = trio.current_time()
    with pytest.raises(NotifyError) as info:
        await post(c, server.url("127.0.0.1", "/secret-token"))
    assert trio.current_time() - start == pytest.approx(5.0)
    assert info.value.retryable
    assert "secret-token" not in str(info.value)
    assert str(info.value).startswith('Post "<redacted>": context deadline exceeded')
    assert c.statistics().idle_connections == 0


async def test_connection_refused_reads_like_go(
    client: MakeClient,
) -> None:
    """A refused connection is a retryable error naming the address, never the URL."""
    with trio.socket.socket() as sock:
        await sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    with pytest.raises(NotifyError) as info:
        await post(client(), f"http://127.0.0.1:{port}/token")
    assert str(info.value) == (
        f'Post "<redacted>": dial tcp 127.0.0.1:{port}: connect: connection refused'
    )
    assert info.value.retryable


async def test_malformed_reply_is_a_retryable_error(
    client: MakeClient, nursery: trio.Nursery
) -> None:
    """Garbage instead of a status line fails the request with Go's wording."""
    server = await serve(nursery, Scripted([b"SMTP ready\r\n\r\n"], close_after={0}))
    with pytest.raises(NotifyError) as info:
        await post(client(), server.url())
    assert str(info.value) == "Post \"<redacted>\": malformed HTTP response 'SMTP ready'"
    assert info.value.retryable


async def test_a_status_of_other_digits_is_a_malformed_reply(
    client: MakeClient, nursery: trio.Nursery
) -> None:
    """``2²0`` (``\\xb2`` is latin-1's superscript two) passed str.isdigit() and then
    failed int(): a ValueError out of the client (the notify path catches
    NotifyError), not Go's malformed-response error."""
    server = await serve(nursery, Scripted([b"HTTP/1.1 2\xb20 OK\r\n\r\n"], close_after={0}))
    with pytest.raises(NotifyError) as info:
        await post(client(), server.url())
    assert str(info.value).startswith('Post "<redacted>": malformed HTTP response')
    assert info.value.retryable


async def test_a_pooled_connection_is_not_used_past_the_receivers_firewall(
    client: MakeClient, nursery: trio.Nursery
) -> None:
    """A connection left in the pool by a request no firewall guarded (a global
    receiver's) was reused by a tenant's request whose firewall refuses its address:
    the firewall was asked only when connecting. It is asked of a pooled one too."""
    server = await serve(nursery, Scripted([OK]))
    http = client()
    await post(http, server.url())
    token = firewall.use(firewall.ReceiverFirewall(block_private=True))
    try:
        with pytest.raises(NotifyError, match="connect: permission denied"):
            await post(http, server.url())
    finally:
        firewall.reset(token)
    assert len(server.requests) == 1
    await post(http, server.url())  # the pooled connection still serves the others
    assert server.connections == 1 and len(server.requests) == 2


async def test_in_flight_limit_is_shared(client: MakeClient, nursery: trio.Nursery) -> None:
    """Requests beyond the limiter's capacity wait for a slot."""
    server = await serve(nursery, Scripted([None], expected=2))
    limiter = trio.CapacityLimiter(2)
    c = client(limiter=limiter)
    async with trio.open_nursery() as inner:
        for _ in range(3):
            inner.start_soon(partial(post, c, server.url()))
        await server.reached.wait()
        assert len(server.requests) == 2
        assert limiter.borrowed_tokens == 2
        assert limiter.statistics().tasks_waiting == 1
        inner.cancel_scope.cancel()


# --- TLS and redirects ------------------------------------------------------------------


async def test_tls_with_sni_and_verification(
    client: MakeClient, nursery: trio.Nursery, tmp_path: Path
) -> None:
    """https works against a locally issued certificate and sends the URL's host as SNI."""
    ca = make_cert(tmp_path, "ca")
    leaf = make_cert(
        tmp_path,
        "leaf",
        ca,
        sans=[x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))],
    )
    server_ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_ctx.load_cert_chain(leaf.cert_file, leaf.key_file)
    server = Scripted([OK], tls=server_ctx)

    def record_sni(_sock: object, name: str | None, _ctx: object) -> None:
        server.sni.append(name)

    server_ctx.sni_callback = record_sni
    await serve(nursery, server)
    trusted = ssl.create_default_context(cafile=ca.cert_file)
    c = client(ssl_context=trusted)
    assert await post(c, server.url("localhost")) == b"ok"
    assert await post(c, server.url("localhost")) == b"ok"
    assert server.sni == ["localhost"]
    assert server.connections == 1
    # The system's CAs do not know this one.
    with pytest.raises(NotifyError) as info:
        await post(client(), server.url("localhost"))
    assert "failed to verify certificate" in str(info.value)


async def test_redirect_is_handed_to_the_fallback(
    client: MakeClient, nursery: trio.Nursery
) -> None:
    """A 3xx with Location goes to the httpx fallback, which repeats and follows it."""
    target = await serve(nursery, Scripted([b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nthere"]))
    moved = f"HTTP/1.1 307 Moved\r\nLocation: {target.url()}\r\nContent-Length: 0\r\n\r\n"
    redirector = await serve(nursery, Scripted([moved.encode()]))
    async with httpx.AsyncClient() as fallback:
        c = client(fallback=HttpxSender(fallback))
        assert await post(c, redirector.url()) == b"there"
        # Without following, the 3xx is the answer.
        reply = await c.send("POST", redirector.url(), {}, b"", follow_redirects=False, max_body=9)
    assert reply.status_code == 307
    # Once from this client, once from httpx; then the target once, from httpx.
    assert len(redirector.requests) == 3
    assert len(target.requests) == 1
    assert target.requests[0].endswith(b"\r\n\r\nhi")


# --- through the webhook integration ----------------------------------------------------


async def test_webhook_sends_the_same_body_and_headers_as_with_httpx(
    nursery: trio.Nursery,
) -> None:
    """The default sender POSTs the webhook body byte for byte as httpx did, same key headers."""
    server = await serve(nursery, Scripted([OK]))
    config = WebhookConfig(
        url=server.url(path="/hook?x=1"),
        http_config=HTTPConfig(raw={"basic_auth": {"username": "u", "password": "p"}}),
    )
    ctx = webhook_ctx()
    alerts = [Alert({"alertname": "Q", "a": "<b>"}, {}, 1_700_000_000 * 10**9, ZERO_TIME)]
    async with HttpClients() as clients, httpx.AsyncClient() as plain:
        assert isinstance(clients.default_sender, Http1Client)
        await WebhookIntegration(config, 0, clients.default_sender, "http://am").notify(ctx, alerts)
        await WebhookIntegration(config, 0, plain, "http://am").notify(ctx, alerts)
    fast, before = (parse_request(r) for r in server.requests)
    assert fast[0] == before[0] == "POST /hook?x=1 HTTP/1.1"
    assert fast[2] == before[2]
    for name in ("host", "user-agent", "content-type", "content-length", "authorization"):
        assert fast[1][name] == before[1][name], name
    assert fast[1]["user-agent"] == "Alertmanager/0.25.0"
    assert fast[1]["content-type"] == "application/json"


async def test_kept_heads_follow_each_send(client: MakeClient, nursery: trio.Nursery) -> None:
    """The client keeps each (method, URL, headers) head: every request on the wire is
    still exactly encode_request of its own send, whatever body length, headers or
    method came before it."""
    server = await serve(nursery, Scripted([OK]))
    c = client()
    sends: list[tuple[str, str, dict[str, str], bytes | None]] = [
        ("POST", server.url(), {"Content-Type": "a"}, b"x"),
        ("POST", server.url(), {"Content-Type": "a"}, b"y" * 1234),
        ("POST", server.url(), {"Content-Type": "b"}, b"x"),
        ("POST", server.url(path="/other"), {"Content-Type": "a"}, b""),
        ("POST", server.url(), {"Content-Type": "a", "Authorization": "Bearer t"}, b"z"),
        ("POST", server.url(), {"Content-Type": "a"}, None),
        ("GET", server.url(), {"Content-Type": "a"}, None),
        ("POST", server.url(), {"Content-Type": "a"}, b"x" * 10),
    ]
    for method, url, headers, body in sends:
        reply = await c.send(method, url, headers, body, follow_redirects=False, max_body=64)
        assert reply.status_code == 200
    assert server.requests == [
        encode_request(method, parse_target(url), headers, body)
        for method, url, headers, body in sends
    ]
    # A refused header is refused every time, not kept.
    for _ in range(2):
        with pytest.raises(NotifyError, match="invalid header field value"):
            await c.send(
                "POST", server.url(), {"X": "a\r\nB: 1"}, b"", follow_redirects=False, max_body=64
            )


def parse_request(raw: bytes) -> tuple[str, dict[str, str], bytes]:
    head, _, body = raw.partition(b"\r\n\r\n")
    lines = head.decode().split("\r\n")
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    return lines[0], headers, body


# --- the pure core ----------------------------------------------------------------------


def test_request_head_in_go_order() -> None:
    """Host, User-Agent, Content-Length, sorted canonical headers, then Accept-Encoding."""
    target = parse_target("http://user:p%40ss@example.org:8080/a/b?q=1#frag")
    raw = encode_request(
        "POST",
        target,
        {"x-zeta": "1", "content-type": "application/json", "User-Agent": "UA"},
        b"{}",
    )
    assert raw == (
        b"POST /a/b?q=1 HTTP/1.1\r\n"
        b"Host: example.org:8080\r\n"
        b"User-Agent: UA\r\n"
        b"Content-Length: 2\r\n"
        b"Authorization: Basic dXNlcjpwQHNz\r\n"
        b"Content-Type: application/json\r\n"
        b"X-Zeta: 1\r\n"
        b"Accept-Encoding: gzip\r\n\r\n{}"
    )


def test_header_injection_is_refused() -> None:
    """A header value with a line break would forge headers: refused with Go's message."""
    with pytest.raises(ValueError, match="invalid header field value"):
        encode_request("POST", parse_target("http://h/"), {"X": "a\r\nEvil: 1"}, b"")


def test_unsupported_scheme_is_refused() -> None:
    """Only http and https can be sent."""
    with pytest.raises(ValueError, match='unsupported protocol scheme "ftp"'):
        parse_target("ftp://h/x")


def feed_bytewise(parser: ResponseParser, raw: bytes) -> bool:
    done = False
    for i in range(len(raw)):
        done = parser.feed(raw[i : i + 1])
    return done


@pytest.mark.parametrize(
    ("raw", "body", "reusable"),
    [
        (b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nabc", b"abc", True),
        (
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n",
            b"abc",
            True,
        ),
        (b"HTTP/1.1 204 No Content\r\n\r\n", b"", True),
        (b"HTTP/1.0 200 OK\r\nContent-Length: 1\r\n\r\nx", b"x", False),
        (b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\nxy", b"x", False),
    ],
)
def test_parser_fed_byte_by_byte(raw: bytes, body: bytes, reusable: bool) -> None:
    """Replies split at every byte parse the same; HTTP/1.0 and trailing bytes forbid reuse."""
    parser = ResponseParser("POST", 100)
    assert feed_bytewise(parser, raw)
    assert parser.body() == body
    assert parser.reusable is reusable


def test_parser_rejects_a_short_body_at_eof() -> None:
    """EOF inside a Content-Length body is an error, not a short success."""
    parser = ResponseParser("POST", 100)
    assert not parser.feed(b"HTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\nabc")
    with pytest.raises(ProtocolError, match="unexpected EOF"):
        parser.feed_eof()


def test_head_reply_has_no_body() -> None:
    """A reply to HEAD ends after its head whatever Content-Length says."""
    parser = ResponseParser("HEAD", 100)
    assert parser.feed(b"HTTP/1.1 200 OK\r\nContent-Length: 50\r\n\r\n")
    assert parser.body() == b""
    assert parser.reusable


async def test_ip_address_is_dialled_without_a_look_up(
    client: MakeClient, nursery: trio.Nursery, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An IP-literal URL connects straight to the address: no getaddrinfo (which gives
    up the GIL) and no happy-eyeballs nursery on a notification's critical path."""

    async def resolving_dial(*args: object, **kwargs: object) -> trio.SocketStream:
        raise AssertionError(f"open_tcp_stream{args}")

    server = await serve(nursery, Scripted([OK]))
    monkeypatch.setattr(trio, "open_tcp_stream", resolving_dial)
    c = client()
    assert await post(c, server.url()) == b"ok"
    assert server.connections == 1


async def test_a_local_connect_is_not_waited_for_when_it_is_done() -> None:
    """A connect to a listening local socket that completed within the call is used at
    once (no scheduler round waiting for writability); a refused one raises."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(8)
        port = listener.getsockname()[1]
        waits = 0
        real = trio.lowlevel.wait_writable

        async def counting(sock: object) -> None:
            nonlocal waits
            waits += 1
            await real(sock)  # type: ignore[arg-type]

        with pytest.MonkeyPatch.context() as mp:
            mp.setattr(trio.lowlevel, "wait_writable", counting)
            streams = [await http1.open_tcp("127.0.0.1", port) for _ in range(5)]
        for stream in streams:
            assert stream.socket.getpeername()[1] == port
            await stream.aclose()
        # Loopback handshakes finish inside connect() almost always; never all waited.
        assert waits < 5
    with pytest.raises(OSError):
        await http1.open_tcp("127.0.0.1", port)  # the listener is closed
