"""Cluster nodes on the in-memory network, in virtual time: join, failure, partition, leave."""

from __future__ import annotations

import math
import random
from collections.abc import AsyncIterator, Callable
from functools import partial

import attrs
import pytest
import trio
import trio.testing

from cluster.channel import Part
from cluster.framing import StreamDecoder, encode_packet
from cluster.messages import ErrResp, NodeState, Suspect
from cluster.node import (
    OVERSIZE_QUEUE,
    ChannelDelegate,
    Histogram,
    Node,
    NodeConfig,
    ulid_name,
)
from cluster.testing.network import MemoryNetwork, MemoryTransport


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
class Cluster:
    """Nodes on one in-memory network, each in its own cancel scope."""

    network: MemoryNetwork
    nursery: trio.Nursery
    nodes: dict[str, Node] = attrs.field(factory=dict)
    scopes: dict[str, trio.CancelScope] = attrs.field(factory=dict)
    transports: dict[str, MemoryTransport] = attrs.field(factory=dict)
    states: dict[str, RecordingState] = attrs.field(factory=dict)

    async def start(
        self, name: str, host: str | None = None, config: NodeConfig | None = None
    ) -> Node:
        """Attach and run a node with a recording ``sil`` state."""
        transport = self.network.attach(host)
        state = RecordingState(full=f"full-{name}".encode())
        delegate = ChannelDelegate()
        delegate.add_state("sil", state)
        node = Node(
            transport,
            name,
            config=config or NodeConfig(),
            delegate=delegate,
            rng=random.Random(name),
        )
        scope = trio.CancelScope()
        await self.nursery.start(partial(_run_in_scope, node, scope))
        self.nodes[name] = node
        self.scopes[name] = scope
        self.transports[name] = transport
        self.states[name] = state
        return node

    def kill(self, name: str) -> None:
        """Stop a node abruptly and unplug it (kill -9)."""
        self.scopes[name].cancel()
        self.network.detach(self.transports[name])

    def names_seen_by(self, name: str) -> set[str]:
        """Live member names in ``name``'s view."""
        return {m.name for m in self.nodes[name].members()}

    def state_of(self, observer: str, name: str) -> NodeState | None:
        """How ``observer`` sees ``name`` (None if unknown)."""
        member = self.nodes[observer].core.member(name)
        return None if member is None else member.state


async def _run_in_scope(
    node: Node, scope: trio.CancelScope, *, task_status: trio.TaskStatus[None]
) -> None:
    with scope:
        await node.run(task_status=task_status)


@pytest.fixture
async def cluster() -> AsyncIterator[Cluster]:
    """An in-memory network whose nodes are all cancelled at the end of the test."""
    async with trio.open_nursery() as nursery:
        network = MemoryNetwork(random.Random(7))
        await nursery.start(network.run)
        yield Cluster(network, nursery)
        nursery.cancel_scope.cancel()


async def wait_until(predicate: Callable[[], bool], limit: float, step: float = 0.05) -> float:
    """Poll ``predicate`` in virtual time; return when it held, fail after ``limit`` s."""
    with trio.fail_after(limit):
        while True:
            if predicate():
                return trio.current_time()
            await trio.sleep(step)


async def start_joined(cluster: Cluster, count: int) -> list[Node]:
    """Start ``count`` nodes, each joining the first one, and wait for convergence."""
    nodes = [await cluster.start(f"n{i}") for i in range(count)]
    for node in nodes[1:]:
        assert await node.join([nodes[0].address]) == 1
    everyone = {n.name for n in nodes}
    await wait_until(lambda: all(cluster.names_seen_by(n.name) == everyone for n in nodes), 20)
    return nodes


async def test_five_nodes_join_and_converge(
    cluster: Cluster, autojump_clock: trio.testing.MockClock
) -> None:
    """Five nodes joining one seed all learn every member through gossip, and positions are distinct."""
    nodes = await start_joined(cluster, 5)
    assert sorted(n.position() for n in nodes) == [0, 1, 2, 3, 4]
    assert nodes[0].position() == 0  # "n0" sorts first
    assert all(n.statistics().members == 5 for n in nodes)


async def test_join_exchanges_user_state(
    cluster: Cluster, autojump_clock: trio.testing.MockClock
) -> None:
    """A join push/pull hands each side the other's full state through the delegate."""
    a = await cluster.start("a")
    b = await cluster.start("b")
    await b.join([a.address])
    assert b"full-b" in cluster.states["a"].merged
    assert b"full-a" in cluster.states["b"].merged


