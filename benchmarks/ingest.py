"""Ingest and memory, tocsin against Alertmanager 0.25, in one run.

* Ingest: 10,000 unique alerts in 1,000 groups, POSTed in batches of 100 over 4
  connections. Reports alerts/s and daemon CPU seconds per 10k alerts.
* Memory: RSS growth with 100,000 active alerts, per alert.

group_wait is an hour so that no notification work runs during the measurement:
this measures ingest (parse, validate, merge, store, route, group), nothing else.

Run: .venv/bin/python -m benchmarks.ingest
"""

from __future__ import annotations

import argparse
import json
import time

import trio

from benchmarks.harness import Daemon, start
from benchmarks.rawhttp import post_bodies

CONFIG = """
route:
  receiver: sink
  group_by: [alertname]
  group_wait: 1h
  group_interval: 1h
  repeat_interval: 4h
receivers:
  - name: sink
    webhook_configs:
      - url: http://127.0.0.1:9/
"""


def make_batches(total: int, groups: int, batch: int, tag: str) -> list[bytes]:
    per_group = total // groups
    alerts = [
        {
            "labels": {
                "alertname": f"Bench{g}",
                "instance": f"host-{i}.example.org:9100",
                "job": "node",
                "severity": "warning",
                "run": tag,
            },
            "annotations": {"summary": f"Benchmark alert {g}/{i}"},
        }
        for g in range(groups)
        for i in range(per_group)
    ]
    return [json.dumps(alerts[i : i + batch]).encode() for i in range(0, len(alerts), batch)]


async def post_all(
    url: str, batches: list[bytes], connections: int, headers: dict[str, str] | None = None
) -> None:
    """POST the alert batches over ``connections`` keep-alive connections (the raw
    client: an httpx client was the bottleneck, see :mod:`benchmarks.rawhttp`)."""
    await post_bodies(url, "/api/v2/alerts", batches, connections, headers)


def ingest(d: Daemon, total: int, groups: int, tag: str) -> tuple[float, float]:
    batches = make_batches(total, groups, 100, tag)
    cpu0, t0 = d.cpu_seconds(), time.perf_counter()
    trio.run(post_all, d.url, batches, 4)
    elapsed, cpu = time.perf_counter() - t0, d.cpu_seconds() - cpu0
    return total / elapsed, cpu * 10_000 / total


def memory(d: Daemon, total: int) -> float:
    time.sleep(1)
    base = d.rss_bytes()
    trio.run(post_all, d.url, make_batches(total, total // 10, 100, "mem"), 4)
    time.sleep(2)
    return (d.rss_bytes() - base) / total


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--alerts", type=int, default=10_000)
    ap.add_argument("--memory-alerts", type=int, default=100_000)
    args = ap.parse_args()
    results: dict[str, dict[str, float]] = {}
    for kind in ("alertmanager", "tocsin"):
        with start(kind, CONFIG) as d:
            ingest(d, 1_000, 100, "warmup")
            rate, cpu = ingest(d, args.alerts, args.alerts // 10, "run")
        with start(kind, CONFIG) as d:
            per_alert = memory(d, args.memory_alerts)
        results[kind] = {"alerts_per_s": rate, "cpu_s_per_10k": cpu, "bytes_per_alert": per_alert}
    am, to = results["alertmanager"], results["tocsin"]
    print(f"{'metric':<22}{'alertmanager':>14}{'tocsin':>12}{'tocsin/AM':>12}")
    for key in ("alerts_per_s", "cpu_s_per_10k", "bytes_per_alert"):
        print(f"{key:<22}{am[key]:>14.1f}{to[key]:>12.1f}{to[key] / am[key]:>12.2f}")


if __name__ == "__main__":
    main()
