"""A small HTTP/1.1 client for notifications: the default path from a flush to the socket.

Why: a notification is one short request and a short reply. Through httpx and
httpcore each one cost several hundred microseconds of Python (request and response
models, the pool's bookkeeping, h11's event machinery), about half the daemon's CPU
while draining a burst of flushes. This client does only what notifications need.

What it does, and what it leaves to httpx (:mod:`daemon.notify.httpclient`):

* ``http`` and ``https`` (default ``SSLContext``, SNI and verification against the
  URL's host); no proxies, no custom TLS, no OAuth2: ``http_config`` entries that set
  those get an httpx client instead (``HttpClients.sender_for``).
* Redirects are not followed here. When the caller wants them followed (Alertmanager's
  default) and the reply is a 3xx with a ``Location``, the same request is handed to
  the ``fallback`` sender (httpx), so the redirecting server sees the request twice:
  once from this client, once from httpx, which then follows the redirect.
* The request is written in one send: ``Host``, ``User-Agent``, ``Content-Length``,
  the caller's headers sorted by canonical name, then ``Accept-Encoding: gzip``,
  which is the order and set Go's client writes. A gzip reply body is decoded.

Theory of operation:

* Connections are pooled per (scheme, host, port), most recently used first, as Go's
  transport. A connection returns to the pool only when its reply was read whole,
  neither side asked to close, and nothing arrived after the reply.
* Before reusing a connection, its socket is polled: readable while idle means the
  server closed it (or sent garbage), so it is dropped. The server may still close it
  between the poll and our request; a reused connection that reaches end-of-file or a
  reset before the first byte of a reply is retried once on a fresh connection, as
  Go's transport does for connections the server closed while idle.
* Connections idle for more than :data:`IDLE_TIMEOUT` (Go's ``IdleConnTimeout``) are
  closed when the pool is next used.
* The reply body is kept up to ``max_body`` bytes. A longer body is read on (and
  dropped) up to :data:`DRAIN_LIMIT` more bytes to keep the connection; beyond that
  the connection is closed instead.
* Parsing is pure (:class:`ResponseParser`: bytes in, a reply out); the client is the
  trio shell around it.

Cancellation: a request cancelled midway closes its connection (synchronously, so
nothing awaits in cleanup).

Error handling: every failure (connect, TLS, timeout, malformed reply, end-of-file)
raises a retryable :class:`~daemon.notify.retry.NotifyError` reading like Go's,
``Post "<redacted>": <cause>``; the URL is never shown because it often holds tokens.
"""

from __future__ import annotations

import base64
import ipaddress
import os
import re
import select
import socket
import ssl
import urllib.parse
import zlib
from collections.abc import Mapping
from typing import Any, Protocol

import attrs
import trio

from daemon.notify import firewall
from daemon.notify.retry import NotifyError

#: Go's ``http.DefaultTransport`` closes connections idle this long (seconds).
IDLE_TIMEOUT = 90.0
#: Idle connections kept per (scheme, host, port).
MAX_IDLE_PER_HOST = 64
#: A reply head larger than this is refused (Go's default ``MaxResponseHeaderBytes``).
MAX_HEAD_BYTES = 1 << 20
#: Body bytes past ``max_body`` read and dropped to keep the connection reusable.
DRAIN_LIMIT = 256 * 1024
#: Interim (1xx) replies skipped before giving up, as Go.
MAX_INTERIM = 5
#: Go's client sends this when the caller gives no User-Agent.
DEFAULT_USER_AGENT = "Go-http-client/1.1"
_RECEIVE_SIZE = 65536
_DEFAULT_PORTS = {"http": 80, "https": 443}
#: Request headers this client writes itself; the caller's copies are ignored.
_OWN_HEADERS = frozenset(
    {"host", "user-agent", "content-length", "transfer-encoding", "connection", "accept-encoding"}
)
_TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
_BAD_VALUE = re.compile(r"[\r\n\x00]")
_REDIRECTS = frozenset({301, 302, 303, 307, 308})


@attrs.frozen
class HTTPReply:
    """A reply's status and (at most ``max_body`` bytes of) its body."""

    status_code: int
    body: bytes


