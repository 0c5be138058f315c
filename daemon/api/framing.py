"""Strict HTTP/1.1 request framing, checked on the raw bytes before h11 sees them.

Why this exists: h11 (under hypercorn) is lenient where a front proxy may be strict
in a different way, which is what request smuggling exploits. h11 0.16 takes a request
with both ``Content-Length`` and ``Transfer-Encoding: chunked`` (chunked wins), merges
repeated identical ``Content-Length`` headers, and unfolds obs-fold continuation lines;
none of this can be switched off (``h11.Connection`` has no such option, and hypercorn
passes none). By the time an ASGI app sees the request, the repeated header and the
fold are gone. So :class:`RequestFraming` follows the connection's byte stream itself.

A head ends where h11 ends it, at its first blank line, with lines ending in CRLF or a
bare LF (h11 takes both).

Rules (RFC 9112 §6.3 and §5.2 say a server *may* reject these; we always do):

- a request head with a line that starts with a space or tab (obs-fold) is refused;
- ``Content-Length`` may appear once, with one value; a second one (even equal) or a
  list is refused;
- ``Transfer-Encoding`` together with ``Content-Length`` is refused (any casing, any
  spacing around the colon or the value);
- a head larger than ``max_head_bytes`` is refused.

Theory of operation: the machine is in one of four states: reading a head, skipping
a ``Content-Length`` body, skipping a chunked body (chunk-size line, chunk data, CRLF,
trailers) or refused. It never buffers more than one head, and skipping a body is
arithmetic on lengths, so its cost is linear in the bytes seen. Whatever it cannot
decide (a malformed chunk-size line, a bad request line) it passes on for h11 to
reject: only framing ambiguity is its business.

Deadlines (Go's ``ReadHeaderTimeout`` and ``ReadTimeout``): a head must be complete
within ``header_timeout`` of its first byte, and the whole request (head and body)
within ``read_timeout`` of its first byte. Time is passed in (``now``); the shell
reads it from trio's clock.
"""

from __future__ import annotations

import enum
import math
import re

import attrs

#: The largest request head accepted, as hypercorn's ``h11_max_incomplete_size``.
DEFAULT_MAX_HEAD_BYTES = 16 * 1024
#: Seconds from a head's first byte until its blank line must have arrived.
DEFAULT_HEADER_TIMEOUT = 10.0
#: Seconds from a request's first byte until its body must have arrived in full.
DEFAULT_READ_TIMEOUT = 60.0


_HEX_DIGITS = b"0123456789abcdefABCDEF"
#: Where a head ends, as h11 finds it: a line may end with CRLF or a bare LF, so the
#: blank line is LF, optional CR, LF. Looking only for CRLF CRLF missed every head
#: written with bare LFs, which h11 takes: their framing went unchecked (a CL+TE
#: request written so reached the app with its smuggled second request).
_BLANK_LINE = re.compile(rb"\n\r?\n")


class FramingError(Exception):
    """A request whose framing is ambiguous; the reason is Go-style, for the 400 body."""


class _State(enum.Enum):
    HEAD = "head"
    LENGTH_BODY = "length body"
    CHUNK_SIZE = "chunk size"
    CHUNK_DATA = "chunk data"
    CHUNK_CRLF = "chunk crlf"
    TRAILERS = "trailers"
    REFUSED = "refused"


def _framing(head: bytes) -> tuple[bool, int]:
    """(chunked, content_length) of a complete request head; FramingError if ambiguous."""
    # Lines as h11 splits them: at each LF, without the CR before it.
    lines = [line[:-1] if line.endswith(b"\r") else line for line in head.split(b"\n")]
    lengths: list[bytes] = []
    chunked = False
    transfer_encoding = False
    for line in lines[1:]:
        if not line:
            continue
        if line[:1] in (b" ", b"\t"):
            raise FramingError("obsolete line folding in header")
        name, colon, value = line.partition(b":")
        if not colon:
            continue  # h11 refuses it as an illegal header line
        key = name.strip().lower()
        if key == b"content-length":
            lengths.append(value.strip())
        elif key == b"transfer-encoding":
            transfer_encoding = True
            chunked = value.strip().lower().endswith(b"chunked")
    if transfer_encoding and lengths:
        raise FramingError("both Transfer-Encoding and Content-Length")
    if len(lengths) > 1 or any(b"," in value for value in lengths):
        raise FramingError("duplicate Content-Length")
    length = 0
    if lengths:
        # 20 digits as h11; Python's int() refuses over 4300 digits with a ValueError.
        if not lengths[0].isdigit() or len(lengths[0]) > 20:
            raise FramingError(f"bad Content-Length {lengths[0].decode('latin-1')!r}")
        length = int(lengths[0])
    return chunked, length


