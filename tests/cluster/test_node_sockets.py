"""Cluster nodes over real loopback sockets, with each other and with Alertmanager 0.25."""

from __future__ import annotations

import random
import time
from collections.abc import Iterator
from pathlib import Path

import attrs
import httpx
import pytest
import trio

from cluster.node import ChannelDelegate, Node, NodeConfig, ulid_name
from cluster.transport import open_udp_tcp_transport
from tests.integration.processes import free_port, run_clustered_alertmanager

BLACKHOLE = "route:\n  receiver: blackhole\nreceivers:\n  - name: blackhole\n"


@attrs.define
class RecordingState:
    """A replicated state that records merged bytes."""

    merged: list[bytes] = attrs.field(factory=list)

    def marshal(self) -> bytes:
        """An empty full state."""
        return b""

    def merge(self, data: bytes) -> None:
        """Record the merge."""
        self.merged.append(data)


async def test_two_nodes_on_loopback_join_and_gossip() -> None:
    """Two nodes on 127.0.0.1 join over TCP, gossip a Part over UDP, and keep each other alive."""
    states = [RecordingState(), RecordingState()]
    with trio.fail_after(20):
        async with (
            open_udp_tcp_transport("127.0.0.1") as ta,
            open_udp_tcp_transport("127.0.0.1") as tb,
            trio.open_nursery() as nursery,
        ):
            nodes = []
            for name, transport, state in (("a", ta, states[0]), ("b", tb, states[1])):
                delegate = ChannelDelegate()
                delegate.add_state("sil", state)
                node = Node(transport, name, delegate=delegate, rng=random.Random(name))
                await nursery.start(node.run)
                nodes.append(node)
            a, b = nodes
            assert a.address[1] != 0 and a.address != b.address
            assert await b.join([a.address]) == 1
            assert {m.name for m in a.members()} == {"a", "b"}
            a.broadcast("sil", b"hello over udp")
            assert states[1].merged == [b""]  # a's (empty) full state, from the join
            while True:
                if len(states[1].merged) >= 2:
                    break
                await trio.sleep(0.05)
            assert states[1].merged == [b"", b"hello over udp"]
            await trio.sleep(2.5)  # a few real probe rounds: pings and acks over UDP
            assert a.core.stats.packets_received > 0
            assert all(m.state == 0 for m in a.members() + b.members())
            assert a.statistics().malformed_packets == 0
            nursery.cancel_scope.cancel()


@pytest.fixture
def alertmanager(tmp_path: Path) -> Iterator[tuple[int, int]]:
    """Run one clustered Alertmanager on loopback; yield its cluster and web ports."""
    cluster_port = free_port()
    with run_clustered_alertmanager(
        tmp_path, BLACKHOLE, f"--cluster.listen-address=127.0.0.1:{cluster_port}"
    ) as proc:
        yield cluster_port, int(proc.url.rsplit(":", 1)[1])


@pytest.mark.alertmanager
async def test_node_joins_real_alertmanager(alertmanager: tuple[int, int]) -> None:
    """Our node joins Alertmanager 0.25: each lists the other, we stay alive, and a leave is seen."""
    cluster_port, web_port = alertmanager
    name = ulid_name(int(time.time() * 1000), random.Random())
    with trio.fail_after(40):
        async with (
            open_udp_tcp_transport("127.0.0.1") as transport,
            trio.open_nursery() as nursery,
            httpx.AsyncClient(base_url=f"http://127.0.0.1:{web_port}") as client,
        ):
            node = Node(transport, name, config=NodeConfig(), rng=random.Random())
            await nursery.start(node.run)
            assert await node.join([("127.0.0.1", cluster_port)]) == 1
            assert len(node.members()) == 2
            am_name = next(m.name for m in node.members() if m.name != name)

            async def am_peers() -> dict[str, str]:
                status = (await client.get("/api/v2/status")).json()
                return {p["name"]: p["address"] for p in status["cluster"]["peers"]}

            while True:
                if name in await am_peers():
                    break
                await trio.sleep(0.2)
            assert (await am_peers())[name] == f"127.0.0.1:{transport.local_address[1]}"
            # several probe rounds both ways: Alertmanager must not suspect us, nor we it
            await trio.sleep(6)
            assert name in await am_peers()
            assert {m.name for m in node.members()} == {name, am_name}
            assert node.core.member(am_name).state == 0  # type: ignore[union-attr]
            assert node.core.stats.refutations == 0
            assert node.statistics().malformed_packets == 0
            # a graceful leave is gossiped; Alertmanager drops us from its peer list
            await node.leave()
            while True:
                if name not in await am_peers():
                    break
                await trio.sleep(0.2)
            nursery.cancel_scope.cancel()