class HttpSender(Protocol):
    """Sends one request and returns the reply, whatever the status.

    Error handling: transport failures raise a retryable ``NotifyError`` with the URL
    redacted; statuses are the caller's to classify.
    """

    async def send(
        self,
        method: str,
        url: str,
        headers: Mapping[str, str],
        body: bytes | None,
        *,
        follow_redirects: bool,
        max_body: int,
    ) -> HTTPReply: ...


class ProtocolError(Exception):
    """The server's reply is not HTTP/1.x as this client reads it."""


# --- the pure core: requests out, replies in ------------------------------------------


def canonical_header(name: str) -> str:
    """Go's ``CanonicalMIMEHeaderKey``: ``content-type`` becomes ``Content-Type``."""
    if not _TOKEN.fullmatch(name):
        return name
    return "-".join(part[:1].upper() + part[1:].lower() for part in name.split("-"))


@attrs.frozen
class Target:
    """What a URL means to this client."""

    scheme: str
    host: str
    port: int
    #: ``Host`` header value: the URL's host and port as written.
    authority: str
    #: Request target: path (``/`` if empty) and query.
    path: str
    #: ``Authorization`` from the URL's user info, if any.
    userinfo_auth: str | None

    @property
    def key(self) -> tuple[str, str, int]:
        return (self.scheme, self.host, self.port)


def parse_target(url: str) -> Target:
    """Split ``url``; raises ``ValueError`` with Go's wording when it cannot be sent."""
    parts = urllib.parse.urlsplit(url)
    scheme = parts.scheme.lower()
    if scheme not in _DEFAULT_PORTS:
        raise ValueError(f'unsupported protocol scheme "{parts.scheme}"')
    host = parts.hostname or ""
    if not host:
        raise ValueError("no Host in request URL")
    port = parts.port or _DEFAULT_PORTS[scheme]
    authority = parts.netloc.rpartition("@")[2]
    path = parts.path or "/"
    if not path.isascii():
        path = urllib.parse.quote(path, safe="/%:@!$&'()*+,;=-._~")
    if parts.query:
        path = f"{path}?{parts.query}"
    auth = None
    if "@" in parts.netloc:
        user = urllib.parse.unquote(parts.username or "")
        password = urllib.parse.unquote(parts.password or "")
        auth = "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()
    return Target(scheme, host, port, authority, path, auth)


def encode_request(
    method: str, target: Target, headers: Mapping[str, str], body: bytes | None
) -> bytes:
    """The whole request, head and body, in Go's header order.

    Raises ``ValueError`` (Go's wording) for a header that would break the framing.
    """
    return join_request(request_head(method, target, headers, body is not None), body)


def join_request(head: tuple[bytes, bytes | None], body: bytes | None) -> bytes:
    """The request of a :func:`request_head` and its body."""
    start, rest = head
    if rest is None:
        return start + body if body else start
    return b"".join((start, b"%d" % len(body or b""), rest, body or b""))


def request_head(
    method: str, target: Target, headers: Mapping[str, str], has_body: bool
) -> tuple[bytes, bytes | None]:
    """The head of :func:`encode_request` around its ``Content-Length`` value: the text
    before it and after it, or the whole head and None when the request has no
    ``Content-Length``. The same for every body, so a client may keep it.

    Raises ``ValueError`` (Go's wording) for a header that would break the framing.
    """
    user_agent = DEFAULT_USER_AGENT
    host = target.authority
    rest: list[tuple[str, str]] = []
    has_auth = False
    for name, value in headers.items():
        lower = name.lower()
        if _BAD_VALUE.search(value):
            raise ValueError(f'net/http: invalid header field value for "{name}"')
        if lower in _OWN_HEADERS:
            if lower == "user-agent":
                user_agent = value
            elif lower == "host":
                host = value
            continue
        if not _TOKEN.fullmatch(name):
            raise ValueError(f'net/http: invalid header field name "{name}"')
        has_auth = has_auth or lower == "authorization"
        rest.append((canonical_header(name), value))
    if target.userinfo_auth is not None and not has_auth:
        rest.append(("Authorization", target.userinfo_auth))
    rest.sort(key=lambda item: item[0])
    start = [f"{method} {target.path} HTTP/1.1\r\nHost: {host}\r\n"]
    if user_agent:
        start.append(f"User-Agent: {user_agent}\r\n")
    lines = [f"{name}: {value}\r\n" for name, value in rest]
    lines.append("Accept-Encoding: gzip\r\n\r\n")
    tail = "".join(lines).encode("utf-8", "surrogateescape")
    if has_body or method not in ("GET", "HEAD", "DELETE", "OPTIONS", "TRACE"):
        start.append("Content-Length: ")
        return "".join(start).encode("utf-8", "surrogateescape"), b"\r\n" + tail
    return "".join(start).encode("utf-8", "surrogateescape") + tail, None


