"""The network seam of a cluster node: UDP packets and TCP streams on one address.

memberlist binds one UDP socket and one TCP listener to the same IP and port, and
every peer uses the advertised address for both. :class:`Transport` is that pair as a
Protocol, so the node runs unchanged over real sockets (:func:`open_udp_tcp_transport`)
or over :mod:`cluster.testing.network`'s in-memory network with loss, delay and
partitions.

Error handling: ``send_packet`` is best effort, as UDP is: errors from the OS are
swallowed there and the packet is lost. ``open_stream`` raises :class:`OSError` when
the peer cannot be reached; the caller owns the timeout.
"""

from __future__ import annotations

import errno
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Protocol

import structlog
import trio

from cluster.membership import Address

log = structlog.get_logger("cluster.transport")

#: memberlist reads packets into a 64 KiB buffer.
UDP_RECEIVE_BUFFER = 65536
#: How many accepted connections may wait for the node to pick them up.
ACCEPT_BACKLOG = 64


class Transport(Protocol):
    """Packets and streams for one cluster address."""

    @property
    def local_address(self) -> Address:
        """The IP and port both the packet and stream sides are bound to."""
        ...

    async def send_packet(self, address: Address, data: bytes) -> None:
        """Send one datagram, best effort (a failure loses the packet)."""
        ...

    async def receive_packet(self) -> tuple[bytes, Address]:
        """Wait for the next datagram and its source."""
        ...

    async def open_stream(self, address: Address) -> trio.abc.Stream:
        """Connect a stream to ``address``.

        Raises:
            OSError: the peer cannot be reached.
        """
        ...

    async def accept_stream(self) -> trio.abc.Stream:
        """Wait for the next incoming stream."""
        ...


class UdpTcpTransport:
    """A trio UDP socket and TCP listener bound to the same address."""

    def __init__(
        self, udp: trio.socket.SocketType, listener: trio.SocketListener, address: Address
    ) -> None:
        self._udp = udp
        self._listener = listener
        self._address = address

    @property
    def local_address(self) -> Address:
        """The bound IP and port."""
        return self._address

    async def send_packet(self, address: Address, data: bytes) -> None:
        """Send a datagram; OS errors (unreachable, buffer full) lose it."""
        try:
            await self._udp.sendto(data, address)
        except OSError as exc:
            log.debug("packet.send_failed", address=address, error=str(exc))

    async def receive_packet(self) -> tuple[bytes, Address]:
        """Wait for a datagram; ICMP-induced errors are skipped."""
        while True:
            try:
                data, source = await self._udp.recvfrom(UDP_RECEIVE_BUFFER)
            except ConnectionResetError:
                continue
            return data, (str(source[0]), int(source[1]))

    async def open_stream(self, address: Address) -> trio.abc.Stream:
        """Connect over TCP."""
        return await trio.open_tcp_stream(address[0], address[1])

    async def accept_stream(self) -> trio.abc.Stream:
        """The next accepted TCP connection."""
        return await self._listener.accept()

    async def aclose(self) -> None:
        """Close both sockets."""
        self._udp.close()
        await self._listener.aclose()


@asynccontextmanager
async def open_udp_tcp_transport(host: str, port: int = 0) -> AsyncIterator[UdpTcpTransport]:
    """Bind UDP and TCP to ``host:port`` (port 0: one free port for both).

    Raises:
        OSError: the address cannot be bound (after a few tries for port 0).
    """
    family = trio.socket.AF_INET6 if ":" in host else trio.socket.AF_INET
    attempts = 1 if port else 20
    for attempt in range(attempts):
        tcp = trio.socket.socket(family, trio.socket.SOCK_STREAM)
        udp = trio.socket.socket(family, trio.socket.SOCK_DGRAM)
        try:
            tcp.setsockopt(trio.socket.SOL_SOCKET, trio.socket.SO_REUSEADDR, 1)
            await tcp.bind((host, port))
            bound_port = int(tcp.getsockname()[1])
            # the UDP side must get the very port TCP got; if taken, start over
            await udp.bind((host, bound_port))
            tcp.listen(ACCEPT_BACKLOG)
            break
        except OSError as exc:
            tcp.close()
            udp.close()
            if exc.errno != errno.EADDRINUSE or attempt == attempts - 1:
                raise
    transport = UdpTcpTransport(udp, trio.SocketListener(tcp), (host, bound_port))
    try:
        yield transport
    finally:
        with trio.CancelScope(shield=True):
            await transport.aclose()