async def test_killed_node_is_suspected_then_dead_after_min_timeout(
    cluster: Cluster, autojump_clock: trio.testing.MockClock
) -> None:
    """With three nodes (no confirmations expected) a killed node is dead 4 s after suspicion."""
    await start_joined(cluster, 3)
    killed_at = trio.current_time()
    cluster.kill("n2")
    suspected = await wait_until(lambda: cluster.state_of("n0", "n2") == NodeState.SUSPECT, 10)
    # each survivor probes n2 at least once every two probe intervals
    assert suspected - killed_at < 3.5
    dead = await wait_until(lambda: cluster.state_of("n0", "n2") == NodeState.DEAD, 30)
    assert 3.9 <= dead - suspected <= 4.2
    await wait_until(lambda: cluster.names_seen_by("n1") == {"n0", "n1"}, 10)


async def test_killed_node_in_five_is_dead_within_bounds(
    cluster: Cluster, autojump_clock: trio.testing.MockClock
) -> None:
    """With five nodes confirmations shorten suspicion: dead well before the 24 s maximum."""
    await start_joined(cluster, 5)
    killed_at = trio.current_time()
    cluster.kill("n4")
    dead = await wait_until(
        lambda: all(cluster.state_of(f"n{i}", "n4") == NodeState.DEAD for i in range(4)), 40
    )
    assert dead - killed_at < 15
    assert all(cluster.names_seen_by(f"n{i}") == {"n0", "n1", "n2", "n3"} for i in range(4))


async def test_partition_splits_and_heals(
    cluster: Cluster, autojump_clock: trio.testing.MockClock
) -> None:
    """A partition leaves each side with its own members; after healing, reconnects merge them."""
    nodes = await start_joined(cluster, 4)
    hosts = [n.address[0] for n in nodes]
    cluster.network.partition(hosts[:2], hosts[2:])
    await wait_until(
        lambda: (
            cluster.names_seen_by("n0") == {"n0", "n1"}
            and cluster.names_seen_by("n3") == {"n2", "n3"}
        ),
        60,
    )
    cluster.network.heal()
    everyone = {"n0", "n1", "n2", "n3"}
    await wait_until(lambda: all(cluster.names_seen_by(n.name) == everyone for n in nodes), 60)
    # the accused nodes refuted with higher incarnations
    assert all(cluster.nodes["n0"].core.member(f"n{i}").incarnation > 1 for i in (2, 3))  # type: ignore[union-attr]


async def test_suspected_node_refutes(
    cluster: Cluster, autojump_clock: trio.testing.MockClock
) -> None:
    """A false suspicion reaches the accused node, which bumps its incarnation and stays alive."""
    await start_joined(cluster, 3)
    liar = cluster.network.attach("10.9.9.9")
    victim = cluster.nodes["n1"].core.member("n2")
    assert victim is not None
    lie = Suspect(incarnation=victim.incarnation, node="n2", from_node="liar").encode()
    await liar.send_packet(cluster.nodes["n0"].address, encode_packet(lie))
    await trio.sleep(0.01)
    assert cluster.state_of("n0", "n2") == NodeState.SUSPECT
    await wait_until(lambda: cluster.nodes["n2"].core.incarnation > victim.incarnation, 5)
    await wait_until(lambda: cluster.state_of("n0", "n2") == NodeState.ALIVE, 5)
    await trio.sleep(30)
    assert all(cluster.state_of(f"n{i}", "n2") == NodeState.ALIVE for i in range(3))
    assert cluster.nodes["n2"].core.stats.refutations >= 1


async def test_graceful_leave(cluster: Cluster, autojump_clock: trio.testing.MockClock) -> None:
    """A leaving node gossips its own dead message: peers record it as left, and run() ends."""
    nodes = await start_joined(cluster, 3)
    leaver = nodes[2]
    started = trio.current_time()
    await leaver.leave()
    assert trio.current_time() - started < 2  # four sends at 200 ms gossip, not the 10 s bound
    await wait_until(
        lambda: all(cluster.state_of(f"n{i}", "n2") == NodeState.LEFT for i in range(2)), 2
    )
    assert cluster.names_seen_by("n0") == {"n0", "n1"}
    assert leaver.address in nodes[0].failed_peers.entries


