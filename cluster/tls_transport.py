"""Alertmanager 0.25's TLS cluster transport (``--cluster.tls-config``), on trio.

Alertmanager's experimental TLS transport replaces memberlist's UDP packets and TCP
streams with TLS over TCP on one listener. Rules of the wire, as upstream's
``cluster/tls_transport.go`` and ``tls_connection.go`` write and read it:

* Every connection starts with frames ``uint32 little-endian length | body``, where the
  body is a protobuf ``clusterpb.MemberlistMessage{version=1, kind=2, from_addr=3,
  msg=4}``. The version must be ``"v0.1.0"``.
* A *packet* is one frame of kind PACKET (1) carrying the memberlist packet in ``msg``
  and the sender's *bound* listener address (``host:port``) in ``from_addr``. Packets
  to one peer share a pooled connection that only the dialer writes on; the receiving
  side never answers on it (its replies go over its own pooled connection to us).
* A *stream* is a fresh connection whose first frame has kind STREAM (0) and no other
  fields; every byte after that frame belongs to memberlist's stream protocol.
* A receiver reads frames until it meets a STREAM frame, then hands the connection over.

Invariant: every frame goes out in its own ``send_all``, hence its own TLS record, and a
stream's first bytes never share a record with the STREAM frame. Upstream's reader wraps
the connection in a fresh ``bufio.Reader`` for each frame, so bytes of a second frame
that arrived in the same record would be silently lost. Never coalesce frames.

Theory of operation. :class:`FrameDecoder` and the ``MemberlistMessage`` codec are pure.
:class:`TLSTransport` is the trio shell: an acceptor task serves each incoming
connection in its own task; each peer we send packets to has one sender task that owns
its pooled connection and a bounded queue, so a slow or unreachable peer never stalls
packets to the others (memberlist in Go dials from the gossiping goroutine itself).
A watcher reads the pooled connection while it is idle: the peer never writes on it,
so end-of-file means it went away, and the next packet dials afresh instead of being
lost on a dead socket (upstream only notices on a failed write).

Error handling: a packet that cannot be delivered (dial, handshake or write failure,
full queue) is dropped and counted, as UDP would lose it. ``open_stream`` raises
:class:`OSError` (TLS handshake failures included) and the caller owns its timeout. A
malformed frame from a peer (undecodable body, wrong version, unknown kind, unusable
``from_addr``) is logged, counted and skipped, and the connection keeps being read; a
frame longer than :data:`MAX_FRAME_BYTES` ends that connection, since skipping it
would mean buffering it.

Cancellation: leaving :func:`open_tls_transport` cancels every task and closes every
connection, each close shielded and bounded by :data:`CLOSE_TIMEOUT`.
"""

from __future__ import annotations

import collections
import ipaddress
import ssl
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import attrs
import structlog
import trio

from cluster.errors import DecodeError
from cluster.membership import Address
from cluster.protowire import ProtoWriter, WireType, iter_fields

log = structlog.get_logger("cluster.tls_transport")

