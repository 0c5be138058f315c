"""Clustered tocsin processes for the fault tests: start, kill, pause, scrape, inspect.

Every node runs through :func:`tests.integration.processes.run_tocsin` on 127.0.0.1
with :data:`FAULT_FLAGS`, so a failure is detected within about a second and a
rejoin within one reconnect interval. Nodes are stopped by PID (SIGKILL, SIGSTOP and
SIGCONT go to that PID only); a paused node is always resumed before its context
exits, so the SIGTERM of ``run_tocsin`` can land.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import attrs
import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.integration.processes import Proc, run_tocsin, spawn_tocsin, tocsin_argv, wait_for
from tests.integration.test_cluster import CONFIG, alert

#: Fast failure detection, a short reconnect interval and timeout (Alertmanager's
#: flag names; durations as Go spells them). peer-timeout 1s: position n waits n s.
#: The last of a repeated flag wins, so callers may override any of these.
FAULT_FLAGS = (
    "--cluster.gossip-interval=50ms",
    "--cluster.probe-interval=200ms",
    "--cluster.probe-timeout=100ms",
    "--cluster.pushpull-interval=1m",
    "--cluster.peer-timeout=1s",
    "--cluster.settle-timeout=2s",
    "--cluster.reconnect-interval=500ms",
    "--cluster.reconnect-timeout=5s",
    # a join that meets a stalled peer gives up after 2 s instead of holding start-up 10 s
    "--cluster.tcp-timeout=2s",
)


@attrs.define
class Node:
    """One clustered tocsin process, its cluster port and its home folder."""

    proc: Proc
    cluster_port: int
    home: Path

    @property
    def pid(self) -> int:
        """The process ID signals go to."""
        return self.proc.pid

    host: str = "127.0.0.1"

    @property
    def cluster_address(self) -> str:
        """The ``host:port`` peers use (UDP and TCP)."""
        return f"{self.host}:{self.cluster_port}"

    def alive(self) -> bool:
        """Whether the process is still running."""
        return self.proc.proc.poll() is None

    def kill(self) -> None:
        """SIGKILL: no leave message, no snapshot."""
        os.kill(self.pid, signal.SIGKILL)
        self.proc.proc.wait(10)

    def pause(self) -> None:
        """SIGSTOP: to its peers the node vanishes without a word."""
        os.kill(self.pid, signal.SIGSTOP)

    def resume(self) -> None:
        """SIGCONT after :meth:`pause`."""
        if self.alive():
            os.kill(self.pid, signal.SIGCONT)

    def get(self, path: str) -> httpx.Response:
        """GET ``path`` from the node's HTTP API."""
        with self.proc.api() as client:
            return client.get(path)

    def status(self) -> dict[str, Any]:
        """The ``cluster`` object of ``/api/v2/status``."""
        cluster: dict[str, Any] = self.get("/api/v2/status").json()["cluster"]
        return cluster

    def name(self) -> str:
        """The node's cluster name (a ULID, new on every start)."""
        name: str = self.status()["name"]
        return name

    def peer_names(self) -> set[str]:
        """Names of the live members this node sees, itself included."""
        return {p["name"] for p in self.status()["peers"]}

    def metrics(self) -> dict[str, float]:
        """Every unlabelled sample of ``/metrics`` by name (labelled ones as name{k=v,...})."""
        values: dict[str, float] = {}
        for family in text_string_to_metric_families(self.get("/metrics").text):
            for sample in family.samples:
                labels = ",".join(f"{k}={v}" for k, v in sorted(sample.labels.items()))
                key = f"{sample.name}{{{labels}}}" if labels else sample.name
                values[key] = sample.value
        return values

    def events(self, name: str) -> list[dict[str, Any]]:
        """The node's JSON log events called ``name`` so far."""
        return [e for e in list(self.proc.log_lines) if e.get("event") == name]

    def silence_ids(self) -> set[str]:
        """IDs of every silence ``GET /api/v2/silences`` lists."""
        return {s["id"] for s in self.get("/api/v2/silences").json()}


def cluster_view(nodes: Sequence[Node]) -> list[tuple[str, int, float, float]]:
    """Per node: status, peer count, ``members`` and ``failed_peers`` gauges (for asserts)."""
    view = []
    for node in nodes:
        status, metrics = node.status(), node.metrics()
        view.append(
            (
                status["status"],
                len(status["peers"]),
                metrics["alertmanager_cluster_members"],
                metrics["alertmanager_cluster_failed_peers"],
            )
        )
    return view


def converged(nodes: Sequence[Node], failed: int = 0) -> bool:
    """Every node is ready, sees exactly ``nodes`` and counts ``failed`` failed peers."""
    names = {n.name() for n in nodes}
    if any(n.peer_names() != names for n in nodes):
        return False
    return all(v == ("ready", len(nodes), len(nodes), failed) for v in cluster_view(nodes))


@contextlib.contextmanager
def run_node(
    home: Path,
    sink_url: str,
    peers: Sequence[str],
    *extra: str,
    port: int = 0,
) -> Iterator[Node]:
    """A tocsin node clustered on 127.0.0.1:``port``, joining ``peers`` (host:port).

    Port 0 lets the node bind a free port itself (read back from its log): a port
    probed free in advance can be taken by any outgoing connection on the machine
    before the node starts. ``home`` holds its config and storage; a fresh ``home``
    is a fresh disk.
    """
    home.mkdir(parents=True, exist_ok=True)
    flags = [
        f"--cluster.listen-address=127.0.0.1:{port}",
        *(f"--cluster.peer={p}" for p in peers),
        *FAULT_FLAGS,
        *extra,
    ]
    with run_tocsin(home, CONFIG.format(url=sink_url), *flags) as proc:
        node = Node(proc, port, home)
        try:
            if not port:
                started = wait_for(lambda: node.events("cluster.started"), timeout=10)
                node.cluster_port = int(started[0]["address"][1])
            yield node
        finally:
            node.resume()