@attrs.define
class RequestFraming:
    """Follows one connection's request bytes; see the module docstring.

    :meth:`feed` returns how many of the given bytes may go on to h11, and raises
    :class:`FramingError` for a refused head (nothing of that head may go on).
    """

    max_head_bytes: int = DEFAULT_MAX_HEAD_BYTES
    header_timeout: float = DEFAULT_HEADER_TIMEOUT
    read_timeout: float = DEFAULT_READ_TIMEOUT
    #: Complete request heads passed on so far.
    requests: int = 0
    _state: _State = _State.HEAD
    _head: bytearray = attrs.field(factory=bytearray)
    _remaining: int = 0
    _line: bytearray = attrs.field(factory=bytearray)
    _head_started: float | None = None
    _request_started: float | None = None

    def deadline(self) -> float:
        """When the current read must be done (``math.inf`` between requests)."""
        if self._request_started is None:
            return math.inf
        if self._state is _State.HEAD:
            return self._request_started + self.header_timeout
        return self._request_started + self.read_timeout

    def feed(self, data: bytes, now: float) -> None:
        """Check ``data``; raise :class:`FramingError` if a head in it is ambiguous.

        Error handling: once refused, every later call raises again; the connection
        must be closed.
        """
        pos = 0
        while pos < len(data):
            pos = self._step(data, pos, now)

    def _step(self, data: bytes, pos: int, now: float) -> int:
        state = self._state
        if state is _State.REFUSED:
            raise FramingError("connection already refused")
        if state is _State.HEAD:
            return self._read_head(data, pos, now)
        if state is _State.LENGTH_BODY or state is _State.CHUNK_DATA:
            take = min(self._remaining, len(data) - pos)
            self._remaining -= take
            if self._remaining == 0:
                self._state = _State.CHUNK_CRLF if state is _State.CHUNK_DATA else _State.HEAD
                if state is _State.LENGTH_BODY:
                    self._request_done()
            return pos + take
        # The chunk-size line, the CRLF after chunk data and the trailer lines are
        # read line by line; each is short (h11 refuses long ones).
        end = data.find(b"\n", pos)
        if end < 0:
            self._line += data[pos:]
            self._check_line_size()
            return len(data)
        if self._line:
            self._line += data[pos : end + 1]
            line = bytes(self._line).rstrip(b"\r\n")
            self._line.clear()
        else:
            line = data[pos:end].rstrip(b"\r")
        if state is _State.CHUNK_SIZE:
            size_text = line.partition(b";")[0].strip(b" \t")
            if not size_text or size_text.strip(_HEX_DIGITS):
                # Not ours to judge (h11 refuses it), but int() would take "-1" or
                # "0x1": stop following this connection's framing so that nothing
                # after it is taken for a new request.
                self._state = _State.REFUSED
                return end + 1
            size = int(size_text, 16)
            if size == 0:
                self._state = _State.TRAILERS
            else:
                self._remaining = size
                self._state = _State.CHUNK_DATA
        elif state is _State.CHUNK_CRLF:
            self._state = _State.CHUNK_SIZE
        elif not line:  # TRAILERS: the blank line ends the message
            self._state = _State.HEAD
            self._request_done()
        return end + 1

    def _check_line_size(self) -> None:
        if len(self._line) > self.max_head_bytes:
            self._state = _State.REFUSED
            raise FramingError("chunk line too long")

    def _read_head(self, data: bytes, pos: int, now: float) -> int:
        if not self._head:
            # Blank lines before a request line are allowed (RFC 9112 §2.2); they
            # start no deadline.
            while pos < len(data) and data[pos] in b"\r\n":
                pos += 1
            if pos == len(data):
                return pos
            self._request_started = now
        before = len(self._head)
        self._head += data[pos:]
        # Search from a little before the old end: the blank line may straddle reads.
        blank = _BLANK_LINE.search(self._head, max(0, before - 2))
        if blank is None:
            if len(self._head) > self.max_head_bytes:
                self._state = _State.REFUSED
                raise FramingError("request header too large")
            return len(data)
        end = blank.end()
        head = bytes(self._head[:end])
        consumed = end - before
        self._head.clear()
        if len(head) > self.max_head_bytes:
            self._state = _State.REFUSED
            raise FramingError("request header too large")
        try:
            chunked, length = _framing(head)
        except FramingError:
            self._state = _State.REFUSED
            raise
        self.requests += 1
        if chunked:
            self._state = _State.CHUNK_SIZE
        elif length:
            self._state = _State.LENGTH_BODY
            self._remaining = length
        else:
            self._request_done()
        return pos + consumed

    def _request_done(self) -> None:
        self._request_started = None


__all__ = [
    "DEFAULT_HEADER_TIMEOUT",
    "DEFAULT_MAX_HEAD_BYTES",
    "DEFAULT_READ_TIMEOUT",
    "FramingError",
    "RequestFraming",
]