# Parser states.
_HEAD, _LENGTH, _CHUNK_SIZE, _CHUNK_DATA, _CHUNK_END, _TRAILER, _TO_CLOSE, _DONE = range(8)


class ResponseParser:
    """Reads one reply from bytes fed to it; pure, no I/O.

    Feed every received chunk to :meth:`feed` until it returns True, or call
    :meth:`feed_eof` at end-of-file. Then :attr:`status`, :attr:`headers` and
    :meth:`body` describe the reply and :attr:`reusable` says whether the connection
    may carry another request. Interim (1xx) replies are skipped.

    Error handling: raises :class:`ProtocolError` on a malformed reply or one cut
    short by end-of-file.
    """

    def __init__(self, method: str, max_body: int) -> None:
        self._method = method
        self._max_body = max_body
        self._buffer = bytearray()
        self._state = _HEAD
        self._remaining = 0
        self._interim = 0
        self._body = bytearray()
        self._body_size = 0
        self.status = 0
        self.headers: dict[str, str] = {}
        self.reusable = True
        #: Whether any byte of a reply arrived (a stale connection sends none).
        self.started = False

    def body(self) -> bytes:
        """The body (decoded when gzip), at most ``max_body`` bytes."""
        raw = bytes(self._body)
        if self.headers.get("content-encoding", "").lower() == "gzip" and raw:
            try:
                return zlib.decompressobj(wbits=31).decompress(raw, self._max_body)
            except zlib.error:
                return b""
        return raw

    def feed(self, data: bytes | bytearray) -> bool:
        """Consume ``data``; True once the reply is complete."""
        if data:
            self.started = True
            self._buffer += data
        while True:
            state = self._state
            if state == _DONE:
                if self._buffer:
                    # Bytes after the reply: nothing was asked for, so the
                    # connection's framing can no longer be trusted.
                    self.reusable = False
                return True
            if state == _HEAD:
                if not self._head():
                    return False
            elif state == _LENGTH:
                take = min(self._remaining, len(self._buffer))
                if take == 0:
                    return False
                self._take_body(take)
                self._remaining -= take
                if self._remaining == 0:
                    self._state = _DONE
            elif state == _TO_CLOSE:
                if not self._buffer:
                    return False
                self._take_body(len(self._buffer))
            elif not self._chunked():
                return False
            size = self._body_size
            if size >= self._max_body and (
                not self.reusable or size > self._max_body + DRAIN_LIMIT
            ):
                # Enough kept; reading on would cost more than a new connection (or
                # the connection closes anyway).
                self.reusable = False
                self._buffer.clear()
                self._state = _DONE

    def feed_eof(self) -> None:
        """End-of-file: completes a read-to-close body, else raises ``ProtocolError``."""
        self.reusable = False
        if self._state == _TO_CLOSE:
            self._state = _DONE
            return
        if self._state != _DONE:
            raise ProtocolError("unexpected EOF")

    def _take_body(self, size: int) -> None:
        room = self._max_body - len(self._body)
        if room > 0:
            self._body += self._buffer[: min(room, size)]
        self._body_size += size
        del self._buffer[:size]

    def _head(self) -> bool:
        buffer = self._buffer
        end = buffer.find(b"\r\n\r\n")
        if end < 0:
            if len(buffer) > MAX_HEAD_BYTES:
                raise ProtocolError("server response headers exceeded the limit")
            return False
        lines = bytes(buffer[:end]).decode("latin-1").split("\r\n")
        del buffer[: end + 4]
        version, _, rest = lines[0].partition(" ")
        code = rest[:3]
        # isascii: str.isdigit() also takes digits such as "²", which int() refuses.
        if (
            not version.startswith("HTTP/1.")
            or len(code) != 3
            or not (code.isascii() and code.isdigit())
        ):
            raise ProtocolError(f"malformed HTTP response {lines[0]!r}")
        status = int(code)
        headers: dict[str, str] = {}
        name = ""
        for line in lines[1:]:
            if line[:1] in (" ", "\t") and name:
                # An obsolete folded line continues the previous header.
                headers[name] += " " + line.strip()
                continue
            raw_name, sep, value = line.partition(":")
            name = raw_name.strip().lower()
            if not sep or not name:
                raise ProtocolError(f"malformed MIME header line: {line}")
            value = value.strip()
            if name in headers:
                if name == "content-length" and headers[name] != value:
                    raise ProtocolError("message cannot contain multiple Content-Length headers")
                if name != "content-length":
                    headers[name] += ", " + value
            else:
                headers[name] = value
        if 100 <= status < 200 and status != 101:
            self._interim += 1
            if self._interim > MAX_INTERIM:
                raise ProtocolError("too many 1xx informational responses")
            return True
        self.status = status
        self.headers = headers
        connection = headers.get("connection", "").lower()
        if "close" in connection or (version == "HTTP/1.0" and "keep-alive" not in connection):
            self.reusable = False
        self._frame(status, headers)
        return True

    def _frame(self, status: int, headers: dict[str, str]) -> None:
        """Choose how the body ends (RFC 9112 §6.3)."""
        if self._method == "HEAD" or status in (204, 304) or status < 200:
            self._state = _DONE
            if status == 101:
                self.reusable = False
            return
        encoding = headers.get("transfer-encoding")
        if encoding is not None:
            if encoding.rsplit(",", 1)[-1].strip().lower() == "chunked":
                self._state = _CHUNK_SIZE
                if "content-length" in headers:
                    self.reusable = False
            else:
                self._state = _TO_CLOSE
                self.reusable = False
            return
        length = headers.get("content-length")
        if length is None:
            self._state = _TO_CLOSE
            self.reusable = False
            return
        if not length.isdigit():
            raise ProtocolError(f"bad Content-Length {length!r}")
        self._remaining = int(length)
        self._state = _LENGTH if self._remaining else _DONE

    def _chunked(self) -> bool:
        """One step of a chunked body; False when more bytes are needed."""
        buffer = self._buffer
        state = self._state
        if state == _CHUNK_DATA:
            take = min(self._remaining, len(buffer))
            if take == 0:
                return False
            self._take_body(take)
            self._remaining -= take
            if self._remaining == 0:
                self._state = _CHUNK_END
            return True
        if state == _CHUNK_END:
            if len(buffer) < 2:
                return False
            if buffer[:2] != b"\r\n":
                raise ProtocolError("malformed chunked encoding")
            del buffer[:2]
            self._state = _CHUNK_SIZE
            return True
        end = buffer.find(b"\r\n")
        if end < 0:
            if len(buffer) > 4096:
                raise ProtocolError("malformed chunked encoding")
            return False
        line = bytes(buffer[:end])
        del buffer[: end + 2]
        if state == _TRAILER:
            if not line:
                self._state = _DONE
            return True
        size = line.split(b";", 1)[0].strip()
        try:
            self._remaining = int(size, 16)
        except ValueError:
            raise ProtocolError("malformed chunked encoding") from None
        if self._remaining < 0:
            raise ProtocolError("malformed chunked encoding")
        self._state = _CHUNK_DATA if self._remaining else _TRAILER
        return True


