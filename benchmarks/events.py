"""Kubernetes events through ``POST /api/v1/events`` with the default rule set.

Workload: 100,000 core/v1 Events in the shape kube-events' exporter posts (full
metadata, involvedObject with uid and resourceVersion, source, timestamps), as NDJSON
in batches of 500 (the exporter's batch size) over 4 connections. The mix follows a
busy cluster: most events are Normal pod lifecycle (Scheduled, Pulling, Pulled,
Created, Started, SuccessfulCreate: notification rules), the rest Warnings (BackOff,
Unhealthy, FailedScheduling, FailedMount, ...: alert rules) over 5,000 pods in 50
namespaces. Each event is distinct (its own uid), so every alert match is an occurrence.

Reported: events/s (wall clock, client included) and tocsin's CPU per event (all its
threads, from /proc). Target: at least 20,000 events/s on one core.

Alertmanager 0.25 has no event intake. The same run measures what it does with this
traffic in a KubeSphere cluster: ingesting, through ``POST /api/v2/alerts``, the alerts
kube-events' ruler posts for these events (computed here with the same rules, without
startsAt/endsAt as the ruler sends them). The ratio compares the time and CPU each
daemon spends to take in the same traffic; it leaves out kube-events' ruler process,
whose work (decoding and evaluating every event) tocsin does itself.

Run: .venv/bin/python -m benchmarks.events [--events 100000] [--breakdown]
"""

from __future__ import annotations

import argparse
import json
import random
import time
from typing import Any

import trio

from benchmarks.harness import ROOT, Daemon, start
from benchmarks.rawhttp import post_bodies
from daemon.clock import NS_PER_SECOND
from daemon.sources.kubeevents import decode_kube_events
from daemon.sources.production import evaluate_steps
from daemon.sources.resolve import ResolveBook
from daemon.sources.rulesets import RuleFiles
from daemon.sources.steps import finish

RULES = ROOT / "configs/rules/kube-events.yaml"
BATCH = 500
CONNECTIONS = 4

CONFIG = """
route:
  receiver: sink
  group_by: [alertname, namespace]
  group_wait: 1h
  group_interval: 1h
  repeat_interval: 4h
receivers:
  - name: sink
    webhook_configs:
      - url: http://127.0.0.1:9/
"""

#: (weight, type, reason, message, on a container)
MIX: list[tuple[int, str, str, str, bool]] = [
    (14, "Normal", "Scheduled", "Successfully assigned {ns}/{pod} to node-{node}", False),
    (12, "Normal", "Pulling", 'Pulling image "registry.example.org/shop/app:1.4.2"', True),
    (
        12,
        "Normal",
        "Pulled",
        'Successfully pulled image "registry.example.org/shop/app:1.4.2" in 1.2s',
        True,
    ),
    (12, "Normal", "Created", "Created container app", True),
    (12, "Normal", "Started", "Started container app", True),
    (8, "Normal", "Killing", "Stopping container app", True),
    (
        6,
        "Normal",
        "SandboxChanged",
        "Pod sandbox changed, it will be killed and re-created.",
        False,
    ),
    (8, "Warning", "BackOff", "Back-off restarting failed container app in pod {pod}_{ns}", True),
    (
        6,
        "Warning",
        "Unhealthy",
        "Readiness probe failed: HTTP probe failed with statuscode: 503",
        True,
    ),
    (4, "Warning", "FailedScheduling", "0/3 nodes are available: 3 Insufficient memory.", False),
    (
        3,
        "Warning",
        "FailedMount",
        'MountVolume.SetUp failed for volume "data" : secret "db" not found',
        False,
    ),
    (3, "Warning", "Failed", "Error: ErrImagePull", True),
]


def make_events(total: int, seed: int = 7) -> list[dict[str, Any]]:
    rng = random.Random(seed)
    weights = [m[0] for m in MIX]
    events: list[dict[str, Any]] = []
    for i in range(total):
        _, type_, reason, message, container = rng.choices(MIX, weights)[0]
        ns = f"team-{rng.randrange(50)}"
        pod = f"app-{rng.randrange(100)}-7d9c8b6f5d-{rng.randrange(100_000):05d}"
        node = rng.randrange(30)
        count = rng.randrange(1, 20) if type_ == "Warning" else 1
        involved: dict[str, Any] = {
            "kind": "Pod",
            "namespace": ns,
            "name": pod,
            "uid": f"0f1e6a4c-5b1d-4f53-9d2e-{i:012x}",
            "apiVersion": "v1",
            "resourceVersion": str(480_000 + i),
        }
        if container:
            involved["fieldPath"] = "spec.containers{app}"
        events.append(
            {
                "metadata": {
                    "name": f"{pod}.17b9c3e1{i:08x}",
                    "namespace": ns,
                    "uid": f"6a0d2f7e-3c44-4d0b-8a6f-{i:012x}",
                    "resourceVersion": str(500_000 + i),
                    "creationTimestamp": "2024-03-05T10:15:02Z",
                },
                "involvedObject": involved,
                "reason": reason,
                "message": message.format(ns=ns, pod=pod, node=node),
                "source": {"component": "kubelet", "host": f"node-{node}"},
                "firstTimestamp": "2024-03-05T10:15:02Z",
                "lastTimestamp": "2024-03-05T10:17:40Z",
                "count": count,
                "type": type_,
                "eventTime": None,
                "reportingComponent": "kubelet",
                "reportingInstance": f"node-{node}",
            }
        )
    return events


