"""The HA cluster in the daemon: ClusterPeers in one process, then tocsin processes."""

from __future__ import annotations

import random
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

import attrs
import pytest
import trio

from daemon.cli import Options
from daemon.clock import NS_PER_SECOND, TrioClock
from daemon.matcher import parse_matcher
from daemon.nflog import Nflog, ReceiverKey
from daemon.notify.context import NotifyContext
from daemon.peer import (
    ClusterPeer,
    PeerSetupError,
    choose_advertise_address,
    join_host_port,
    node_config,
    split_host_port,
)
from daemon.silence import Silence, Silences

#: Wall time the in-process peers start at (2023-11-14T22:13:20Z).
ANCHOR = 1_700_000_000 * NS_PER_SECOND


def fast_options(*peers: str) -> Options:
    """Cluster flags fast enough for a test on loopback (durations in ns)."""
    ms = 1_000_000
    return Options(
        cluster_listen_address="127.0.0.1:0",
        cluster_peers=peers,
        cluster_gossip_interval=50 * ms,
        cluster_probe_interval=200 * ms,
        cluster_probe_timeout=100 * ms,
        cluster_pushpull_interval=1000 * ms,
        cluster_settle_timeout=2000 * ms,
        cluster_peer_timeout=1000 * ms,
        cluster_reconnect_interval=500 * ms,
    )


@attrs.define
class Member:
    """One in-process daemon's replicated state and its peer."""

    peer: ClusterPeer
    silences: Silences
    nflog: Nflog
    journal: list[bytes]


@asynccontextmanager
async def cluster_of(count: int) -> AsyncIterator[list[Member]]:
    """``count`` peers on loopback, each joining the first; left and closed on exit."""
    members: list[Member] = []
    async with trio.open_nursery() as nursery:
        for i in range(count):
            peers = (join_host_port(members[0].peer.node.address),) if members else ()
            clock = TrioClock(ANCHOR + i * 1_000_000)  # later starters sort later
            silences, nflog, journal = Silences(), Nflog(), list[bytes]()
            silences.broadcast = journal.append  # the durable journal's hook
            peer = ClusterPeer(
                fast_options(*peers), silences, nflog, clock, rng=random.Random(i), leave_timeout=2
            )
            await nursery.start(peer.run)
            members.append(Member(peer, silences, nflog, journal))
        yield members
        nursery.cancel_scope.cancel()


async def poll_until(predicate: Callable[[], bool]) -> None:
    """Poll ``predicate`` until true; the caller bounds the wait."""
    while True:
        if predicate():
            return
        await trio.sleep(0.02)


async def wait_for(predicate: Callable[[], bool], seconds: float = 10.0) -> None:
    """Poll ``predicate`` until true, failing after ``seconds``."""
    with trio.fail_after(seconds):
        await poll_until(predicate)


def test_split_host_port_forms() -> None:
    """Listen and peer addresses parse as Go's SplitHostPort would, with a default port."""
    assert split_host_port("127.0.0.1:9094") == ("127.0.0.1", 9094)
    assert split_host_port(":9094") == ("", 9094)
    assert split_host_port("[::1]:19201") == ("::1", 19201)
    assert split_host_port("alertmanager-0") == ("alertmanager-0", 9094)
    with pytest.raises(PeerSetupError):
        split_host_port("host:http")
    assert join_host_port(("::1", 5)) == "[::1]:5"


def test_advertise_address_rules() -> None:
    """An explicit advertise address wins, a specific bind IP is next, then a private IP."""
    bound = ("0.0.0.0", 9094)
    explicit = Options(cluster_advertise_address="10.1.2.3:7000")
    assert choose_advertise_address(explicit, bound, []) == ("10.1.2.3", 7000)
    with pytest.raises(PeerSetupError):
        choose_advertise_address(Options(cluster_advertise_address="host:1"), bound, [])
    assert choose_advertise_address(Options(), ("127.0.0.1", 5), ["10.0.0.1"]) == ("127.0.0.1", 5)
    hosts = ["127.0.1.1", "fe80::1", "8.8.8.8", "192.168.1.4"]
    assert choose_advertise_address(Options(), bound, hosts) == ("192.168.1.4", 9094)
    assert choose_advertise_address(Options(), bound, ["8.8.8.8"]) == ("127.0.0.1", 9094)
    public = Options(cluster_allow_insecure_public_advertise_address_discovery=True)
    assert choose_advertise_address(public, bound, ["8.8.8.8"]) == ("8.8.8.8", 9094)