# --- the trio shell ------------------------------------------------------------------


class _StaleConnection(Exception):
    """A reused connection ended before any byte of a reply: safe to try a fresh one."""


class _EndOfFile(Exception):
    """The server closed the connection."""


class _DialError(Exception):
    """No connection could be made; the text is Go's."""


@attrs.define(eq=False)
class _Connection:
    stream: trio.abc.Stream
    socket: trio.socket.SocketType
    tls: bool
    #: ``trio.current_time()`` when it was last put back in the pool.
    idle_since: float = 0.0
    #: Requests it carried to completion.
    served: int = 0

    def close(self) -> None:
        """Close at once, without the TLS goodbye; synchronous so cleanup never awaits."""
        self.socket.close()

    def alive(self) -> bool:
        """Whether an idle connection is still usable: nothing (not even EOF) to read."""
        try:
            readable, _, _ = select.select([self.socket.fileno()], [], [], 0)
        except (OSError, ValueError):
            return False
        return not readable


@attrs.frozen
class Http1Statistics:
    """Counters for tests and debugging."""

    connections_opened: int
    idle_connections: int


def _strerror(exc: BaseException) -> str:
    """The first OS error in ``exc``'s causes, worded as Go's (``connection refused``)."""
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, OSError) and seen.errno:
            text = os.strerror(seen.errno)
            return text[:1].lower() + text[1:]
        if isinstance(seen, BaseExceptionGroup) and seen.exceptions:
            seen = seen.exceptions[0]
            continue
        seen = seen.__cause__ or seen.__context__
    return str(exc)