#: ``clusterpb.MemberlistMessage.version`` in Alertmanager 0.25.
PROTOCOL_VERSION = "v0.1.0"
#: ``MemberlistMessage.Kind`` values.
KIND_STREAM = 0
KIND_PACKET = 1
#: Bytes of the little-endian length prefix.
LENGTH_BYTES = 4
#: Upstream accepts any uint32. A frame carries one memberlist packet, which is built
#: to fit a UDP datagram (gossip: 1400 bytes, never over 64 KiB; push/pulls and big
#: user messages go by stream), so a longer frame is a broken or hostile peer and we
#: refuse to buffer it.
MAX_FRAME_BYTES = 1024 * 1024
#: Incoming connections served at once, before they are handed over as streams (the
#: node caps those separately). Each peer keeps one pooled packet connection to us, and
#: upstream pools at most 1024 peers; more than this is a flood, and each may buffer a
#: frame of MAX_FRAME_BYTES. More are closed at once and counted.
MAX_INCOMING_CONNECTIONS = 256
#: Alertmanager's ``DefaultTCPTimeout``: dialing and writing a packet connection.
PACKET_TIMEOUT = 10.0
#: How long an incoming connection may take to finish its TLS handshake.
HANDSHAKE_TIMEOUT = 10.0
#: Upper bound for a (shielded) close of one connection.
CLOSE_TIMEOUT = 1.0
#: Upstream's connection pool holds this many peers (least recently used goes first).
POOL_CAPACITY = 1024
#: Packets waiting for one peer's sender before new ones are dropped.
PEER_QUEUE_SIZE = 256
#: Received packets waiting for the node before readers wait (upstream: unbuffered).
PACKET_QUEUE_SIZE = 1024
#: Incoming streams waiting for the node to pick them up.
STREAM_QUEUE_SIZE = 64
#: How much one read asks for.
READ_SIZE = 65536

_CONNECTION_ERRORS = (OSError, trio.BrokenResourceError, trio.ClosedResourceError)


# --- pure codec ------------------------------------------------------------------------


@attrs.frozen
class MemberlistMessage:
    """One ``clusterpb.MemberlistMessage`` frame body."""

    kind: int
    from_addr: str = ""
    msg: bytes = b""
    version: str = PROTOCOL_VERSION

    def encode(self) -> bytes:
        """Proto3 bytes (default values omitted, as gogo's Marshal does)."""
        writer = ProtoWriter()
        if self.version:
            writer.string(1, self.version)
        if self.kind:
            writer.varint(2, self.kind)
        if self.from_addr:
            writer.string(3, self.from_addr)
        if self.msg:
            writer.bytes_field(4, self.msg)
        return writer.getvalue()

    @classmethod
    def decode(cls, body: bytes) -> MemberlistMessage:
        """Parse a frame body; unknown fields are skipped.

        Raises:
            DecodeError: not a valid message.
        """
        kind, from_addr, msg, version = 0, "", b"", ""
        for field in iter_fields(body):
            if field.number == 1 and field.wire_type == WireType.LEN:
                version = field.as_str()
            elif field.number == 2 and field.wire_type == WireType.VARINT:
                kind = field.as_int()
            elif field.number == 3 and field.wire_type == WireType.LEN:
                from_addr = field.as_str()
            elif field.number == 4 and field.wire_type == WireType.LEN:
                msg = field.as_bytes()
            elif field.number <= 4:
                raise DecodeError(f"memberlist message: field {field.number} has a wrong type")
        return cls(kind=kind, from_addr=from_addr, msg=msg, version=version)


def encode_frame(message: MemberlistMessage) -> bytes:
    """The length-prefixed frame for one message."""
    body = message.encode()
    return len(body).to_bytes(LENGTH_BYTES, "little") + body


def packet_frame(from_addr: str, data: bytes) -> bytes:
    """The frame that carries one memberlist packet."""
    return encode_frame(MemberlistMessage(kind=KIND_PACKET, from_addr=from_addr, msg=data))


#: The frame that opens a stream connection (it never varies).
STREAM_FRAME = encode_frame(MemberlistMessage(kind=KIND_STREAM))


class FrameTooLargeError(DecodeError):
    """A frame's length prefix exceeds :data:`MAX_FRAME_BYTES`."""


