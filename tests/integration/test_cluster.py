"""The HA cluster in the daemon: ClusterPeers in one process, then tocsin processes."""

from __future__ import annotations

import contextlib
import queue
import random
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import attrs
import pytest
import trio

from cluster.channel import SILENCES_KEY, plan_broadcast
from daemon import metrics
from daemon.clock import NS_PER_SECOND, TrioClock
from daemon.ha.metrics import COLLECTOR
from daemon.ha.peer import (
    ClusterPeer,
    PeerSetupError,
    choose_advertise_address,
    join_host_port,
    node_config,
    split_host_port,
)
from daemon.matcher import parse_matcher
from daemon.nflog.state import Nflog, ReceiverKey
from daemon.notify.context import NotifyContext
from daemon.notify.stages import GossipSettleStage
from daemon.options import Options
from daemon.silence.model import Silence
from daemon.silence.state import Silences
from tests.integration.processes import (
    Proc,
    WebhookSink,
    free_port,
    run_clustered_alertmanager,
    run_tocsin,
)
from tests.integration.processes import (
    wait_for as wait_until,
)

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
        # Long: changes must travel by broadcast, not by the periodic full-state sync.
        cluster_pushpull_interval=60_000 * ms,
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
            silences.subscribe(journal.append)  # as the durable journal subscribes
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


def test_unreadable_tls_config_is_refused(tmp_path: Path) -> None:
    """A TLS cluster config that cannot be read stops set-up rather than run in clear."""
    missing = str(tmp_path / "tls.yml")
    with pytest.raises(PeerSetupError, match=r"tls\.yml"):
        ClusterPeer(Options(cluster_tls_config=missing), Silences(), Nflog(), _FakeClock())


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
        # Each peer's clock starts when the peer does, so b's may still read earlier than
        # the silence's start (a's "now"): ask at a time both agree it has started.
        assert b.silences.mutes({"job": "db"}, 1, max(b.peer.clock.now(), now)) == [sid]
        # the journal hook keeps working on the writer, and sees merged records elsewhere
        assert len(a.journal) == 1 and len(b.journal) == 1 and len(c.journal) == 1
        key = ReceiverKey("team", "webhook", 0)
        entry = b.nflog.log(key, "{}:{}", [1, 2], [], b.peer.clock.now())
        assert entry is not None
        await wait_for(lambda: all(m.nflog.query("{}:{}", key) == entry for m in members))


def scraped(name: str, labels: dict[str, str]) -> float | None:
    """One sample of the process registry, as /metrics would serve it."""
    return metrics.REGISTRY.get_sample_value(name, labels)


async def test_sent_updates_count_every_transmission_as_alertmanager() -> None:
    """messages_sent{update} counts each transmission of a Part, with the Part's bytes:
    3 by gossip, as Alertmanager's, plus tocsin's direct send to each of the 2 peers."""
    async with cluster_of(3) as members:
        a = members[0]
        await wait_for(lambda: all(len(m.peer.node.members()) == 3 for m in members))
        await trio.sleep(1)  # the join's own gossip ran out
        now = a.peer.clock.now()
        a.silences.set(Silence("", (parse_matcher("job=db"),), now, now + NS_PER_SECOND), now)
        part_size = len(plan_broadcast(SILENCES_KEY, a.journal[-1]).part)
        # 3 gossip transmissions in a cluster of 3 (retransmit mult 3 x ceil(log10(3 + 1)))
        # and one direct send to each of the 2 peers
        sends = 3 + 2
        await wait_for(lambda: a.peer.node.statistics().user_messages_sent == sends)
        await trio.sleep(0.5)  # and no more
        stats = a.peer.node.statistics()
        assert (stats.user_messages_sent, stats.user_bytes_sent) == (sends, sends * part_size)
        COLLECTOR.use(a.peer)  # the registry serves the most recently started peer
        update = {"msg_type": "update"}
        assert scraped("alertmanager_cluster_messages_sent_total", update) == sends
        assert scraped("alertmanager_cluster_messages_sent_size_total", update) == (
            sends * part_size
        )


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
        assert await GossipSettleStage(members[0].peer.wait_settled).process(ctx, []) == []


