"""An in-memory network of cluster transports, with loss, delay, duplication and partitions.

Gossip tests run many nodes in one trio run on ``autojump_clock``. Each node gets a
:class:`MemoryTransport` at an IP of its own (``10.0.0.N``, port 7946 by default) that
implements :class:`cluster.transport.Transport`. The network decides the fate of every
packet: dropped with probability ``loss``, delivered twice with probability
``duplicate``, after ``delay`` seconds (plus up to ``jitter``). A partition splits hosts
into groups that can neither exchange packets nor open streams; :meth:`heal` removes it.
A detached transport (a killed node) silently swallows packets sent to it and refuses
streams, like a closed port.

Streams are :func:`trio.testing.memory_stream_pair` halves, so a push/pull moves real
bytes through the codec layer. An open stream survives a later partition.
"""

from __future__ import annotations

import random
from collections.abc import Iterable

import attrs
import trio
import trio.testing

from cluster.membership import Address

#: How many packets may wait at one endpoint before more are dropped.
PACKET_QUEUE = 4096


@attrs.define
class NetworkStats:
    """What the network did with the packets it was given."""

    sent: int = 0
    delivered: int = 0
    lost: int = 0
    blocked: int = 0
    duplicated: int = 0


class MemoryTransport:
    """One endpoint of a :class:`MemoryNetwork`."""

    def __init__(self, network: MemoryNetwork, address: Address) -> None:
        self._network = network
        self._address = address
        self._packets_in, self._packets_out = trio.open_memory_channel[tuple[bytes, Address]](
            PACKET_QUEUE
        )
        self._streams_in, self._streams_out = trio.open_memory_channel[trio.abc.Stream](64)

    @property
    def local_address(self) -> Address:
        """This endpoint's address."""
        return self._address

    async def send_packet(self, address: Address, data: bytes) -> None:
        """Hand a packet to the network."""
        await trio.lowlevel.checkpoint()
        self._network._route(self._address, address, data)

    async def receive_packet(self) -> tuple[bytes, Address]:
        """The next packet delivered to this endpoint."""
        return await self._packets_out.receive()

    async def open_stream(self, address: Address) -> trio.abc.Stream:
        """Connect to another endpoint.

        Raises:
            ConnectionRefusedError: nobody is there, or a partition is in the way.
        """
        await trio.lowlevel.checkpoint()
        target = self._network._endpoints.get(address)
        if target is None or not self._network.can_reach(self._address[0], address[0]):
            raise ConnectionRefusedError(f"cannot connect to {address}")
        ours, theirs = trio.testing.memory_stream_pair()
        try:
            target._streams_in.send_nowait(theirs)
        except (trio.WouldBlock, trio.ClosedResourceError) as exc:
            raise ConnectionRefusedError(f"{address} is not accepting") from exc
        return ours

    async def accept_stream(self) -> trio.abc.Stream:
        """The next stream another endpoint opened to us."""
        return await self._streams_out.receive()

    def _deliver(self, data: bytes, source: Address) -> bool:
        try:
            self._packets_in.send_nowait((data, source))
        except (trio.WouldBlock, trio.ClosedResourceError):
            return False
        return True


class MemoryNetwork:
    """Hosts, their transports, and the rules packets travel by.

    Delayed delivery needs :meth:`run` running in a nursery; with no delay it is not
    needed.
    """

    def __init__(
        self,
        rng: random.Random | None = None,
        *,
        loss: float = 0.0,
        duplicate: float = 0.0,
        delay: float = 0.0,
        jitter: float = 0.0,
    ) -> None:
        self.rng = rng or random.Random(0)
        self.loss = loss
        self.duplicate = duplicate
        self.delay = delay
        self.jitter = jitter
        self.stats = NetworkStats()
        self._endpoints: dict[Address, MemoryTransport] = {}
        self._groups: list[frozenset[str]] | None = None
        self._nursery: trio.Nursery | None = None
        self._next_host = 1

    def attach(self, host: str | None = None, port: int = 7946) -> MemoryTransport:
        """A new endpoint at ``host:port`` (a fresh ``10.0.0.N`` if no host is given).

        Raises:
            ValueError: the address is taken.
        """
        if host is None:
            host = f"10.0.0.{self._next_host}"
            self._next_host += 1
        address = (host, port)
        if address in self._endpoints:
            raise ValueError(f"{address} is already attached")
        transport = MemoryTransport(self, address)
        self._endpoints[address] = transport
        return transport

    def detach(self, transport: MemoryTransport) -> None:
        """Unplug an endpoint: its address goes dark, queued packets are discarded."""
        if self._endpoints.get(transport.local_address) is transport:
            del self._endpoints[transport.local_address]
        transport._packets_in.close()
        transport._streams_in.close()

    def partition(self, *groups: Iterable[str]) -> None:
        """Split hosts into groups; hosts in different groups (or in none) are cut off."""
        self._groups = [frozenset(group) for group in groups]

    def heal(self) -> None:
        """Remove the partition."""
        self._groups = None

    def can_reach(self, source_host: str, target_host: str) -> bool:
        """True unless a partition separates the two hosts."""
        if self._groups is None or source_host == target_host:
            return True
        return any(source_host in g and target_host in g for g in self._groups)

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Carry delayed packets until cancelled."""
        async with trio.open_nursery() as nursery:
            self._nursery = nursery
            task_status.started()
            try:
                await trio.sleep_forever()
            finally:
                self._nursery = None

    def _route(self, source: Address, target: Address, data: bytes) -> None:
        self.stats.sent += 1
        if not self.can_reach(source[0], target[0]):
            self.stats.blocked += 1
            return
        copies = 1
        if self.duplicate and self.rng.random() < self.duplicate:
            copies = 2
            self.stats.duplicated += 1
        for _ in range(copies):
            if self.loss and self.rng.random() < self.loss:
                self.stats.lost += 1
                continue
            delay = self.delay + (self.rng.random() * self.jitter if self.jitter else 0.0)
            if delay > 0:
                if self._nursery is None:
                    raise RuntimeError("a delaying MemoryNetwork needs run() in a nursery")
                self._nursery.start_soon(self._deliver_later, delay, source, target, data)
            else:
                self._deliver_now(source, target, data)

    async def _deliver_later(
        self, delay: float, source: Address, target: Address, data: bytes
    ) -> None:
        await trio.sleep(delay)
        # the partition is checked again on arrival: a cut made in flight drops the packet
        if self.can_reach(source[0], target[0]):
            self._deliver_now(source, target, data)
        else:
            self.stats.blocked += 1

    def _deliver_now(self, source: Address, target: Address, data: bytes) -> None:
        endpoint = self._endpoints.get(target)
        if endpoint is not None and endpoint._deliver(data, source):
            self.stats.delivered += 1
        else:
            self.stats.lost += 1