class FrameDecoder:
    """Splits received bytes into frame bodies; the bytes after the last frame are kept."""

    def __init__(self, max_frame: int = MAX_FRAME_BYTES) -> None:
        self._buf = bytearray()
        self._max_frame = max_frame

    def feed(self, data: bytes | bytearray | memoryview) -> None:
        """Append received bytes."""
        self._buf += data

    def next_frame(self) -> bytes | None:
        """The next complete frame body, or None until more bytes arrive.

        Raises:
            FrameTooLargeError: the next frame is longer than the limit.
        """
        if len(self._buf) < LENGTH_BYTES:
            return None
        length = int.from_bytes(self._buf[:LENGTH_BYTES], "little")
        if length > self._max_frame:
            raise FrameTooLargeError(f"frame of {length} bytes exceeds {self._max_frame}")
        end = LENGTH_BYTES + length
        if len(self._buf) < end:
            return None
        body = bytes(self._buf[LENGTH_BYTES:end])
        del self._buf[:end]
        return body

    def take_rest(self) -> bytes:
        """Every byte not yet returned as a frame (a stream's first bytes), emptying the buffer."""
        rest = bytes(self._buf)
        self._buf.clear()
        return rest


def check_message(message: MemberlistMessage) -> None:
    """Reject what upstream's reader rejects.

    Raises:
        DecodeError: a foreign version or an unknown kind.
    """
    if message.version != PROTOCOL_VERSION:
        raise DecodeError(f"tls memberlist message version incompatible: {message.version!r}")
    if message.kind not in (KIND_STREAM, KIND_PACKET):
        raise DecodeError(f"unknown memberlist message kind {message.kind}")


def format_address(address: Address) -> str:
    """``host:port`` as Go's ``net.JoinHostPort`` writes it (IPv6 in brackets)."""
    host, port = address
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def parse_address(text: str) -> Address:
    """Split a packet's ``from_addr`` as Go's ``net.SplitHostPort`` would.

    Raises:
        DecodeError: no port, a bad port, or stray brackets.
    """
    if text.startswith("["):
        end = text.find("]")
        if end < 0 or text[end + 1 : end + 2] != ":":
            raise DecodeError(f"bad sender address {text!r}")
        host, port_text = text[1:end], text[end + 2 :]
        try:
            ipaddress.IPv6Address(host.split("%", 1)[0])
        except ValueError:
            raise DecodeError(f"bad sender address {text!r}") from None
    else:
        host, sep, port_text = text.rpartition(":")
        if not sep or ":" in host or "[" in host or "]" in host:
            raise DecodeError(f"bad sender address {text!r}")
    if not port_text.isdigit() or int(port_text) > 65535:
        raise DecodeError(f"bad port in sender address {text!r}")
    return host, int(port_text)


# --- trio shell ------------------------------------------------------------------------


class TLSHandshakeError(OSError):
    """The TLS handshake with a peer failed (bad certificate, protocol mismatch, …)."""


@attrs.define
class TLSTransportStatistics:
    """Counters; the first six are Alertmanager's ``alertmanager_tls_transport_*``."""

    packet_bytes_sent: int = 0
    packet_bytes_received: int = 0
    stream_connections_sent: int = 0
    stream_connections_received: int = 0
    read_errors: int = 0
    write_errors_packet: int = 0
    write_errors_stream: int = 0
    #: Frames skipped because they did not decode (part of ``read_errors`` upstream).
    malformed_frames: int = 0
    #: Packets dropped because their peer's queue was full.
    dropped_packets: int = 0
    #: Incoming connections whose TLS handshake succeeded (packet or stream).
    connections_accepted: int = 0
    #: Incoming connections closed unread because MAX_INCOMING_CONNECTIONS were served.
    connections_refused: int = 0


class _BufferedStream(trio.abc.Stream):
    """An accepted stream whose first bytes were already read with the STREAM frame."""

    def __init__(self, stream: trio.SSLStream[trio.SocketStream], first: bytes) -> None:
        self._stream = stream
        self._first = first

    @property
    def socket(self) -> trio.socket.SocketType:
        """The TCP socket underneath (the node logs the peer's address from it)."""
        return self._stream.transport_stream.socket

    async def send_all(self, data: bytes | bytearray | memoryview) -> None:
        """Send over TLS."""
        await self._stream.send_all(data)

    async def wait_send_all_might_not_block(self) -> None:
        """Delegate to the TLS stream."""
        await self._stream.wait_send_all_might_not_block()

    async def receive_some(self, max_bytes: int | None = None) -> bytes:
        """The buffered bytes first, then whatever TLS delivers."""
        if self._first:
            await trio.lowlevel.checkpoint()
            size = len(self._first) if max_bytes is None else max_bytes
            data, self._first = self._first[:size], self._first[size:]
            return data
        return bytes(await self._stream.receive_some(max_bytes))

    async def aclose(self) -> None:
        """Close the TLS stream."""
        await self._stream.aclose()


