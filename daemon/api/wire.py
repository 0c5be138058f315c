"""Direct routes on the wire: a plain request to one of them, answered from its bytes.

:mod:`daemon.api.direct` answers ``POST <prefix>/api/v2/alerts`` and the silence POST
beside quart, at the ASGI level. Under them hypercorn still took a request through h11
(the head, then the body and its end as separate events), its stream object, an app
task spawned per request and a queue to it, and wrote the answer back through h11.
Measured with issue 15's workload (10,000 alerts in 100 POSTs of 100 over 4
connections, ``group_wait: 0``, tocsin alone, three ingests each, two alternating
pairs): 53-79k alerts/s without this path and 96-110k with it, CPU until every group
was notified 0.24-0.38 s against 0.22-0.26 s. On a paced alert's way to its webhook
the two A/B runs disagreed (p50 0.28 ms lower in one, 0.33 ms higher in the other:
that benchmark's run-to-run noise); tocsin's paced p50 is about Alertmanager's now.

So a request that is plainly one of the direct routes is taken here from the bytes the
connection read, when nothing else is in progress on it, and handed to the same ASGI
app (web gate, limiter, metrics, direct handler: everything from the app down is as
before); its answer is written in the bytes h11 would write. "Plainly" is narrow, and
anything else goes to h11 as before, which keeps its answers (and its refusals) for
everything odd:

- the request line is exactly ``<METHOD> <path>[?<query>] HTTP/1.1`` for a direct
  route's method and path (no percent-escapes, no absolute form, a query of visible
  ASCII only);
- every line ends with CRLF (h11 also takes a bare LF: such a request is h11's), every
  header line is ``token ":" value`` with nothing h11 refuses in the value, there
  is exactly one ``Host``, and none of ``Transfer-Encoding``, ``Expect``, ``Upgrade``,
  or a ``Connection`` other than ``keep-alive``;
- the body has a ``Content-Length`` (or none: empty) of at most :data:`MAX_BODY` bytes.

:func:`take_request` is the pure part: it reads a request from the front of a buffer,
or says that more bytes are needed to decide, or that h11 should have them.
:func:`encode_response` writes an answer as h11 writes hypercorn's. The connection's
side (when it may take a request, holding bytes back, the deadlines) is
:class:`daemon.api.server.StrictTCPServer`.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Collection, Iterable

import attrs

#: Larger bodies go to h11. A held body waits whole before the app runs, so whatever
#: the app would refuse from the head alone (the web config's basic auth, a tenant
#: refusal, the media type) was answered only once it was in: with 1 MiB here, 100
#: unauthenticated connections each sending all but the last byte held 108 MiB of the
#: daemon's memory, against 2 MiB through h11, which refuses after the head. 64 KiB is
#: one read of hypercorn's; a larger body (a batch of some 300 alerts and more) costs
#: enough to handle that h11's extra per-request work is a small share of it.
MAX_BODY = 64 * 1024
#: The largest head h11 takes (hypercorn's ``h11_max_incomplete_size``).
MAX_HEAD = 16 * 1024

_TOKEN = re.compile(rb"[!#$%&'*+\-.^_`|~0-9A-Za-z]+\Z")
# What h11 refuses inside a header value (its field-value is [^\x00\s] with spaces and
# tabs between): the line breaks we split on are gone, the rest is checked.
_BAD_VALUE = re.compile(rb"[\x00\r\n\x0b\x0c]")
_QUERY = re.compile(rb"[\x21-\x7e]*\Z")
# A route's path as a plain request target: no escapes, no query or fragment marks.
_PLAIN_PATH = re.compile(rb"/[!$&-;=@-~]*\Z")
# h11 ends a head line at a bare LF too; such a head never has our blank CRLF line.
_BARE_LF = re.compile(rb"(?<!\r)\n")
#: Headers that change how the request or the connection is handled: h11's business.
_H11_HEADERS = frozenset({b"transfer-encoding", b"expect", b"upgrade", b"te"})


class Verdict(enum.Enum):
    """What :func:`take_request` says of bytes that are not a direct request."""

    #: Not a direct request (or not a plain one): every byte goes to h11.
    H11 = "h11"


@attrs.frozen
class WireRequest:
    """A complete direct request from the front of a buffer."""

    method: str
    path: str
    query_string: bytes
    #: (lower-case name, value) in order, as h11 gives them to hypercorn.
    headers: list[tuple[bytes, bytes]]
    body: bytes
    #: How many bytes of the buffer the request took.
    end: int


@attrs.frozen
class Pending:
    """More bytes are needed; ``head_done`` says whether the head is complete (then the
    connection is inside a request, waiting for its body), and ``needs`` how many bytes
    the whole request takes then (0 while the head is incomplete): nothing can change
    until the buffer holds that many."""

    head_done: bool
    needs: int = 0


def request_lines(routes: Collection[tuple[str, str]]) -> frozenset[bytes]:
    """The request-line starts (``b"POST /api/v2/alerts"``) of the direct routes.

    A route whose path is not plain visible ASCII (a route prefix such as ``/été`` or
    ``/a%20b``) has none: a client writes it percent-escaped, and
    hypercorn's unescaping and quart's matching decide what such a target means, so its
    requests go to h11.
    """
    return frozenset(
        f"{method} {path}".encode("ascii")
        for method, path in routes
        if _PLAIN_PATH.match(path.encode("utf-8"))
    )


def take_request(
    buffer: bytes | bytearray, lines: frozenset[bytes]
) -> WireRequest | Pending | Verdict:
    """The direct request at the front of ``buffer`` (see the module docstring), or
    :class:`Pending` if the bytes so far may still be one, or ``Verdict.H11``."""
    line_end = buffer.find(b"\r\n")
    if line_end < 0:
        if b"\n" in buffer:
            return Verdict.H11  # a line ended by a bare LF, which h11 takes
        # A request line still arriving: worth waiting for only while it can still
        # become one of ours.
        start = bytes(buffer[:MAX_HEAD])
        if len(buffer) < MAX_HEAD and any(
            line.startswith(start) or start.startswith((line + b" ", line + b"?")) for line in lines
        ):
            return Pending(head_done=False)
        return Verdict.H11
    request_line = bytes(buffer[:line_end])
    parts = request_line.split(b" ")
    if len(parts) != 3 or parts[2] != b"HTTP/1.1":
        return Verdict.H11
    method, target = parts[0], parts[1]
    raw_path, question, query = target.partition(b"?")
    if method + b" " + raw_path not in lines or (question and not _QUERY.match(query)):
        return Verdict.H11
    head_end = buffer.find(b"\r\n\r\n", line_end)
    if head_end < 0:
        if len(buffer) >= MAX_HEAD or _BARE_LF.search(buffer, line_end + 2):
            return Verdict.H11
        return Pending(head_done=False)
    if head_end + 4 > MAX_HEAD:
        return Verdict.H11
    headers = _headers(bytes(buffer[line_end + 2 : head_end]))
    if headers is None:
        return Verdict.H11
    length = 0
    hosts = 0
    for name, value in headers:
        if name == b"content-length":
            if not value.isdigit() or len(value) > 20:
                return Verdict.H11
            length = int(value)
        elif name == b"host":
            hosts += 1
        elif name == b"connection":
            if any(token.strip().lower() != b"keep-alive" for token in value.split(b",")):
                return Verdict.H11
        elif name in _H11_HEADERS:
            return Verdict.H11
    if hosts != 1 or length > MAX_BODY:
        return Verdict.H11
    body_start = head_end + 4
    end = body_start + length
    if len(buffer) < end:
        return Pending(head_done=True, needs=end)
    return WireRequest(
        method=method.decode("ascii"),
        path=raw_path.decode("ascii"),
        query_string=query,
        headers=headers,
        body=bytes(buffer[body_start:end]),
        end=end,
    )


def _headers(block: bytes) -> list[tuple[bytes, bytes]] | None:
    """The header lines as h11 reads them, or None where h11 should judge (a line it
    refuses, an obs-fold: the framing refuses those first, but not ours to answer)."""
    out: list[tuple[bytes, bytes]] = []
    if not block:
        return out
    for line in block.split(b"\r\n"):
        name, colon, value = line.partition(b":")
        if not colon or not _TOKEN.match(name):
            return None
        value = value.strip(b" \t")
        if _BAD_VALUE.search(value):
            return None
        out.append((name.lower(), value))
    return out


class ResponseError(Exception):
    """An answer h11 would not write as given (the app's fault: answered as a crash)."""


def encode_response(
    status: int,
    headers: Iterable[tuple[bytes, bytes]],
    body: bytes,
    server_headers: Iterable[tuple[bytes, bytes]],
) -> tuple[bytes, bool]:
    """The bytes hypercorn and h11 write for an app's whole answer to an HTTP/1.1
    keep-alive request, and whether the connection closes after it.

    hypercorn strips each header's name and value and adds its own (``date``,
    ``server``); h11 writes ``HTTP/1.1 <status> `` with an empty reason and the headers
    as given. An answer that needs h11's help (no ``Content-Length``, or one that is
    not the body's length, a status without a body) raises :class:`ResponseError`.
    """
    if status < 200 or status in (204, 304):
        raise ResponseError(f"status {status} is not answered on the wire")
    out = [b"HTTP/1.1 %d \r\n" % status]
    length: bytes | None = None
    closes = False
    for raw_name, raw_value in (*headers, *server_headers):
        name, value = bytes(raw_name).strip(), bytes(raw_value).strip()
        if not _TOKEN.match(name) or _BAD_VALUE.search(value):
            raise ResponseError(f"header {name!r} is not valid")
        lower = name.lower()
        if lower == b"content-length":
            if length is not None and length != value:
                raise ResponseError("two Content-Length headers")
            length = value
        elif lower == b"transfer-encoding":
            raise ResponseError("Transfer-Encoding is h11's")
        elif lower == b"connection":
            closes = closes or any(t.strip().lower() == b"close" for t in value.split(b","))
        out.append(name + b": " + value + b"\r\n")
    if length is None or not length.isdigit() or int(length) != len(body):
        raise ResponseError("the body's Content-Length is missing or wrong")
    out.append(b"\r\n")
    out.append(body)
    return b"".join(out), closes


__all__ = [
    "MAX_BODY",
    "MAX_HEAD",
    "Pending",
    "ResponseError",
    "Verdict",
    "WireRequest",
    "encode_response",
    "request_lines",
    "take_request",
]
