"""A 3-node tocsin cluster against a 3-node Alertmanager 0.25 cluster on loopback.

Run as ``.venv/bin/python -m benchmarks.cluster``. Both clusters run at the same time
with their default gossip settings (only the HA peer timeout is shortened, the same for
both, so the duplicate check does not wait 30 s). Measured, per cluster:

* idle CPU: CPU time per node over ``IDLE_SECONDS`` (60 s), starting ``CALM_SECONDS``
  after gossip settled, read from the scheduler's per-thread run time
  (``/proc/<pid>/task/*/schedstat``, ns) with the 10 ms tick counters as a cross-check;
* silence propagation: a silence created on one node (round robin) until every other
  node lists it in ``GET /api/v2/silences``, polled back to back; ``REPEATS`` times,
  with a random pause between samples so they do not phase-lock to the gossip ticker;
* duplicates: the same ``GROUPS`` alerts (one group each) posted to every node; the
  webhook deliveries per group key counted until the sink stays quiet. Every duplicate
  is printed with the HA positions that sent it and when, to tell a lagging nflog
  broadcast (a later position sending after its wait) from a membership disagreement
  (two senders at one position).

``--runs N`` repeats everything with fresh clusters and prints the spread; the machine's
load average is printed before each run, since the figures are only comparable on a
quiet machine.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import json
import os
import random
import statistics
import time
from collections import Counter
from collections.abc import Callable, Sequence

import attrs
import httpx
import trio
from trio.testing import MockClock

from benchmarks.harness import Daemon, start_cluster
from benchmarks.silences import Sink
from cluster.node import ChannelDelegate, Node, NodeConfig
from cluster.testing.network import MemoryNetwork

NODES = 3
REPEATS = 30
GROUPS = 50
IDLE_SECONDS = 60.0
#: Seconds between settling and the idle window, so join gossip has died down.
CALM_SECONDS = 5.0
PEER_TIMEOUT = "3s"
GROUP_WAIT = "1s"
#: The sink must stay quiet this long after the last delivery: longer than the last
#: position's HA wait (2 x peer timeout) plus group_wait.
QUIET_SECONDS = 9.0
#: About the size of one gossiped nflog entry for these groups (a Part of ~83-88 bytes).
NFLOG_ENTRY_BYTES = 88
#: memberlist's default gossip interval (both clusters run with it).
GOSSIP_INTERVAL = 0.2

CONFIG = """
route:
  receiver: hook
  group_by: ['alertname']
  group_wait: {group_wait}
  group_interval: 5m
  repeat_interval: 1h
receivers:
  - name: hook
    webhook_configs:
      - url: {url}
        send_resolved: false