async def _close_quietly(stream: trio.abc.AsyncResource) -> None:
    """Close a connection that may already be broken, shielded and bounded."""
    with trio.CancelScope(shield=True) as scope:
        scope.deadline = trio.current_time() + CLOSE_TIMEOUT
        try:
            await stream.aclose()
        except _CONNECTION_ERRORS:
            pass


def _handshake_error(address: Address, exc: BaseException) -> TLSHandshakeError:
    cause = exc.__cause__ or exc
    return TLSHandshakeError(f"TLS handshake with {format_address(address)} failed: {cause}")


class TLSTransport:
    """Packets and streams over TLS, as Alertmanager's ``TLSTransport`` (module docstring).

    Build it with :func:`open_tls_transport`.
    """

    def __init__(
        self,
        listener: trio.SocketListener,
        address: Address,
        server_context: ssl.SSLContext,
        client_context: ssl.SSLContext,
        nursery: trio.Nursery,
        *,
        server_name: str = "",
    ) -> None:
        self._listener = listener
        self._address = address
        self._from_addr = format_address(address)
        self._server_context = server_context
        self._client_context = client_context
        self._server_name = server_name
        self._nursery = nursery
        self._stats = TLSTransportStatistics()
        self.max_connections = MAX_INCOMING_CONNECTIONS
        #: Incoming connections being served (handshake or packet frames).
        self._connections = 0
        self._packets_in, self._packets_out = trio.open_memory_channel[tuple[bytes, Address]](
            PACKET_QUEUE_SIZE
        )
        self._streams_in, self._streams_out = trio.open_memory_channel[trio.abc.Stream](
            STREAM_QUEUE_SIZE
        )
        #: One queue per peer we send packets to, least recently used first.
        self._peers: collections.OrderedDict[Address, trio.MemorySendChannel[bytes]] = (
            collections.OrderedDict()
        )

    # --- Transport ---------------------------------------------------------------------

    @property
    def local_address(self) -> Address:
        """The bound IP and port."""
        return self._address

    async def send_packet(self, address: Address, data: bytes) -> None:
        """Queue a packet for ``address``'s pooled connection; a full queue drops it."""
        await trio.lowlevel.checkpoint()
        queue = self._peers.get(address)
        if queue is None:
            queue = self._add_peer(address)
        else:
            self._peers.move_to_end(address)
        try:
            queue.send_nowait(data)
        except trio.WouldBlock:
            self._stats.dropped_packets += 1
            log.debug("packet.dropped", address=address, reason="queue full")

    async def receive_packet(self) -> tuple[bytes, Address]:
        """Wait for the next packet and the sender's ``from_addr``."""
        return await self._packets_out.receive()

    async def open_stream(self, address: Address) -> trio.abc.Stream:
        """Dial a new TLS connection and mark it as a stream.

        Raises:
            OSError: the peer cannot be reached or the handshake failed.
        """
        try:
            stream = await self._dial(address)
        except OSError:
            self._stats.write_errors_stream += 1
            raise
        try:
            await stream.send_all(STREAM_FRAME)
        except _CONNECTION_ERRORS as exc:
            self._stats.write_errors_stream += 1
            await _close_quietly(stream)
            raise OSError(f"stream to {format_address(address)}: {exc}") from exc
        self._stats.stream_connections_sent += 1
        return stream

    async def accept_stream(self) -> trio.abc.Stream:
        """The next connection a peer opened as a stream."""
        return await self._streams_out.receive()

    # --- queries -----------------------------------------------------------------------

    def statistics(self) -> TLSTransportStatistics:
        """A snapshot of the counters."""
        return attrs.evolve(self._stats)

    # --- dialing -----------------------------------------------------------------------

    async def _dial(self, address: Address) -> trio.SSLStream[trio.SocketStream]:
        """TCP connect and TLS handshake (the server name defaults to the host, as in Go)."""
        host, port = address
        tcp = await trio.open_tcp_stream(host, port)
        stream = trio.SSLStream(
            tcp, self._client_context, server_hostname=self._server_name or host
        )
        try:
            await stream.do_handshake()
        except trio.BrokenResourceError as exc:
            await _close_quietly(tcp)
            raise _handshake_error(address, exc) from exc
        except BaseException:
            await _close_quietly(tcp)
            raise
        return stream

    # --- outgoing packets --------------------------------------------------------------

    def _add_peer(self, address: Address) -> trio.MemorySendChannel[bytes]:
        if len(self._peers) >= POOL_CAPACITY:
            _, oldest = self._peers.popitem(last=False)
            oldest.close()  # its sender finishes and closes the connection
        send, receive = trio.open_memory_channel[bytes](PEER_QUEUE_SIZE)
        self._peers[address] = send
        self._nursery.start_soon(self._send_to_peer, address, receive)
        return send

    async def _send_to_peer(
        self, address: Address, queue: trio.MemoryReceiveChannel[bytes]
    ) -> None:
        """Own one peer's pooled connection: dial on demand, redial after a failure."""
        async with queue:
            while True:
                try:
                    data = await queue.receive()
                except trio.EndOfChannel:
                    return
                try:
                    with trio.fail_after(PACKET_TIMEOUT):
                        stream = await self._dial(address)
                except (OSError, trio.TooSlowError) as exc:
                    self._stats.write_errors_packet += 1
                    log.debug("packet.dial_failed", address=address, error=str(exc))
                    continue
                try:
                    await self._pump(address, stream, queue, data)
                finally:
                    await _close_quietly(stream)

    async def _pump(
        self,
        address: Address,
        stream: trio.SSLStream[trio.SocketStream],
        queue: trio.MemoryReceiveChannel[bytes],
        data: bytes,
    ) -> None:
        """Write packets on one connection until it fails, the peer closes it, or the
        queue is closed (then the EndOfChannel is left for the caller to see)."""
        async with trio.open_nursery() as nursery:
            nursery.start_soon(self._watch_idle, address, stream, nursery.cancel_scope)
            while True:
                try:
                    with trio.fail_after(PACKET_TIMEOUT):
                        await stream.send_all(packet_frame(self._from_addr, data))
                except (*_CONNECTION_ERRORS, trio.TooSlowError) as exc:
                    self._stats.write_errors_packet += 1
                    log.debug("packet.write_failed", address=address, error=str(exc))
                    break
                self._stats.packet_bytes_sent += len(data)
                # a closed queue ends the pump; the caller's next receive sees it again
                try:
                    data = await queue.receive()
                except trio.EndOfChannel:
                    break
            nursery.cancel_scope.cancel()

    async def _watch_idle(
        self,
        address: Address,
        stream: trio.SSLStream[trio.SocketStream],
        pump: trio.CancelScope,
    ) -> None:
        """Read the packet connection (peers never write on it) to notice it closing."""
        try:
            while await stream.receive_some(READ_SIZE):
                pass
        except _CONNECTION_ERRORS:
            pass
        log.debug("packet.connection_closed", address=address)
        pump.cancel()

    # --- incoming connections ------------------------------------------------------------

    async def _accept(self) -> None:
        while True:
            try:
                tcp = await self._listener.accept()
            except OSError as exc:
                # EMFILE and friends: upstream counts, logs and keeps accepting
                self._stats.read_errors += 1
                log.warning("connection.accept_failed", error=str(exc))
                await trio.sleep(0.1)
                continue
            if self._connections >= self.max_connections:
                self._stats.connections_refused += 1
                log.warning("connection.refused", peer=_peer_name(tcp), limit=self.max_connections)
                await _close_quietly(tcp)
                continue
            self._connections += 1
            self._nursery.start_soon(self._serve_connection, tcp)

    async def _serve_connection(self, tcp: trio.SocketStream) -> None:
        stream = trio.SSLStream(tcp, self._server_context, server_side=True)
        handed_off = False
        try:
            with trio.move_on_after(HANDSHAKE_TIMEOUT) as scope:
                await stream.do_handshake()
            if scope.cancelled_caught:
                self._stats.read_errors += 1
                log.debug("connection.handshake_timeout", peer=_peer_name(tcp))
                return
            self._stats.connections_accepted += 1
            handed_off = await self._read_frames(tcp, stream)
        except _CONNECTION_ERRORS as exc:
            self._stats.read_errors += 1
            log.debug("connection.read_failed", peer=_peer_name(tcp), error=_reason(exc))
        finally:
            self._connections -= 1
            if not handed_off:
                await _close_quietly(stream)

    async def _read_frames(
        self, tcp: trio.SocketStream, stream: trio.SSLStream[trio.SocketStream]
    ) -> bool:
        """Deliver packets until EOF (False) or a STREAM frame hands the connection over (True)."""
        decoder = FrameDecoder()
        while True:
            try:
                body = decoder.next_frame()
            except FrameTooLargeError as exc:
                self._stats.read_errors += 1
                self._stats.malformed_frames += 1
                log.warning("frame.too_large", peer=_peer_name(tcp), error=str(exc))
                return False
            if body is None:
                data = await stream.receive_some(READ_SIZE)
                if not data:
                    return False
                decoder.feed(data)
                continue
            try:
                message = MemberlistMessage.decode(body)
                check_message(message)
                if message.kind == KIND_STREAM:
                    await self._streams_in.send(_BufferedStream(stream, decoder.take_rest()))
                    self._stats.stream_connections_received += 1
                    return True
                source = parse_address(message.from_addr)
            except DecodeError as exc:
                self._stats.read_errors += 1
                self._stats.malformed_frames += 1
                log.warning("frame.malformed", peer=_peer_name(tcp), error=str(exc))
                continue
            self._stats.packet_bytes_received += len(message.msg)
            await self._packets_in.send((message.msg, source))


