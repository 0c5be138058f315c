"""A 3-node tocsin cluster against a 3-node Alertmanager 0.25 cluster on loopback.

Run as ``.venv/bin/python -m benchmarks.cluster``. Both clusters run at the same time
with their default gossip settings (only the HA peer timeout is shortened, the same for
both, so the duplicate check does not wait 30 s). Measured, per cluster:

* idle CPU: user+system seconds per node over ``IDLE_SECONDS`` once gossip settled;
* silence propagation: a silence created on one node (round robin) until every other
  node lists it in ``GET /api/v2/silences``, polled back to back; ``REPEATS`` times;
* duplicates: the same ``GROUPS`` alerts (one group each) posted to every node; the
  webhook deliveries per group key counted until the sink stays quiet.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import statistics
import time
from collections import Counter
from collections.abc import Sequence

import httpx

from benchmarks.harness import Daemon, start_cluster
from benchmarks.silences import Sink

NODES = 3
REPEATS = 30
GROUPS = 50
IDLE_SECONDS = 20.0
PEER_TIMEOUT = "3s"
GROUP_WAIT = "1s"
#: The sink must stay quiet this long after the last delivery: longer than the last
#: position's HA wait (2 x peer timeout) plus group_wait.
QUIET_SECONDS = 9.0

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


def idle_cpu(clusters: dict[str, list[Daemon]], seconds: float) -> dict[str, list[float]]:
    """CPU seconds each node used over ``seconds`` of doing nothing (all clusters at once)."""
    before = {kind: [n.cpu_seconds() for n in nodes] for kind, nodes in clusters.items()}
    time.sleep(seconds)
    return {
        kind: [n.cpu_seconds() - b for n, b in zip(nodes, before[kind], strict=True)]
        for kind, nodes in clusters.items()
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
            time.sleep(0.1)  # let the gossip queue drain between samples
    finally:
        for c in clients:
            c.close()
    return times


def post_everywhere(nodes: Sequence[Daemon], groups: int) -> None:
    """Post the same ``groups`` alerts (distinct alertnames) to every node."""
    alerts = [{"labels": {"alertname": f"Dup{g}", "instance": "i"}} for g in range(groups)]
    for node in nodes:
        httpx.post(f"{node.url}/api/v2/alerts", json=alerts, timeout=10).raise_for_status()


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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=REPEATS)
    parser.add_argument("--groups", type=int, default=GROUPS)
    parser.add_argument("--idle", type=float, default=IDLE_SECONDS)
    args = parser.parse_args()
    kinds = ("tocsin", "alertmanager")
    extra = (f"--cluster.peer-timeout={PEER_TIMEOUT}",)
    began = time.perf_counter()
    sinks = {kind: Sink() for kind in kinds}
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
                for kind in kinds
            }
            settle = {kind: wait_settled(nodes) for kind, nodes in clusters.items()}
            print(f"settled: {', '.join(f'{k} {v:.1f}s' for k, v in settle.items())}")
            cpu = idle_cpu(clusters, args.idle)
            print("idle cpu measured")
            prop = {kind: propagation(nodes, args.repeats) for kind, nodes in clusters.items()}
            print("propagation measured")
            for nodes in clusters.values():
                post_everywhere(nodes, args.groups)
            for kind in kinds:
                wait_quiet(sinks[kind], QUIET_SECONDS)
            dups = {kind: deliveries(sinks[kind]) for kind in kinds}
    finally:
        for sink in sinks.values():
            sink.close()

    rows: list[tuple[str, float, float, str]] = []
    t, a = prop["tocsin"], prop["alertmanager"]
    for label, q in (("p50", 0.5), ("p99", 0.99)):
        rows.append((f"silence propagation {label} (ms)", pct(t, q) * 1e3, pct(a, q) * 1e3, ""))
    rows.append(
        ("silence propagation max (ms)", max(t) * 1e3, max(a) * 1e3, ""),
    )
    dt, da = dups["tocsin"], dups["alertmanager"]
    rows.append(("groups notified", len(dt), len(da), f"of {args.groups}"))
    rows.append(("webhook deliveries", sum(dt.values()), sum(da.values()), ""))
    rows.append(
        (
            "duplicate deliveries",
            sum(dt.values()) - len(dt),
            sum(da.values()) - len(da),
            "target 0",
        )
    )
    ct, ca = cpu["tocsin"], cpu["alertmanager"]
    per_node = args.idle / 100  # CPU seconds per 1 % of a core over the idle window
    rows.append(
        (
            "idle CPU per node, mean (% core)",
            statistics.mean(ct) / per_node,
            statistics.mean(ca) / per_node,
            "",
        )
    )
    rows.append(("idle CPU per node, max (% core)", max(ct) / per_node, max(ca) / per_node, ""))

    print()
    print(f"{'metric':36} {'tocsin':>10} {'alertmanager':>13} {'ratio':>7}  note")
    for name, ours, theirs, note in rows:
        print(f"{name:36} {ours:10.1f} {theirs:13.1f} {ratio(ours, theirs):>7}  {note}")
    print()
    print(
        "idle CPU seconds per node over "
        f"{args.idle:.0f} s: tocsin {[round(c, 2) for c in ct]}, "
        f"alertmanager {[round(c, 2) for c in ca]}"
    )
    print(f"run took {time.perf_counter() - began:.0f} s")


if __name__ == "__main__":
    main()