async def test_garbage_packets_are_counted_and_ignored(
    cluster: Cluster, autojump_clock: trio.testing.MockClock
) -> None:
    """Random bytes, truncated messages and bad CRCs are counted and dropped; membership is unaffected."""
    nodes = await start_joined(cluster, 2)
    target = nodes[0]
    attacker = cluster.network.attach("10.9.9.9")
    good = encode_packet(
        Suspect(incarnation=9, node="nobody", from_node="x").encode(), crc=True, compress=False
    )
    bad_crc = good[:1] + bytes(4) + good[5:]
    packets = [b"", b"\xff\xfe", good[5:-3], bad_crc, b"\x07\x05\x00\x10", b"\x09\x80"]
    packets += [random.Random(i).randbytes(40) for i in range(20)]
    before = target.statistics()
    for packet in packets:
        await attacker.send_packet(target.address, packet)
    await trio.sleep(1)
    after = target.statistics()
    dropped = (after.malformed_packets - before.malformed_packets) + (
        after.malformed_messages - before.malformed_messages
    )
    assert dropped >= len(packets) - 3  # a few random blobs may parse as a harmless message
    assert after.malformed_packets - before.malformed_packets >= 1  # the bad CRC
    await trio.sleep(10)
    assert cluster.names_seen_by("n0") == {"n0", "n1"}


async def test_garbage_stream_gets_err_response(
    cluster: Cluster, autojump_clock: trio.testing.MockClock
) -> None:
    """A malformed TCP stream is answered with errResp, counted, and closed."""
    node = await cluster.start("a")
    attacker = cluster.network.attach("10.9.9.9")
    stream = await attacker.open_stream(node.address)
    await stream.send_all(b"\x06\xc1 not msgpack")
    decoder = StreamDecoder()
    reply = None
    with trio.fail_after(5):
        while reply is None:
            data = await stream.receive_some(1024)
            assert data
            reply = decoder.feed(data)
    assert isinstance(reply, ErrResp)
    assert node.statistics().malformed_streams == 1


async def test_restarted_node_with_new_name_is_rejoined_by_reconnect(
    cluster: Cluster, autojump_clock: trio.testing.MockClock
) -> None:
    """A node restarted at the same address under a new name is pulled back in by peers' reconnects."""
    await start_joined(cluster, 3)
    address = cluster.nodes["n2"].address
    cluster.kill("n2")
    await wait_until(lambda: cluster.state_of("n0", "n2") == NodeState.DEAD, 30)
    assert address in cluster.nodes["n0"].failed_peers.entries
    reborn = await cluster.start("n9", host=address[0])  # joins nobody itself
    await wait_until(
        lambda: all(cluster.names_seen_by(n) == {"n0", "n1", "n9"} for n in ("n0", "n1", "n9")),
        30,
    )
    assert reborn.position() == 2
    assert address not in cluster.nodes["n0"].failed_peers.entries


async def test_user_broadcast_gossips_small_parts_and_streams_large_ones(
    cluster: Cluster, autojump_clock: trio.testing.MockClock
) -> None:
    """A small Part rides UDP gossip to every peer; an oversized one goes by TCP to each."""
    nodes = await start_joined(cluster, 3)
    nodes[0].broadcast("sil", b"small-change")
    nodes[0].broadcast("sil", b"L" * 2000)
    nodes[0].broadcast("unknown-key", b"ignored")
    await trio.sleep(2)
    for name in ("n1", "n2"):
        merged = cluster.states[name].merged
        assert b"small-change" in merged
        assert b"L" * 2000 in merged
    assert b"small-change" not in cluster.states["n0"].merged


async def test_lossy_duplicating_network_still_converges(
    cluster: Cluster, autojump_clock: trio.testing.MockClock
) -> None:
    """With 10% loss, 10% duplication and delay, members converge and nobody is declared dead."""
    cluster.network.loss = 0.1
    cluster.network.duplicate = 0.1
    cluster.network.delay = 0.01
    cluster.network.jitter = 0.02
    nodes = await start_joined(cluster, 4)
    await trio.sleep(60)
    everyone = {n.name for n in nodes}
    assert all(cluster.names_seen_by(n.name) == everyone for n in nodes)
    assert cluster.network.stats.lost > 0 and cluster.network.stats.duplicated > 0


async def test_lone_node_settles_after_five_polls(
    cluster: Cluster, autojump_clock: trio.testing.MockClock
) -> None:
    """Settle polls every 10 gossip intervals and needs three unchanged polls: 10 s for a lone node."""
    started = trio.current_time()
    node = await cluster.start("a")
    assert not node.ready
    await node.wait_settled()
    assert trio.current_time() - started == pytest.approx(10.0)