def test_node_config_from_flags() -> None:
    """Durations become seconds and retransmits follow max(3, peers / 2) as upstream."""
    config = node_config(Options(cluster_peers=tuple(f"h{i}:1" for i in range(8))))
    assert config.gossip_interval == 0.2
    assert config.push_pull_interval == 60.0
    assert config.settle_timeout == 60.0
    assert config.user_retransmit_mult == 4 == config.gossip_nodes
    assert node_config(Options()).user_retransmit_mult == 3


def test_tls_config_is_refused() -> None:
    """A TLS cluster config cannot be honoured, so the peer refuses rather than run in clear."""
    with pytest.raises(PeerSetupError):
        ClusterPeer(Options(cluster_tls_config="tls.yml"), Silences(), Nflog(), _FakeClock())


@attrs.define
class _FakeClock:
    """A fixed wall clock for constructor-only tests."""

    def now(self) -> int:
        """The anchor time."""
        return ANCHOR


async def test_three_peers_share_silences_and_nflog() -> None:
    """A silence set on one peer and an nflog entry logged on another reach all three."""
    async with cluster_of(3) as members:
        a, b, c = members
        await wait_for(lambda: all(len(m.peer.node.members()) == 3 for m in members))
        now = a.peer.clock.now()
        sid = a.silences.set(
            Silence("", (parse_matcher("job=db"),), now, now + 3600 * NS_PER_SECOND), now
        )
        await wait_for(lambda: b.silences.get(sid) is not None and c.silences.get(sid) is not None)
        assert b.silences.mutes({"job": "db"}, 1, b.peer.clock.now()) == [sid]
        # the journal hook keeps working on the writer, and sees merged records elsewhere
        assert len(a.journal) == 1 and len(b.journal) == 1 and len(c.journal) == 1
        key = ReceiverKey("team", "webhook", 0)
        entry = b.nflog.log(key, "{}:{}", [1, 2], [], b.peer.clock.now())
        assert entry is not None
        await wait_for(lambda: all(m.nflog.query("{}:{}", key) == entry for m in members))


async def test_settle_position_and_status() -> None:
    """Peers settle, take positions by name order, and report it in the status object."""
    async with cluster_of(3) as members:
        for m in members:
            assert m.peer.cluster_status()["status"] in ("settling", "ready")
        with trio.fail_after(10):
            for m in members:
                await m.peer.wait_settled()
        await wait_for(lambda: all(len(m.peer.node.members()) == 3 for m in members))
        names = sorted(m.peer.name for m in members)
        for m in members:
            assert m.peer.position() == names.index(m.peer.name)
            assert m.peer.peer_wait() == m.peer.position() * 1.0
            status = m.peer.cluster_status()
            assert status["status"] == "ready" and status["name"] == m.peer.name
            peers = status["peers"]
            assert isinstance(peers, list)
            assert [p["name"] for p in peers] == names
            assert {p["address"] for p in peers} == {
                join_host_port(x.peer.node.address) for x in members
            }
        ctx = NotifyContext("{}:{}", {}, "team", 0, "{}", ANCHOR)
        assert await members[0].peer.settle_stage().process(ctx, []) == []


async def test_settle_stage_blocks_until_settled() -> None:
    """A flush waits in the settle stage while the peer is still settling."""
    async with cluster_of(1) as (only,):
        ctx = NotifyContext("{}:{}", {}, "team", 0, "{}", ANCHOR)
        assert not only.peer.ready
        with trio.move_on_after(0.2) as scope:
            await only.peer.settle_stage().process(ctx, [])
        assert scope.cancelled_caught
        with trio.fail_after(10):
            assert await only.peer.settle_stage().process(ctx, []) == []
        assert only.peer.ready


async def test_leave_is_seen_and_hooks_restored() -> None:
    """Cancelling a peer makes it leave gracefully and gives back the silence hook."""
    async with cluster_of(1) as (first,):
        async with trio.open_nursery() as nursery:
            silences, journal = Silences(), list[bytes]()
            silences.broadcast = journal.append
            opts = fast_options(join_host_port(first.peer.node.address))
            second = ClusterPeer(opts, silences, Nflog(), TrioClock(ANCHOR), leave_timeout=2)
            await nursery.start(second.run)
            await wait_for(lambda: len(first.peer.node.members()) == 2)
            assert silences.broadcast is not journal.append
            nursery.cancel_scope.cancel()
        assert silences.broadcast == journal.append
        await wait_for(lambda: len(first.peer.node.members()) == 1, seconds=3)
        assert first.peer.counters.left == 1