def start_cluster(
    stack: contextlib.ExitStack, tmp: Path, sink_url: str, size: int, *extra: str
) -> list[Node]:
    """``size`` nodes, each joining the ones started before it (contexts on ``stack``)."""
    nodes: list[Node] = []
    for i in range(size):
        peers = [n.cluster_address for n in nodes]
        nodes.append(stack.enter_context(run_node(tmp / f"n{i}", sink_url, peers, *extra)))
    return nodes


def post_alert(node: Node, name: str) -> None:
    """Post one firing alert to ``node``."""
    response = node.proc.post_alerts([alert(name)])
    assert response.status_code == 200, response.text


# --- network namespaces: a real two-sided partition ---------------------------------------


def _ip(*args: str) -> None:
    """Run ``ip`` with ``args``; raise with its message if it fails."""
    result = subprocess.run(["ip", *args], capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise RuntimeError(f"ip {' '.join(args)}: {result.stderr.strip()}")


@attrs.define
class Lab:
    """Namespaces on one bridge: host ``i`` is ``namespaces[i]`` at ``addresses[i]``.

    The test process reaches every host through the bridge's address. Partitions are
    blackhole routes inside the namespaces, so each side's packets to the other are
    dropped at the sender, in both directions, while the test still reaches everyone.
    """

    namespaces: list[str]
    addresses: list[str]
    bridge: str

    def partition(self, side: Sequence[int], other: Sequence[int]) -> None:
        """Cut every host in ``side`` off from every host in ``other`` (both ways)."""
        self._routes("add", side, other)

    def heal(self, side: Sequence[int], other: Sequence[int]) -> None:
        """Undo :meth:`partition` with the same arguments."""
        self._routes("del", side, other)

    def _routes(self, verb: str, side: Sequence[int], other: Sequence[int]) -> None:
        for a in side:
            for b in other:
                _ip("-n", self.namespaces[a], "route", verb, "blackhole", f"{self.addresses[b]}/32")
                _ip("-n", self.namespaces[b], "route", verb, "blackhole", f"{self.addresses[a]}/32")


@contextlib.contextmanager
def open_lab(size: int) -> Iterator[Lab]:
    """``size`` network namespaces on a private bridge; removed again at the end.

    Skips the test where namespaces cannot be made (not root, no ``ip``). Names carry
    this process's ID so concurrent runs do not meet; the subnet is picked from it too.
    """
    tag = os.getpid() % 100_000
    subnet = f"10.213.{tag % 250}"
    bridge = f"tfb{tag}"
    namespaces = [f"tocsin-fault-{tag}-{i}" for i in range(size)]
    addresses = [f"{subnet}.{10 + i}" for i in range(size)]
    try:
        _ip("link", "add", bridge, "type", "bridge")
    except (OSError, RuntimeError) as exc:
        pytest.skip(f"cannot make network namespaces here: {exc}")
    try:
        _ip("addr", "add", f"{subnet}.1/24", "dev", bridge)
        _ip("link", "set", bridge, "up")
        for i, (ns, address) in enumerate(zip(namespaces, addresses, strict=True)):
            outside, inside = f"tfv{tag}o{i}", f"tfv{tag}i{i}"
            _ip("netns", "add", ns)
            _ip("link", "add", outside, "type", "veth", "peer", "name", inside)
            _ip("link", "set", outside, "master", bridge, "up")
            _ip("link", "set", inside, "netns", ns)
            _ip("-n", ns, "addr", "add", f"{address}/24", "dev", inside)
            _ip("-n", ns, "link", "set", inside, "up")
            _ip("-n", ns, "link", "set", "lo", "up")
        yield Lab(namespaces, addresses, bridge)
    finally:
        for ns in namespaces:
            with contextlib.suppress(RuntimeError):
                _ip("netns", "del", ns)  # takes its veth pair along
        with contextlib.suppress(RuntimeError):
            _ip("link", "del", bridge)


@contextlib.contextmanager
def run_lab_node(
    lab: Lab, index: int, home: Path, peers: Sequence[int], port: int = 9094
) -> Iterator[Node]:
    """tocsin inside namespace ``index``: API and cluster on its address; SIGTERM by PID at the end.

    Its webhook URL points nowhere: these tests check membership and silences.
    """
    home.mkdir(parents=True, exist_ok=True)
    config = home / "tocsin.yml"
    config.write_text(CONFIG.format(url="http://127.0.0.1:9/"))
    address = lab.addresses[index]
    argv = tocsin_argv(
        config,
        home / "tocsin-data",
        f"--cluster.listen-address={address}:{port}",
        *(f"--cluster.peer={lab.addresses[p]}:{port}" for p in peers),
        *FAULT_FLAGS,
        listen=f"{address}:0",
    )
    # `ip netns exec` execs the command, so the PID we hold is tocsin's own
    wrapped = ["ip", "netns", "exec", lab.namespaces[index], *argv]
    with spawn_tocsin(wrapped, config, host=address) as proc:
        yield Node(proc, port, home, address)