"""


def wait_settled(nodes: Sequence[Daemon], timeout: float = 90.0) -> float:
    """Wait until every node reports a ready cluster of all nodes; return the seconds taken."""
    started = time.perf_counter()
    deadline = started + timeout
    while True:
        ok = True
        for node in nodes:
            try:
                cluster = httpx.get(f"{node.url}/api/v2/status", timeout=2).json()["cluster"]
            except httpx.HTTPError:
                ok = False
                break
            if cluster.get("status") != "ready" or len(cluster.get("peers") or ()) != len(nodes):
                ok = False
                break
        if ok:
            return time.perf_counter() - started
        if time.perf_counter() > deadline:
            raise RuntimeError(f"{nodes[0].name}: cluster did not settle")
        time.sleep(0.2)


@attrs.frozen
class IdleCpu:
    """CPU seconds each node used over the idle window, by two clocks."""

    precise: list[float]
    ticks: list[float]


def idle_cpu(clusters: dict[str, list[Daemon]], seconds: float) -> dict[str, IdleCpu]:
    """CPU seconds each node used over ``seconds`` of doing nothing (all clusters at once).

    ``precise`` is the scheduler's per-thread run time (ns resolution); ``ticks`` the
    10 ms user+system counters, which also count threads that ended in the window.
    """
    nodes = [n for kind in clusters.values() for n in kind]
    before = [(n.cpu_seconds(), n.cpu_seconds_ticks()) for n in nodes]
    time.sleep(seconds)
    used = {
        n.name: (n.cpu_seconds() - p, n.cpu_seconds_ticks() - t)
        for n, (p, t) in zip(nodes, before, strict=True)
    }
    return {
        kind: IdleCpu([used[n.name][0] for n in members], [used[n.name][1] for n in members])
        for kind, members in clusters.items()
    }


def silence_body(i: int) -> dict[str, object]:
    """A silence for ``alertname=Prop<i>`` over the next hour."""
    return {
        "matchers": [{"name": "alertname", "value": f"Prop{i}", "isRegex": False, "isEqual": True}],
        "startsAt": "2000-01-01T00:00:00Z",
        "endsAt": "2099-01-01T00:00:00Z",
        "createdBy": "bench",
        "comment": "propagation",
    }


def propagation(nodes: Sequence[Daemon], repeats: int) -> list[float]:
    """Seconds from a silence's creation (the POST's answer) until every other node lists it."""
    rng = random.Random(repeats)  # the same pauses for both clusters
    clients = [httpx.Client(base_url=n.url, timeout=5) for n in nodes]
    times: list[float] = []
    try:
        for i in range(repeats):
            origin = i % len(nodes)
            response = clients[origin].post("/api/v2/silences", json=silence_body(i))
            response.raise_for_status()
            created = time.perf_counter()
            silence_id = response.json()["silenceID"]
            pending = [c for j, c in enumerate(clients) if j != origin]
            deadline = created + 10
            while pending:
                if time.perf_counter() > deadline:
                    raise RuntimeError(f"silence {silence_id} did not propagate in 10 s")
                client = pending[0]
                if any(s["id"] == silence_id for s in client.get("/api/v2/silences").json()):
                    pending.pop(0)
            times.append(time.perf_counter() - created)
            # Let the gossip queue drain, and start the next sample at a random phase of
            # the 200 ms gossip ticker: a fixed pause phase-locks the samples to it, so
            # p50 reflected the API's latency modulo 200 ms (37-153 ms run to run).
            time.sleep(rng.uniform(0.1, 0.1 + GOSSIP_INTERVAL))
    finally:
        for c in clients:
            c.close()
    return times


class TimedSink(Sink):
    """The webhook sink, also noting when each body arrived."""

    def __init__(self) -> None:
        super().__init__()
        self.times: list[float] = []

    def record(self, body: bytes) -> None:
        """Note the arrival time, then keep the body (both on the sink's one thread)."""
        self.times.append(time.perf_counter())
        super().record(body)


def positions(nodes: Sequence[Daemon]) -> dict[str, int]:
    """Each node's HA position (its index among the member names), by web port."""
    found: dict[str, int] = {}
    for node in nodes:
        cluster = httpx.get(f"{node.url}/api/v2/status", timeout=5).json()["cluster"]
        names = sorted(p["name"] for p in cluster["peers"])
        found[node.url.rsplit(":", 1)[1]] = names.index(cluster["name"])
    return found


def post_everywhere(nodes: Sequence[Daemon], groups: int) -> float:
    """Post the same ``groups`` alerts (distinct alertnames) to every node; return when
    the first post began."""
    alerts = [{"labels": {"alertname": f"Dup{g}", "instance": "i"}} for g in range(groups)]
    began = time.perf_counter()
    for node in nodes:
        httpx.post(f"{node.url}/api/v2/alerts", json=alerts, timeout=10).raise_for_status()
    return began


def explain_duplicates(sink: TimedSink, where: dict[str, int], began: float) -> list[str]:
    """For each group notified more than once: which positions sent it, and when.

    The sender is the port in the payload's ``externalURL`` (each node defaults it to
    its own listen address). A duplicate from position 1 or 2 after its HA wait means
    the nflog entry of position 0 had not arrived; two senders at one position mean
    the nodes disagreed about membership.
    """
    with sink.lock:
        received = list(zip(sink.times, sink.bodies, strict=True))
    by_group: dict[str, list[str]] = {}
    for at, body in received:
        payload = json.loads(body)
        port = payload["externalURL"].rstrip("/").rsplit(":", 1)[-1]
        sender = f"position {where.get(port, '?')} at +{at - began:.2f}s"
        by_group.setdefault(payload["groupKey"], []).append(sender)
    return [f"{key}: {', '.join(senders)}" for key, senders in by_group.items() if len(senders) > 1]


def wait_quiet(sink: Sink, quiet: float, limit: float = 60.0) -> None:
    """Return once ``sink`` received nothing new for ``quiet`` seconds."""
    deadline = time.monotonic() + limit
    seen, since = -1, time.monotonic()
    while time.monotonic() < deadline:
        with sink.lock:
            count = len(sink.bodies)
        if count != seen:
            seen, since = count, time.monotonic()
        elif time.monotonic() - since >= quiet:
            return
        time.sleep(0.2)


def deliveries(sink: Sink) -> Counter[str]:
    """Webhook deliveries per group key."""
    with sink.lock:
        bodies = list(sink.bodies)
    return Counter(json.loads(b)["groupKey"] for b in bodies)


def pct(values: Sequence[float], q: float) -> float:
    """The ``q`` quantile (nearest rank)."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * len(ordered)) - 1))]


def ratio(ours: float, theirs: float) -> str:
    """tocsin / Alertmanager, as text."""
    return f"{ours / theirs:.2f}x" if theirs else "-"


@attrs.define
class _ReGossiping:
    """An nflog-like state: keeps each new Part and gossips it on, as the nflog does."""

    gossip: Callable[[bytes], None]
    merged: set[bytes] = attrs.field(factory=set)

    def marshal(self) -> bytes:
        """No full state: push/pull must not repair what gossip missed here."""
        return b""

    def merge(self, data: bytes) -> None:
        """Keep and re-gossip a Part seen for the first time."""
        if data not in self.merged:
            self.merged.add(data)
            self.gossip(data)


async def _one_burst(seed: int, parts: int, size: int, wait: float, direct: bool) -> int:
    """Three nodes on a lossless in-memory network; one broadcasts ``parts`` distinct
    Parts at once; return how many a peer still lacks ``wait`` s later.

    ``direct``: tocsin's setting (each Part also sent to every peer at once); without,
    memberlist's gossip only, which is what Alertmanager does."""
    async with trio.open_nursery() as nursery:
        network = MemoryNetwork(random.Random(seed))
        await nursery.start(network.run)
        nodes: list[Node] = []
        states: list[_ReGossiping] = []
        for i in range(NODES):
            state = _ReGossiping(gossip=lambda data: None)
            delegate = ChannelDelegate()
            delegate.add_state("nfl", state)
            node = Node(
                network.attach(),
                f"n{i}",
                config=NodeConfig(direct_user_messages=direct),
                delegate=delegate,
                rng=random.Random(seed + i),
            )
            state.gossip = functools.partial(node.broadcast, "nfl")
            await nursery.start(node.run)
            nodes.append(node)
            states.append(state)
        for node in nodes[1:]:
            await node.join([nodes[0].address])
        await trio.sleep(30)  # settled, the join's gossip spent
        burst = [i.to_bytes(4, "big") * (size // 4) for i in range(parts)]
        for part in burst:
            states[0].merged.add(part)
            nodes[0].broadcast("nfl", part)
        await trio.sleep(wait)
        nursery.cancel_scope.cancel()
    return sum(part not in state.merged for state in states[1:] for part in burst)


def gossip_reach(runs: int, parts: int, wait: float, direct: bool = False) -> list[int]:
    """Parts that never reached a peer within ``wait`` s, per simulated run (virtual time).

    What a duplicate needs is exactly this: the nflog entry of position 0 missing at a
    later position when its HA wait ends. memberlist hands each Part out only
    ``retransmit_mult * ceil(log10(n + 1))`` (3) times; with two peers all three can go
    to the same one, whose own three re-sends can all go back to the origin. Nothing
    resends it then until a push/pull (60 s). No loss, delay or CPU starvation here.
    """
    return [
        trio.run(
            _one_burst,
            seed,
            parts,
            NFLOG_ENTRY_BYTES,
            wait,
            direct,
            clock=MockClock(autojump_threshold=0),
        )
        for seed in range(runs)
    ]


@attrs.frozen
class Run:
    """What one run measured, per cluster kind."""

    settle: dict[str, float]
    cpu: dict[str, IdleCpu]
    propagation: dict[str, list[float]]
    deliveries: dict[str, Counter[str]]
    #: One line per duplicated group (see explain_duplicates).
    duplicated: dict[str, list[str]]


KINDS = ("tocsin", "alertmanager")


def measure(args: argparse.Namespace) -> Run:
    """Start both clusters side by side, measure everything once, stop them."""
    extra = (f"--cluster.peer-timeout={PEER_TIMEOUT}",)
    sinks = {kind: TimedSink() for kind in KINDS}
    try:
        with contextlib.ExitStack() as stack:
            clusters = {
                kind: stack.enter_context(
                    start_cluster(
                        kind,
                        CONFIG.format(url=sinks[kind].url, group_wait=GROUP_WAIT),
                        NODES,
                        extra,
                    )
                )
                for kind in KINDS
            }
            settle = {kind: wait_settled(nodes) for kind, nodes in clusters.items()}
            print(f"settled: {', '.join(f'{k} {v:.1f}s' for k, v in settle.items())}")
            # settled is not quiet yet: the join's broadcasts are still being gossiped
            time.sleep(args.calm)
            cpu = idle_cpu(clusters, args.idle)
            print("idle cpu measured")
            prop = {kind: propagation(nodes, args.repeats) for kind, nodes in clusters.items()}
            print("propagation measured")
            where = {kind: positions(nodes) for kind, nodes in clusters.items()}
            began = {kind: post_everywhere(nodes, args.groups) for kind, nodes in clusters.items()}
            for kind in KINDS:
                wait_quiet(sinks[kind], QUIET_SECONDS)
            dups = {kind: deliveries(sinks[kind]) for kind in KINDS}
            why = {
                kind: explain_duplicates(sinks[kind], where[kind], began[kind]) for kind in KINDS
            }
    finally:
        for sink in sinks.values():
            sink.close()
    return Run(settle, cpu, prop, dups, why)


def duplicates(counts: Counter[str]) -> int:
    """Deliveries beyond the first per group key."""
    return sum(counts.values()) - len(counts)


def report(run: Run, args: argparse.Namespace) -> None:
    """Print one run's table."""
    rows: list[tuple[str, float, float, str]] = []
    t, a = run.propagation["tocsin"], run.propagation["alertmanager"]
    for label, q in (("p50", 0.5), ("p99", 0.99)):
        rows.append((f"silence propagation {label} (ms)", pct(t, q) * 1e3, pct(a, q) * 1e3, ""))
    rows.append(("silence propagation max (ms)", max(t) * 1e3, max(a) * 1e3, ""))
    dt, da = run.deliveries["tocsin"], run.deliveries["alertmanager"]
    rows.append(("groups notified", len(dt), len(da), f"of {args.groups}"))
    rows.append(("webhook deliveries", sum(dt.values()), sum(da.values()), ""))
    rows.append(("duplicate deliveries", duplicates(dt), duplicates(da), "target 0"))
    per_pct = args.idle / 100  # CPU seconds per 1 % of a core over the idle window
    ct, ca = run.cpu["tocsin"], run.cpu["alertmanager"]
    for label, fn in (("mean", statistics.mean), ("max", max)):
        rows.append(
            (
                f"idle CPU per node, {label} (% core)",
                fn(ct.precise) / per_pct,
                fn(ca.precise) / per_pct,
                "schedstat",
            )
        )
    rows.append(
        (
            "idle CPU per node, mean (% core)",
            statistics.mean(ct.ticks) / per_pct,
            statistics.mean(ca.ticks) / per_pct,
            "10 ms ticks",
        )
    )
    print()
    print(f"{'metric':36} {'tocsin':>10} {'alertmanager':>13} {'ratio':>7}  note")
    for name, ours, theirs, note in rows:
        print(f"{name:36} {ours:10.2f} {theirs:13.2f} {ratio(ours, theirs):>7}  {note}")
    for kind in KINDS:
        for line in run.duplicated[kind]:
            print(f"duplicate ({kind}) {line}")
    print()
    print(
        f"idle CPU seconds per node over {args.idle:.0f} s (schedstat): "
        f"tocsin {[round(c, 3) for c in ct.precise]}, "
        f"alertmanager {[round(c, 3) for c in ca.precise]}"
    )


def summary(runs: Sequence[Run], args: argparse.Namespace) -> None:
    """Print the spread over several runs."""
    per_pct = args.idle / 100
    print(f"\nover {len(runs)} runs (min / mean / max):")
    for kind in KINDS:
        means = [statistics.mean(r.cpu[kind].precise) / per_pct for r in runs]
        dups = [duplicates(r.deliveries[kind]) for r in runs]
        p50 = [pct(r.propagation[kind], 0.5) * 1e3 for r in runs]
        print(
            f"  {kind:13} idle CPU mean % core {min(means):.2f} / {statistics.mean(means):.2f}"
            f" / {max(means):.2f}; duplicates {dups}; propagation p50 ms "
            f"{min(p50):.1f} / {statistics.mean(p50):.1f} / {max(p50):.1f}"
        )
    wins = sum(
        statistics.mean(r.cpu["tocsin"].precise) <= statistics.mean(r.cpu["alertmanager"].precise)
        for r in runs
    )
    print(f"  runs where tocsin idle CPU <= Alertmanager's: {wins} of {len(runs)}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=REPEATS)
    parser.add_argument("--groups", type=int, default=GROUPS)
    parser.add_argument("--idle", type=float, default=IDLE_SECONDS)
    parser.add_argument("--calm", type=float, default=CALM_SECONDS)
    parser.add_argument("--runs", type=int, default=1)
    parser.add_argument(
        "--gossip-reach",
        type=int,
        default=0,
        metavar="N",
        help="instead: simulate N bursts of --groups Parts on 3 in-memory nodes and "
        "print how many Parts a peer lacked after the HA wait",
    )
    args = parser.parse_args()
    if args.gossip_reach:
        wait = 2 * float(PEER_TIMEOUT.rstrip("s"))
        for label, direct in (("gossip only (Alertmanager)", False), ("tocsin", True)):
            missing = gossip_reach(args.gossip_reach, args.groups, wait, direct)
            print(
                f"{label}: Parts a peer lacked {wait:.0f} s after a burst of {args.groups}: "
                f"{missing} ({sum(m > 0 for m in missing)} of {len(missing)} runs)"
            )
        return
    runs: list[Run] = []
    for number in range(args.runs):
        began = time.perf_counter()
        print(f"run {number + 1} of {args.runs}, load {os.getloadavg()[0]:.2f}")
        run = measure(args)
        report(run, args)
        print(f"run took {time.perf_counter() - began:.0f} s")
        runs.append(run)
    if len(runs) > 1:
        summary(runs, args)


if __name__ == "__main__":
    main()