async def open_tcp(host: str, port: int) -> trio.SocketStream:
    """A TCP connection to ``host``; an IP address is dialled directly.

    ``trio.open_tcp_stream`` resolves even an IP address (a ``getaddrinfo`` call that
    gives up the GIL, which a busy worker thread may then hold for a switch interval)
    and races the results from tasks in a nursery of its own. For the one address an IP
    literal has, that is several extra scheduler rounds on every new connection of a
    notification's critical path.

    The receivers firewall checks the address first (:func:`firewall.check`: this
    socket does not come from its trio socket factory). A non-blocking connect to a
    local receiver is usually complete when the call returns, so it is asked before
    waiting: trio's ``connect`` always waited a scheduler round for the socket to turn
    writable, and every task ready meanwhile ran first (300 us of a paced alert's way
    to a receiver that closes its connections).
    """
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        return await trio.open_tcp_stream(host, port)
    firewall.check(host, port)
    family = socket.AF_INET6 if ip.version == 6 else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setblocking(False)
        try:
            sock.connect((host, port))
            error = 0
        except BlockingIOError:
            # Reading SO_ERROR clears it: read once per wait.
            error = sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
            if not error and not _has_peer(sock):
                await trio.lowlevel.wait_writable(sock)
                error = sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
        if error:
            raise OSError(error, os.strerror(error))
    except BaseException:
        sock.close()
        raise
    # SocketStream sets TCP_NODELAY, as open_tcp_stream's streams have it.
    return trio.SocketStream(trio.socket.from_stdlib_socket(sock))


def _firewall_allows(conn: _Connection) -> bool:
    """Whether the current receivers firewall lets a request use this pooled connection:
    the address it is connected to, asked as a new connection's would be."""
    try:
        host, port = conn.socket.getpeername()[:2]
        firewall.check(host, port)
    except OSError:  # BlockedAddress, or a connection gone meanwhile
        return False
    return True


def _has_peer(sock: socket.socket) -> bool:
    """Whether a connect in progress has completed, without waiting."""
    try:
        sock.getpeername()
    except OSError:
        return False
    return True


def timed_out(method: str) -> NotifyError:
    """Go's client error for a request over its timeout (retryable, URL redacted)."""
    verb = method[:1].upper() + method[1:].lower()
    return NotifyError(
        f'{verb} "<redacted>": context deadline exceeded '
        "(Client.Timeout exceeded while awaiting headers)",
        retryable=True,
    )