async def test_settle_timeout_bounds_the_wait(
    cluster: Cluster, autojump_clock: trio.testing.MockClock
) -> None:
    """A settle timeout shorter than the polling proceeds anyway when it expires."""
    started = trio.current_time()
    node = await cluster.start("a", config=NodeConfig(settle_timeout=3.0))
    await node.wait_settled()
    assert trio.current_time() - started == pytest.approx(3.0)


def test_ulid_names_sort_by_time() -> None:
    """ULID names are 26 Crockford characters and a later millisecond sorts later."""
    rng = random.Random(1)
    early, late = ulid_name(1_700_000_000_000, rng), ulid_name(1_700_000_000_001, rng)
    assert len(early) == 26 and early < late
    assert set(early) <= set("0123456789ABCDEFGHJKMNPQRSTVWXYZ")
    assert ulid_name(0, random.Random(0)).startswith("0000000000")


def test_part_unused_import_guard() -> None:
    """Part round-trips its key and data (the delegate's message format)."""
    assert Part.decode(Part("sil", b"x").encode()) == Part("sil", b"x")


async def test_push_pull_to_a_silent_peer_times_out(
    cluster: Cluster, autojump_clock: trio.testing.MockClock
) -> None:
    """A peer that accepts the stream but never answers costs one TCP timeout, then join gives up."""
    node = await cluster.start("a", config=NodeConfig(tcp_timeout=10.0))
    silent = cluster.network.attach("10.9.9.9")
    accepted: list[trio.abc.Stream] = []

    async def accept_and_hang() -> None:
        """Accept one stream and keep it open without replying."""
        accepted.append(await silent.accept_stream())

    cluster.nursery.start_soon(accept_and_hang)
    started = trio.current_time()
    assert await node.join([silent.local_address]) == 0
    assert trio.current_time() - started == pytest.approx(10.0)
    assert accepted
    assert silent.local_address in node.failed_peers.entries


async def test_member_events_reach_the_hook(
    cluster: Cluster, autojump_clock: trio.testing.MockClock
) -> None:
    """The on_event hook sees joins and leaves of peers."""
    events: list[tuple[str, str]] = []
    transport = cluster.network.attach()
    watcher = Node(
        transport,
        "w",
        rng=random.Random(1),
        on_event=lambda e: events.append((type(e).__name__, e.member.name)),
    )
    cluster.nursery.start_soon(watcher.run)
    other = await cluster.start("o")
    await trio.sleep(0.1)
    await other.join([watcher.address])
    await other.leave()
    await wait_until(lambda: ("MemberLeft", "o") in events, 5)
    assert events[:2] == [("MemberJoined", "w"), ("MemberJoined", "o")]


async def test_broadcast_on_an_idle_node_leaves_at_the_next_gossip_tick(
    cluster: Cluster, autojump_clock: trio.testing.MockClock
) -> None:
    """An idle node sleeps through empty gossip ticks, yet a new Part still goes within one."""
    nodes = await start_joined(cluster, 3)
    await trio.sleep(30)  # long idle: every queue is empty, many ticks were skipped
    assert len(nodes[0].core.broadcasts) == 0 and len(nodes[0].core.user_broadcasts) == 0
    sent_at = trio.current_time()
    nodes[0].broadcast("sil", b"after-idle")
    took = await wait_until(
        lambda: all(b"after-idle" in cluster.states[n].merged for n in ("n1", "n2")),
        limit=5,
        step=0.001,
    )
    # gossip reaches at most gossip_nodes (3) peers per tick: both within one interval
    assert took - sent_at <= nodes[0].config.gossip_interval + 0.002


def test_histogram_buckets_are_cumulative_with_inclusive_bounds() -> None:
    """A value equal to a bound counts in that bucket; +Inf holds every observation."""
    histogram = Histogram((1.0, 2.0))
    for value in (1.0, 1.5, 3.0):
        histogram.observe(value)
    assert histogram.cumulative() == [(1.0, 1), (2.0, 2), (math.inf, 3)]
    assert (histogram.count, histogram.total) == (3, 5.5)