def _peer_name(tcp: trio.SocketStream) -> str:
    try:
        host, port = tcp.socket.getpeername()[:2]
    except OSError:
        return "unknown"
    return format_address((str(host), int(port)))


def _reason(exc: BaseException) -> str:
    return str(exc.__cause__ or exc) or type(exc).__name__


@asynccontextmanager
async def open_tls_transport(
    host: str,
    port: int,
    server_context: ssl.SSLContext,
    client_context: ssl.SSLContext,
    *,
    server_name: str = "",
) -> AsyncIterator[TLSTransport]:
    """Listen for TLS on ``host:port`` (port 0: a free one) and serve the transport.

    ``server_name`` overrides the name peers' certificates are checked against (by
    default the host we dial, as Go's ``tls.Dial`` does).

    Raises:
        OSError: the address cannot be bound.
    """
    listeners = await trio.open_tcp_listeners(port, host=host)
    listener = listeners[0]
    for extra in listeners[1:]:
        await extra.aclose()
    sockname = listener.socket.getsockname()
    address: Address = (host, int(sockname[1]))
    try:
        async with trio.open_nursery() as nursery:
            transport = TLSTransport(
                listener,
                address,
                server_context,
                client_context,
                nursery,
                server_name=server_name,
            )
            nursery.start_soon(transport._accept)
            try:
                yield transport
            finally:
                nursery.cancel_scope.cancel()
    finally:
        await _close_quietly(listener)