async def test_settle_stage_blocks_until_settled() -> None:
    """A flush waits in the settle stage while the peer is still settling."""
    async with cluster_of(1) as (only,):
        ctx = NotifyContext("{}:{}", {}, "team", 0, "{}", ANCHOR)
        assert not only.peer.ready
        with trio.move_on_after(0.2) as scope:
            await GossipSettleStage(only.peer.wait_settled).process(ctx, [])
        assert scope.cancelled_caught
        with trio.fail_after(10):
            assert await GossipSettleStage(only.peer.wait_settled).process(ctx, []) == []
        assert only.peer.ready


async def test_leave_is_seen_and_listeners_removed() -> None:
    """Cancelling a peer makes it leave gracefully and unsubscribes it from the silences."""
    async with cluster_of(1) as (first,):
        async with trio.open_nursery() as nursery:
            silences, journal = Silences(), list[bytes]()
            silences.subscribe(journal.append)
            opts = fast_options(join_host_port(first.peer.node.address))
            second = ClusterPeer(opts, silences, Nflog(), TrioClock(ANCHOR), leave_timeout=2)
            await nursery.start(second.run)
            await wait_for(lambda: len(first.peer.node.members()) == 2)
            assert len(silences._listeners) == 2  # the journal's and the peer's
            nursery.cancel_scope.cancel()
        assert [listener for listener, _ in silences._listeners] == [journal.append]
        await wait_for(lambda: len(first.peer.node.members()) == 1, seconds=3)
        assert first.peer.counters.left == 1


# --- end to end: tocsin processes (and Alertmanager 0.25) on loopback ---------------------

CONFIG = """
route:
  receiver: hook
  group_by: ['alertname']
  group_wait: 1s
  group_interval: 5s
  repeat_interval: 1h
receivers:
  - name: hook
    webhook_configs:
      - url: {url}
        send_resolved: false
"""

#: Cluster flags that make a loopback cluster settle and gossip within seconds.
FAST_FLAGS = (
    "--cluster.gossip-interval=50ms",
    "--cluster.probe-interval=200ms",
    "--cluster.probe-timeout=100ms",
    "--cluster.pushpull-interval=1m",
    "--cluster.peer-timeout=2s",
    "--cluster.settle-timeout=2s",
    "--cluster.reconnect-interval=500ms",
)


def cluster_flags(own: int, ports: Sequence[int]) -> list[str]:
    """Listen on ``own`` and list every other port as a peer."""
    peers = [f"--cluster.peer=127.0.0.1:{p}" for p in ports if p != own]
    return [f"--cluster.listen-address=127.0.0.1:{own}", *peers, *FAST_FLAGS]


def status_of(proc: Proc) -> dict[str, Any]:
    """The ``cluster`` object of ``/api/v2/status``."""
    with proc.api() as client:
        cluster: dict[str, Any] = client.get("/api/v2/status").json()["cluster"]
        return cluster


def settled(procs: Sequence[Proc], size: int) -> bool:
    """Every node is ready and sees ``size`` peers."""
    statuses = [status_of(p) for p in procs]
    return all(s["status"] == "ready" and len(s["peers"]) == size for s in statuses)


def alert(name: str) -> dict[str, Any]:
    """A firing alert with only an alertname."""
    return {"labels": {"alertname": name, "job": "db"}}


def create_silence(proc: Proc, name: str = "", matchers: list[dict[str, Any]] | None = None) -> str:
    """Silence ``alertname=name`` (or ``matchers``) until 2099 through the API; its ID."""
    if matchers is None:
        matchers = [{"name": "alertname", "value": name, "isRegex": False, "isEqual": True}]
    body = {
        "matchers": matchers,
        "startsAt": "2000-01-01T00:00:00Z",
        "endsAt": "2099-01-01T00:00:00Z",
        "createdBy": "test",
        "comment": "cluster test",
    }
    with proc.api() as client:
        response = client.post("/api/v2/silences", json=body)
    assert response.status_code == 200, response.text
    silence_id: str = response.json()["silenceID"]
    return silence_id