async def test_completed_pings_feed_a_histogram_per_peer(
    cluster: Cluster, autojump_clock: trio.testing.MockClock
) -> None:
    """Every probe acked in time is observed under the probed peer's name."""
    nodes = await start_joined(cluster, 3)
    await trio.sleep(10)
    pings = nodes[0].metrics.ping_seconds
    assert set(pings) == {"n1", "n2"}
    # about one probe a second, alternating between the two peers
    assert 6 <= pings["n1"].count + pings["n2"].count <= 12


async def test_reconnects_and_refresh_joins_are_counted(
    cluster: Cluster, autojump_clock: trio.testing.MockClock
) -> None:
    """Each reconnect and refresh join attempt counts as a success or a failure."""
    node = await cluster.start("a")
    missing = ("10.9.9.8", 7946)
    assert await node.join([missing]) == 0
    await trio.sleep(31)  # reconnects at 10, 20, 30 s; refreshes at 15, 30 s
    m = node.metrics
    assert (m.reconnections, m.reconnections_failed) == (0, 3)
    assert (m.refresh_joins, m.refresh_joins_failed) == (0, 2)
    await cluster.start("b", host=missing[0])  # joins nobody: a's reconnect finds it
    await wait_until(lambda: cluster.names_seen_by("a") == {"a", "b"}, 15)
    assert m.reconnections == 1


async def test_oversized_parts_are_counted_per_peer_and_dropped_when_queued_full(
    cluster: Cluster, autojump_clock: trio.testing.MockClock
) -> None:
    """Each oversized Part counts one send per peer; past the queue's 200 it is dropped."""
    nodes = await start_joined(cluster, 3)
    big = b"L" * 2000
    for _ in range(OVERSIZE_QUEUE + 5):
        nodes[0].broadcast("sil", big)
    m = nodes[0].metrics
    assert m.oversize_dropped == {"sil": 5}
    await trio.sleep(5)
    assert m.oversize_sent == {"sil": 2 * OVERSIZE_QUEUE}
    assert m.oversize_seconds["sil"].count == 2 * OVERSIZE_QUEUE
    assert cluster.states["n1"].merged.count(big) == OVERSIZE_QUEUE
    cluster.kill("n2")  # still a member until declared dead
    nodes[0].broadcast("nfl", big)
    await trio.sleep(1)
    assert (m.oversize_sent["nfl"], m.oversize_failed) == (2, {"nfl": 1})


@pytest.mark.parametrize("direct", [False, True])
async def test_direct_user_messages_reach_every_peer_without_gossip(
    cluster: Cluster, autojump_clock: trio.testing.MockClock, direct: bool
) -> None:
    """With direct_user_messages a burst reaches each peer at once, packed into few
    packets; gossip alone has not yet.

    Gossip is slowed to one tick an hour, so only the direct sends can deliver here.
    """
    config = NodeConfig(gossip_interval=3600.0, direct_user_messages=direct)
    nodes = [await cluster.start(f"n{i}", config=config) for i in range(3)]
    for node in nodes[1:]:
        assert await node.join([nodes[0].address]) == 1
    everyone = {n.name for n in nodes}
    await wait_until(lambda: all(cluster.names_seen_by(n.name) == everyone for n in nodes), 20)
    burst = [f"entry-{i}".encode() for i in range(50)]
    sent_before = cluster.network.stats.sent
    for part in burst:
        nodes[0].broadcast("sil", part)
    await trio.sleep(0.1)
    # packed: the burst fits one packet per peer (a probe or two may go meanwhile)
    assert cluster.network.stats.sent - sent_before < 10
    received = {name: set(cluster.states[name].merged) & set(burst) for name in ("n1", "n2")}
    want = len(burst) if direct else 0
    assert {name: len(parts) for name, parts in received.items()} == {"n1": want, "n2": want}
    assert nodes[0].statistics().user_messages_sent == (2 * len(burst) if direct else 0)


async def test_broadcast_after_the_node_stopped_is_dropped_quietly(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """A late broadcast (the daemon writing nflog entries while it shuts down) raises nothing."""
    network = MemoryNetwork(random.Random(3))
    config = NodeConfig(direct_user_messages=True)
    async with trio.open_nursery() as nursery:
        await nursery.start(network.run)
        node = Node(network.attach(), "late", config=config, rng=random.Random(1))
        scope = trio.CancelScope()
        await nursery.start(partial(_run_in_scope, node, scope))
        await trio.sleep(1)
        scope.cancel()
        await trio.sleep(1)
        node.broadcast("sil", b"small")
        node.broadcast("sil", b"L" * 2000)
        nursery.cancel_scope.cancel()