class Http1Client:
    """The :class:`HttpSender` for entries with nothing special in their ``http_config``.

    ``limiter`` bounds requests in flight daemon-wide (shared with the httpx clients);
    ``timeout`` bounds each whole request, connection included; ``fallback`` follows
    redirects (see the module doc). ``ssl_context`` is for tests; the default is the
    system's.
    """

    def __init__(
        self,
        *,
        timeout: float,
        limiter: trio.CapacityLimiter,
        fallback: HttpSender | None = None,
        ssl_context: ssl.SSLContext | None = None,
        idle_timeout: float = IDLE_TIMEOUT,
    ) -> None:
        self._timeout = timeout
        self._limiter = limiter
        self._fallback = fallback
        self._ssl_context = ssl_context
        self._idle_timeout = idle_timeout
        self._idle: dict[tuple[str, str, int], list[_Connection]] = {}
        self._targets: dict[str, Target] = {}
        #: (method, URL, has a body, header items) -> request_head's answer.
        self._heads: dict[tuple[Any, ...], tuple[bytes, bytes | None]] = {}
        self._opened = 0
        self._next_prune = 0.0

    def statistics(self) -> Http1Statistics:
        """How many connections were opened so far and how many are idle now."""
        idle = sum(len(conns) for conns in self._idle.values())
        return Http1Statistics(self._opened, idle)

    async def send(
        self,
        method: str,
        url: str,
        headers: Mapping[str, str],
        body: bytes | None,
        *,
        follow_redirects: bool,
        max_body: int,
    ) -> HTTPReply:
        """Send one request; see :class:`HttpSender`."""
        verb = method[:1].upper() + method[1:].lower()
        try:
            target = self._targets.get(url) or self._target(url)
            # An integration sends the same head each time (its URL, its headers):
            # kept, it costs a look-up instead of 3.6 us of checks and formatting.
            key = (method, url, body is not None, *headers.items())
            head = self._heads.get(key)
            if head is None:
                head = request_head(method, target, headers, body is not None)
                if len(self._heads) >= 1024:
                    self._heads.clear()
                self._heads[key] = head
            request = join_request(head, body)
        except ValueError as exc:
            raise NotifyError(f'{verb} "<redacted>": {exc}', retryable=True) from None
        limiter = self._limiter
        try:
            # Without a scheduler round trip when a slot is free; the request has
            # its own checkpoints.
            limiter.acquire_nowait()
        except trio.WouldBlock:
            await limiter.acquire()
        parser: ResponseParser | None = None
        try:
            with trio.move_on_after(self._timeout):
                parser = await self._exchange(target, request, method, max_body, verb)
        finally:
            limiter.release()
        if parser is None:
            raise timed_out(method)
        status = parser.status
        if (
            follow_redirects
            and status in _REDIRECTS
            and "location" in parser.headers
            and self._fallback is not None
        ):
            # Our slot is released: the fallback takes its own from the same limiter.
            return await self._fallback.send(
                method, url, headers, body, follow_redirects=True, max_body=max_body
            )
        return HTTPReply(status, parser.body())

    def _target(self, url: str) -> Target:
        target = parse_target(url)
        if len(self._targets) >= 1024:
            self._targets.clear()
        self._targets[url] = target
        return target

    async def _exchange(
        self, target: Target, request: bytes, method: str, max_body: int, verb: str
    ) -> ResponseParser:
        """One request on a pooled or new connection, retried once if the pooled one was stale."""
        stale = False
        while True:
            conn = None if stale else self._checkout(target.key)
            try:
                if conn is None:
                    conn = await self._connect(target)
                parser = await self._roundtrip(conn, request, method, max_body)
            except _StaleConnection:
                assert conn is not None
                conn.close()
                stale = True
                continue
            except (OSError, trio.BrokenResourceError, ProtocolError, _DialError) as exc:
                if conn is not None:
                    conn.close()
                raise NotifyError(
                    f'{verb} "<redacted>": {self._describe(exc, target)}', retryable=True
                ) from None
            except BaseException:
                if conn is not None:
                    conn.close()
                raise
            conn.served += 1
            if parser.reusable:
                self._checkin(target.key, conn)
            else:
                conn.close()
            return parser

    async def _roundtrip(
        self, conn: _Connection, request: bytes, method: str, max_body: int
    ) -> ResponseParser:
        reused = conn.served > 0
        parser = ResponseParser(method, max_body)
        try:
            if conn.tls:
                await self._exchange_stream(conn.stream, request, parser)
            else:
                await self._exchange_fd(conn.socket.fileno(), request, parser)
        except (trio.BrokenResourceError, BrokenPipeError, ConnectionResetError):
            if reused and not parser.started:
                raise _StaleConnection from None
            raise
        except _EndOfFile:
            if reused and not parser.started:
                raise _StaleConnection from None
            parser.feed_eof()
        return parser

    @staticmethod
    async def _exchange_stream(
        stream: trio.abc.Stream, request: bytes, parser: ResponseParser
    ) -> None:
        await stream.send_all(request)
        while True:
            data = await stream.receive_some(_RECEIVE_SIZE)
            if not data:
                raise _EndOfFile
            if parser.feed(data):
                return

    @staticmethod
    async def _exchange_fd(fd: int, request: bytes, parser: ResponseParser) -> None:
        """Plain TCP straight on the non-blocking socket.

        trio's stream layer costs three scheduler round trips per request (one per
        send, two per receive); here the only one is waiting for the reply.
        """
        sent = 0
        while True:
            try:
                sent += os.write(fd, request[sent:] if sent else request)
            except BlockingIOError:
                pass
            if sent >= len(request):
                break
            await trio.lowlevel.wait_writable(fd)
        while True:
            # The reply cannot be there yet right after the send: wait first.
            await trio.lowlevel.wait_readable(fd)
            try:
                data = os.read(fd, _RECEIVE_SIZE)
            except BlockingIOError:
                continue
            if not data:
                raise _EndOfFile
            if parser.feed(data):
                return

    def _describe(self, exc: BaseException, target: Target) -> str:
        """Go's wording of a transport failure."""
        if isinstance(exc, ProtocolError | _DialError):
            return str(exc)
        cause: BaseException | None = exc
        while cause is not None:
            if isinstance(cause, ssl.SSLCertVerificationError):
                return f"tls: failed to verify certificate: x509: {cause.verify_message}"
            if isinstance(cause, ssl.SSLError):
                return f"remote error: tls: {cause.reason or cause}"
            cause = cause.__cause__
        op = "write" if isinstance(exc, BrokenPipeError) else "read"
        return f"{op} tcp {target.host}:{target.port}: {_strerror(exc)}"

    async def _connect(self, target: Target) -> _Connection:
        try:
            tcp = await open_tcp(target.host, target.port)
        except OSError as exc:
            if isinstance(exc, trio.socket.gaierror) or isinstance(
                exc.__cause__, trio.socket.gaierror
            ):
                raise _DialError(f"dial tcp: lookup {target.host}: no such host") from None
            raise _DialError(
                f"dial tcp {target.host}:{target.port}: connect: {_strerror(exc)}"
            ) from None
        self._opened += 1
        stream: trio.abc.Stream = tcp
        if target.scheme == "https":
            if self._ssl_context is None:
                self._ssl_context = ssl.create_default_context()
            tls = trio.SSLStream(
                tcp, self._ssl_context, server_hostname=target.host, https_compatible=True
            )
            try:
                await tls.do_handshake()
            except BaseException:
                tcp.socket.close()
                raise
            stream = tls
        return _Connection(stream, tcp.socket, stream is not tcp)

    def _checkout(self, key: tuple[str, str, int]) -> _Connection | None:
        now = trio.current_time()
        if now >= self._next_prune:
            self._prune(now)
        idle = self._idle.get(key)
        guarded = firewall.guarding()
        while idle:
            conn = idle.pop()
            if now - conn.idle_since <= self._idle_timeout and conn.alive():
                if guarded and not _firewall_allows(conn):
                    # Opened for a request no firewall guarded (a global receiver's, or
                    # another tenant's): this request's firewall is asked as for a new
                    # connection, which it refuses. The connection stays for the others.
                    idle.append(conn)
                    return None
                return conn
            conn.close()
        return None

    def _checkin(self, key: tuple[str, str, int], conn: _Connection) -> None:
        conn.idle_since = trio.current_time()
        idle = self._idle.setdefault(key, [])
        if len(idle) >= MAX_IDLE_PER_HOST:
            idle.pop(0).close()
        idle.append(conn)

    def _prune(self, now: float) -> None:
        """Close connections idle longer than the idle timeout (oldest first in each list)."""
        self._next_prune = now + 1.0
        for key, idle in list(self._idle.items()):
            while idle and now - idle[0].idle_since > self._idle_timeout:
                idle.pop(0).close()
            if not idle:
                del self._idle[key]

    async def aclose(self) -> None:
        """Close every idle connection."""
        for idle in self._idle.values():
            for conn in idle:
                conn.close()
        self._idle.clear()
        await trio.lowlevel.checkpoint()


__all__ = [
    "HTTPReply",
    "Http1Client",
    "Http1Statistics",
    "HttpSender",
    "ProtocolError",
    "ResponseParser",
    "Target",
    "canonical_header",
    "encode_request",
    "join_request",
    "parse_target",
    "request_head",
    "timed_out",
]
