"""Gossip encryption between cluster nodes on the in-memory network, in virtual time."""

from __future__ import annotations

import random
from collections.abc import AsyncIterator, Callable

import attrs
import pytest
import structlog.testing
import trio
import trio.testing

from cluster.node import ChannelDelegate, Node, NodeConfig
from cluster.security import Keyring
from cluster.testing.network import MemoryNetwork

KEY_1 = bytes(range(16))
KEY_2 = bytes(range(100, 132))
KEY_3 = bytes(range(50, 74))


@attrs.define
class RecordingState:
    """A replicated state that records what it was asked to merge."""

    full: bytes = b""
    merged: list[bytes] = attrs.field(factory=list)

    def marshal(self) -> bytes:
        """Return the canned full state."""
        return self.full

    def merge(self, data: bytes) -> None:
        """Record the merged bytes."""
        self.merged.append(data)


@attrs.define
class Net:
    """Nodes on one in-memory network, all cancelled when the test ends."""

    network: MemoryNetwork
    nursery: trio.Nursery
    states: dict[str, RecordingState] = attrs.field(factory=dict)

    async def start(self, name: str, config: NodeConfig) -> Node:
        """Attach and run a node with a recording ``sil`` state."""
        state = RecordingState(full=f"full-{name}".encode())
        delegate = ChannelDelegate()
        delegate.add_state("sil", state)
        node = Node(
            self.network.attach(),
            name,
            config=config,
            delegate=delegate,
            rng=random.Random(name),
        )
        await self.nursery.start(node.run)
        self.states[name] = state
        return node


@pytest.fixture
async def net() -> AsyncIterator[Net]:
    """An in-memory network whose nodes are all cancelled at the end of the test."""
    async with trio.open_nursery() as nursery:
        network = MemoryNetwork(random.Random(11))
        await nursery.start(network.run)
        yield Net(network, nursery)
        nursery.cancel_scope.cancel()


def encrypted(*keys: bytes, verify: bool = True) -> NodeConfig:
    """A node config with a keyring of ``keys`` (first is primary)."""
    return NodeConfig(
        keyring=Keyring.create(keys), gossip_verify_incoming=verify, gossip_verify_outgoing=verify
    )


async def wait_until(predicate: Callable[[], bool], limit: float) -> None:
    """Poll ``predicate`` in virtual time; fail after ``limit`` seconds."""
    with trio.fail_after(limit):
        while True:
            if predicate():
                return
            await trio.sleep(0.05)


def names(node: Node) -> set[str]:
    """Live member names in ``node``'s view."""
    return {m.name for m in node.members()}


async def test_same_key_nodes_converge_and_share_state(
    net: Net, autojump_clock: trio.testing.MockClock
) -> None:
    """Three nodes sharing one key join, converge through encrypted gossip and exchange state."""
    nodes = [await net.start(f"n{i}", encrypted(KEY_1)) for i in range(3)]
    for node in nodes[1:]:
        assert await node.join([nodes[0].address]) == 1
    everyone = {"n0", "n1", "n2"}
    await wait_until(lambda: all(names(n) == everyone for n in nodes), 20)
    assert b"full-n1" in net.states["n0"].merged
    # a gossiped user message is carried in encrypted UDP packets
    nodes[2].broadcast("sil", b"from-n2")
    await wait_until(lambda: b"from-n2" in net.states["n1"].merged, 10)
    await trio.sleep(5)  # probes and gossip keep flowing without a single failure
    assert all(n.statistics().decrypt_failures == 0 for n in nodes)
    assert all(n.statistics().malformed_packets == 0 for n in nodes)


async def test_wrong_key_is_refused_logged_and_counted(
    net: Net, autojump_clock: trio.testing.MockClock
) -> None:
    """A node with a different key cannot join; the refusal is logged with its source and counted."""
    a = await net.start("a", encrypted(KEY_1))
    b = await net.start("b", encrypted(KEY_2))
    with structlog.testing.capture_logs() as logs:
        assert await b.join([a.address]) == 0
        await trio.sleep(30)  # b keeps retrying; neither side ever fails or merges
    assert names(a) == {"a"}
    assert names(b) == {"b"}
    assert a.statistics().decrypt_failures >= 1
    assert b"full-b" not in net.states["a"].merged
    failures = [e for e in logs if e["event"] == "peer.decrypt_failed"]
    assert failures
    assert all(e["log_level"] == "warning" and "source" in e for e in failures)


async def test_wrong_key_packets_are_dropped(
    net: Net, autojump_clock: trio.testing.MockClock
) -> None:
    """UDP packets sealed with an unknown key never reach the membership core."""
    a = await net.start("a", encrypted(KEY_1))
    b = await net.start("b", encrypted(KEY_2))
    with structlog.testing.capture_logs() as logs:
        # b probes a directly by address, as it would after a stale membership view
        b._outbox_send.send_nowait((a.address, b"\x00junk-ping"))
        await trio.sleep(1)
    assert a.statistics().decrypt_failures == 1
    assert a.statistics().malformed_packets == 0
    assert [e["source"] for e in logs if e["event"] == "peer.decrypt_failed"] == [b.address]


async def test_plaintext_peer_is_refused_unless_verify_incoming_is_off(
    net: Net, autojump_clock: trio.testing.MockClock
) -> None:
    """An unencrypted node cannot join an encrypted one, except in migration mode."""
    strict = await net.start("strict", encrypted(KEY_1))
    lenient = await net.start("lenient", encrypted(KEY_1, verify=False))
    plain = await net.start("plain", NodeConfig())
    assert await plain.join([strict.address]) == 0
    assert strict.statistics().decrypt_failures >= 1
    assert await plain.join([lenient.address]) == 1
    await wait_until(lambda: names(plain) >= {"plain", "lenient"}, 10)


async def test_secondary_key_is_accepted_during_rotation(
    net: Net, autojump_clock: trio.testing.MockClock
) -> None:
    """Nodes with different primaries but each other's key installed converge; then the old key goes."""
    a = await net.start("a", encrypted(KEY_1, KEY_3))
    b = await net.start("b", encrypted(KEY_3, KEY_1))
    assert await b.join([a.address]) == 1
    await wait_until(lambda: names(a) == names(b) == {"a", "b"}, 10)
    # finish the rotation on both nodes, in place: the rings are shared with the nodes
    assert a.config.keyring is not None and b.config.keyring is not None
    a.config.keyring.use_key(KEY_3)
    a.config.keyring.remove_key(KEY_1)
    b.config.keyring.remove_key(KEY_1)
    a.broadcast("sil", b"after-rotation")
    await wait_until(lambda: b"after-rotation" in net.states["b"].merged, 10)
    assert a.statistics().decrypt_failures == b.statistics().decrypt_failures == 0
    # a node still holding only the retired key is now refused
    c = await net.start("c", encrypted(KEY_1))
    assert await c.join([a.address]) == 0
