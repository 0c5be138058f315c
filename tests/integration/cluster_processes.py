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
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import attrs
import httpx
from prometheus_client.parser import text_string_to_metric_families

from tests.integration.processes import Proc, free_port, run_tocsin
from tests.integration.test_cluster import CONFIG, alert

#: Fast failure detection, a short reconnect interval and timeout (Alertmanager's
#: flag names; durations as Go spells them). peer-timeout 1s: position n waits n s.
FAULT_FLAGS = (
    "--cluster.gossip-interval=50ms",
    "--cluster.probe-interval=200ms",
    "--cluster.probe-timeout=100ms",
    "--cluster.pushpull-interval=1m",
    "--cluster.peer-timeout=1s",
    "--cluster.settle-timeout=2s",
    "--cluster.reconnect-interval=500ms",
    "--cluster.reconnect-timeout=5s",
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

    @property
    def cluster_address(self) -> str:
        """The ``host:port`` peers use (UDP and TCP)."""
        return f"127.0.0.1:{self.cluster_port}"

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
    port: int,
    peers: Sequence[str],
    *extra: str,
) -> Iterator[Node]:
    """A tocsin node clustered on 127.0.0.1:``port``, joining ``peers`` (host:port).

    ``home`` holds its config and storage; a fresh ``home`` is a fresh disk.
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
            yield node
        finally:
            node.resume()


def start_cluster(
    stack: contextlib.ExitStack, tmp: Path, sink_url: str, size: int, *extra: str
) -> list[Node]:
    """``size`` nodes, each listing every other one as a peer (contexts on ``stack``)."""
    ports = [free_port() for _ in range(size)]
    nodes = []
    for i, port in enumerate(ports):
        peers = [f"127.0.0.1:{p}" for p in ports if p != port]
        nodes.append(stack.enter_context(run_node(tmp / f"n{i}", sink_url, port, peers, *extra)))
    return nodes


def post_alert(node: Node, name: str) -> None:
    """Post one firing alert to ``node``."""
    response = node.proc.post_alerts([alert(name)])
    assert response.status_code == 200, response.text