def has_silence(proc: Proc, silence_id: str) -> bool:
    """Whether ``GET /api/v2/silences`` lists ``silence_id``."""
    with proc.api() as client:
        return any(s["id"] == silence_id for s in client.get("/api/v2/silences").json())


def notified_names(sink: WebhookSink, quiet: float) -> list[str]:
    """The alertnames of every webhook received until the sink stays quiet for ``quiet`` s."""
    names: list[str] = []
    while True:
        try:
            request = sink.requests.get(timeout=quiet)
        except queue.Empty:
            return names
        names.extend(a["labels"]["alertname"] for a in request.json()["alerts"])


def test_three_tocsin_nodes_notify_once_and_share_silences(tmp_path: Path) -> None:
    """Three clustered tocsin nodes given the same alert notify once; a silence mutes on all."""
    ports = [free_port() for _ in range(3)]
    with WebhookSink() as sink, contextlib.ExitStack() as stack:
        procs = []
        for i, port in enumerate(ports):
            home = tmp_path / f"n{i}"
            home.mkdir()
            config = CONFIG.format(url=sink.url)
            procs.append(stack.enter_context(run_tocsin(home, config, *cluster_flags(port, ports))))
        wait_until(lambda: settled(procs, 3), timeout=30)
        names = {status_of(p)["name"] for p in procs}
        assert len(names) == 3
        for proc in procs:
            assert proc.post_alerts([alert("Shared")]).status_code == 200
        assert sink.next(timeout=15).json()["alerts"][0]["labels"]["alertname"] == "Shared"
        # positions 1 and 2 wait 2 s and 4 s, then find the gossiped nflog entry
        assert notified_names(sink, quiet=5) == []

        silence_id = create_silence(procs[1], "Muted")
        wait_until(lambda: all(has_silence(p, silence_id) for p in procs), timeout=15)
        for proc in procs:
            assert proc.post_alerts([alert("Muted"), alert("Control")]).status_code == 200
        assert notified_names(sink, quiet=6) == ["Control"]


@contextlib.contextmanager
def tocsin_and_alertmanager(
    tmp: Path, sink: WebhookSink, *tocsin_flags: str
) -> Iterator[tuple[Proc, Proc]]:
    """A tocsin node and an Alertmanager 0.25 node listing each other as peers."""
    tocsin_port, am_port = free_port(), free_port()
    ports = [tocsin_port, am_port]
    config = CONFIG.format(url=sink.url)
    (tmp / "t").mkdir()
    (tmp / "a").mkdir()
    with (
        run_tocsin(tmp / "t", config, *cluster_flags(tocsin_port, ports), *tocsin_flags) as ours,
        run_clustered_alertmanager(tmp / "a", config, *cluster_flags(am_port, ports)) as theirs,
    ):
        yield ours, theirs


@pytest.mark.alertmanager
def test_tocsin_and_alertmanager_form_one_cluster(tmp_path: Path) -> None:
    """tocsin and Alertmanager 0.25 join, share silences both ways, and notify once."""
    with WebhookSink() as sink, tocsin_and_alertmanager(tmp_path, sink) as (ours, theirs):
        wait_until(lambda: settled([ours, theirs], 2), timeout=30)
        assert {p["name"] for p in status_of(ours)["peers"]} == {
            p["name"] for p in status_of(theirs)["peers"]
        }

        from_am = create_silence(theirs, "MutedByAm")
        from_us = create_silence(ours, "MutedByUs")
        wait_until(lambda: has_silence(ours, from_am) and has_silence(theirs, from_us), timeout=15)

        for proc in (ours, theirs):
            batch = [alert("Shared"), alert("MutedByAm"), alert("MutedByUs")]
            assert proc.post_alerts(batch).status_code == 200
        assert notified_names(sink, quiet=6) == ["Shared"]