def ndjson_batches(events: list[dict[str, Any]]) -> list[bytes]:
    """The exporter's wrapped lines, ``{"Event": {...}, "cluster": ...}``, 500 a body."""
    lines = [json.dumps({"Event": e, "cluster": "host"}).encode() for e in events]
    return [b"\n".join(lines[i : i + BATCH]) + b"\n" for i in range(0, len(lines), BATCH)]


def alert_batches(events: list[dict[str, Any]]) -> tuple[list[bytes], int]:
    """What kube-events' ruler posts to Alertmanager for ``events``: JSON arrays of
    alerts without startsAt/endsAt, one per alert match, 500 a request."""
    rules = RuleFiles(events=[str(RULES)]).load().events
    alerts = [
        {"labels": o.labels, "annotations": o.annotations}
        for e in events
        for o in rules.outcomes(e)
        if o.type == "alert"
    ]
    bodies = [json.dumps(alerts[i : i + BATCH]).encode() for i in range(0, len(alerts), BATCH)]
    return bodies, len(alerts)


async def post_all(url: str, path: str, bodies: list[bytes]) -> list[Any]:
    """POST the bodies over ``CONNECTIONS`` keep-alive connections (the raw client of
    :mod:`benchmarks.rawhttp`: an httpx client spent more CPU per POST than either
    daemon); the decoded answers."""
    raw: list[bytes] = []
    await post_bodies(url, path, bodies, CONNECTIONS, answers=raw)
    return [json.loads(a) if a else None for a in raw]


def breakdown(bodies: list[bytes]) -> None:
    """CPU µs per event of each pure stage, in this process, over the same bodies."""
    rules = RuleFiles(events=[str(RULES)]).load().events
    t0 = time.process_time()
    events = [e for body in bodies for e in decode_kube_events(body)]
    t1 = time.process_time()
    evaluation = finish(evaluate_steps("events", rules, events, 15 * 60 * NS_PER_SECOND))
    t2 = time.process_time()
    ResolveBook().occur(evaluation.occurrences, 0)
    t3 = time.process_time()
    n = len(events)
    print(
        f"in-process CPU µs per event: decode {(t1 - t0) * 1e6 / n:.1f}, "
        f"rules {(t2 - t1) * 1e6 / n:.1f}, resolver {(t3 - t2) * 1e6 / n:.1f}"
    )


def measure(d: Daemon, path: str, bodies: list[bytes]) -> tuple[float, float, list[Any]]:
    """(wall seconds, daemon CPU seconds, answers) to take in ``bodies``."""
    cpu0, t0 = d.cpu_seconds(), time.perf_counter()
    answers = trio.run(post_all, d.url, path, bodies)
    return time.perf_counter() - t0, d.cpu_seconds() - cpu0, answers


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--events", type=int, default=100_000)
    ap.add_argument(
        "--breakdown", action="store_true", help="only time decode, rules and resolver in-process"
    )
    args = ap.parse_args()
    if args.breakdown:
        breakdown(ndjson_batches(make_events(args.events)))
        return
    warmup = make_events(2_000, seed=1)
    events = make_events(args.events)
    bodies = ndjson_batches(events)
    am_bodies, alerts = alert_batches(events)
    with start("alertmanager", CONFIG) as am:
        trio.run(post_all, am.url, "/api/v2/alerts", alert_batches(warmup)[0])
        am_wall, am_cpu, _ = measure(am, "/api/v2/alerts", am_bodies)
    with start("tocsin", CONFIG, (f"--events.rules-file={RULES}",)) as to:
        trio.run(post_all, to.url, "/api/v1/events", ndjson_batches(warmup))
        wall, cpu, answers = measure(to, "/api/v1/events", bodies)
    n = len(events)
    received = sum(a["received"] for a in answers)
    assert received == n, received
    matched = sum(a["matched"] for a in answers)
    produced = sum(a["alerts"] for a in answers)
    print(f"{n} events, NDJSON bodies of {BATCH} over {CONNECTIONS} connections, default rules")
    print(f"matched {matched}; alert matches {alerts}; alerts put {produced}")
    print(f"{'':<44}{'wall s':>9}{'CPU s':>9}{'per s':>10}{'CPU µs':>9}")
    print(
        f"{'tocsin: the events, POST /api/v1/events':<44}{wall:>9.2f}{cpu:>9.2f}"
        f"{n / wall:>10.0f}{cpu * 1e6 / n:>9.1f}"
    )
    print(
        f"{'AM 0.25: their alerts, POST /api/v2/alerts':<44}{am_wall:>9.2f}{am_cpu:>9.2f}"
        f"{alerts / am_wall:>10.0f}{am_cpu * 1e6 / alerts:>9.1f}"
    )
    print(f"tocsin/AM for the same traffic: wall {wall / am_wall:.2f}, CPU {cpu / am_cpu:.2f}")
    print(f"tocsin events/s per core (1 / CPU per event): {n / cpu:.0f}")


if __name__ == "__main__":
    main()
