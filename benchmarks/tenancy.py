"""Multi-tenancy at scale: 1,000 tenants in one process, and fan-out ingest.

What it measures, and how (read this before quoting a figure):

* **Tenants.** 1,000 tenants, each its own Alertmanager config (5 routes under the
  root, 3 receivers: two webhooks and a Slack), each a full pipeline
  (:class:`daemon.instance.Instance`: store, silences, nflog, inhibitor, dispatcher
  with its route actors, notifiers). Reported: start-up time (parse every config,
  build and start every instance) and the resident memory each idle tenant adds,
  measured in a fresh interpreter (RSS after start minus RSS before, divided by
  1,000). Alongside, in the same run, one real Alertmanager 0.25 process loaded with
  one tenant's config, idle: its RSS is what a tenant costs when each team runs its
  own Alertmanager, the deployment tocsin replaces.
* **Fan-out ingest.** 10,000 alerts in batches of 100, spread over 100 tenants'
  namespaces. Single-tenant: every batch goes to one instance. Fan-out: every batch
  goes to the global instance and each alert also to the instance of the tenant that
  owns its ``namespace`` label (an exact-name lookup, as the static resolver does for
  names without globs). Each batch is a JSON body parsed and validated as
  ``POST /api/v2/alerts`` does (HTTP framing excepted). Throughput counts posted
  alerts per second, from the first
  batch until every route actor has grouped everything (the loop is idle again), per
  CPU second of the process (the ratio uses CPU time: on a shared machine wall time
  mostly measures the neighbours; wall figures are printed too). group_wait is an
  hour so no notification runs.

Honesty notes: until the tenancy branch (``--tenancy.config-file``) is merged, the
instances are built directly in-process, without per-tenant storage on disk and
without HTTP framing; the ingest figures are the handler's cost (parse, validate,
store, route, group) without the HTTP server's.

Run: .venv/bin/python -m benchmarks.tenancy   (--tenants, --alerts, --no-alertmanager)
"""

from __future__ import annotations

import argparse
import gc
import json
import subprocess
import sys
import time
from pathlib import Path

import trio
import trio.testing

from benchmarks.harness import start

S = 1_000_000_000
ANCHOR = 1_700_000_000 * S


def tenant_config(t: str) -> str:
    """One tenant's Alertmanager config: 5 routes under the root, 3 receivers."""
    return f"""
route:
  receiver: {t}-default
  group_by: [alertname, namespace]
  group_wait: 1h
  group_interval: 1h
  repeat_interval: 4h
  routes:
    - matchers: ['severity="critical"']
      receiver: {t}-pager
    - matchers: ['severity="warning"']
      receiver: {t}-chat
    - matchers: ['alertname=~"Kube.*"']
      receiver: {t}-chat
      continue: true
    - matchers: ['namespace="{t}-db"']
      receiver: {t}-pager
    - matchers: ['team="{t}"']
      receiver: {t}-default
receivers:
  - name: {t}-default
    webhook_configs: [{{url: "http://hooks.example.org/{t}"}}]
  - name: {t}-pager
    webhook_configs: [{{url: "http://pager.example.org/{t}", send_resolved: false}}]
  - name: {t}-chat
    slack_configs: [{{api_url: "https://slack.example.org/{t}", channel: "#{t}"}}]
"""


def rss_bytes(pid: str = "self") -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError("no VmRSS")


# --- the child processes (a fresh interpreter each, so RSS is this measurement's) -------


async def _tenants(count: int) -> dict[str, float]:
    import httpx

    from daemon.clock import TrioClock
    from daemon.config.load import load_config_text
    from daemon.instance import Instance
    from daemon.notify.httpclient import HttpClients

    texts = [tenant_config(f"team-{i}") for i in range(count)]
    async with HttpClients(timeout=5.0) as clients, trio.open_nursery() as nursery:
        http: httpx.AsyncClient = clients.default
        clock = TrioClock(ANCHOR)
        gc.collect()
        before = rss_bytes()
        cpu0, t0 = time.process_time(), time.perf_counter()
        instances = []
        for i, text in enumerate(texts):
            instance = Instance(
                load_config_text(text),
                clock=clock,
                http=http,
                clients=clients,
                external_url="http://tocsin:9093",
                retention=120 * 3600 * S,
                tenant=f"team-{i}",
            )
            await nursery.start(instance.run)
            instances.append(instance)
        startup, startup_cpu = time.perf_counter() - t0, time.process_time() - cpu0
        await trio.testing.wait_all_tasks_blocked()
        gc.collect()
        await trio.sleep(0.5)
        after = rss_bytes()
        nursery.cancel_scope.cancel()
    return {
        "tenants": count,
        "startup_s": startup,
        "startup_cpu_s": startup_cpu,
        "kb_per_tenant": (after - before) / count / 1024,
    }


def _batches(total: int, tenants: int, batch: int) -> list[bytes]:
    """POST bodies of ``batch`` alerts each, consecutive alerts in different namespaces
    (a Prometheus batch holds many namespaces' alerts)."""
    alerts = [
        {
            "labels": {
                "alertname": f"Bench{i % 50}",
                "namespace": f"team-{i % tenants}",
                "instance": f"host-{i}.example.org:9100",
                "severity": ("critical", "warning", "info")[i % 3],
                "job": "node",
            },
            "annotations": {"summary": f"Benchmark alert {i}"},
        }
        for i in range(total)
    ]
    return [json.dumps(alerts[i : i + batch]).encode() for i in range(0, total, batch)]


async def _ingest(total: int, tenants: int, fan_out: bool) -> dict[str, float]:
    from daemon.alert import Alert, posted_alerts
    from daemon.api.postable import parse_alerts
    from daemon.clock import TrioClock
    from daemon.config.load import load_config_text
    from daemon.dispatch.actor import PREPARE_DELAY
    from daemon.instance import Instance
    from daemon.notify.httpclient import HttpClients

    async with HttpClients(timeout=5.0) as clients, trio.open_nursery() as nursery:
        clock = TrioClock(ANCHOR)

        async def instance(name: str | None, text: str) -> Instance:
            built = Instance(
                load_config_text(text),
                clock=clock,
                http=clients.default,
                clients=clients,
                external_url="http://tocsin:9093",
                retention=120 * 3600 * S,
                tenant=name,
            )
            await nursery.start(built.run)
            return built

        global_ = await instance(None, tenant_config("global"))
        by_namespace: dict[str, Instance] = {}
        if fan_out:
            for t in range(tenants):
                name = f"team-{t}"
                by_namespace[name] = await instance(name, tenant_config(name))
        batches = _batches(total, tenants, 100)
        await trio.testing.wait_all_tasks_blocked()
        cpu0, t0 = time.process_time(), time.perf_counter()
        for body in batches:
            # What POST /api/v2/alerts does with a body, minus HTTP framing: parse,
            # validate, apply defaults, store.
            now = clock.now()
            alerts, errors, _ = posted_alerts(parse_alerts(body), now, now + 300 * S)
            assert not errors
            global_.put(alerts, now)
            if fan_out:
                # Each owning tenant gets its alerts (alerts are immutable values, so
                # the copies share them; each store merges its own).
                shares: dict[str, list[Alert]] = {}
                for alert in alerts:
                    shares.setdefault(alert.labels["namespace"], []).append(alert)
                for namespace, share in shares.items():
                    by_namespace[namespace].put(share, now)
            # One request per batch: the loop runs other tasks between requests.
            await trio.lowlevel.checkpoint()
        await trio.testing.wait_all_tasks_blocked()
        elapsed = time.perf_counter() - t0
        # The actors hand new alerts to the silence cache PREPARE_DELAY after they
        # arrive: wait that out too, so both runs count that work (idle time costs no
        # CPU; the wall figure stops before it).
        await trio.sleep(PREPARE_DELAY * 4)
        await trio.testing.wait_all_tasks_blocked()
        cpu = time.process_time() - cpu0
        grouped = global_.generation.dispatcher.group_count()
        nursery.cancel_scope.cancel()
    return {
        "alerts_per_s": total / elapsed,
        "alerts_per_cpu_s": total / cpu,
        "global_groups": grouped,
    }


def _child(part: str, args: argparse.Namespace) -> None:
    from daemon.log import configure

    # As the daemon runs by default (info, JSON): debug events cost as much as ingest.
    configure("info", "json", sys.stderr)
    if part == "tenants":
        result = trio.run(_tenants, args.tenants)
    else:
        result = trio.run(_ingest, args.alerts, 100, part == "fanout")
    print(json.dumps(result))


def _run_child(part: str, args: argparse.Namespace) -> dict[str, float]:
    argv = [
        sys.executable,
        "-m",
        "benchmarks.tenancy",
        "--child",
        part,
        "--tenants",
        str(args.tenants),
        "--alerts",
        str(args.alerts),
    ]
    out = subprocess.run(argv, check=True, capture_output=True, text=True, timeout=1800)
    result: dict[str, float] = json.loads(out.stdout.strip().splitlines()[-1])
    return result


def alertmanager_idle_rss_kb() -> float:
    """RSS of one Alertmanager 0.25 process holding one tenant's config, idle."""
    with start("alertmanager", tenant_config("team-0")) as d:
        time.sleep(2)
        return d.rss_bytes() / 1024


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--tenants", type=int, default=1_000)
    ap.add_argument("--alerts", type=int, default=10_000)
    ap.add_argument("--no-alertmanager", action="store_true")
    ap.add_argument("--child", choices=("tenants", "single", "fanout"))
    args = ap.parse_args()
    if args.child:
        _child(args.child, args)
        return
    print("in-process Instances (the tenancy flag is not merged yet): no HTTP, no disk")
    tenants = _run_child("tenants", args)
    print(
        f"{int(tenants['tenants'])} tenants (5 routes, 3 receivers each): "
        f"start-up {tenants['startup_s']:.2f} s ({tenants['startup_cpu_s']:.2f} CPU s), "
        f"{tenants['kb_per_tenant']:.0f} KB per idle tenant (target <= 200 KB)"
    )
    if not args.no_alertmanager:
        am = alertmanager_idle_rss_kb()
        print(
            f"one Alertmanager 0.25 process per tenant, idle: {am:.0f} KB; "
            f"tocsin tenant / Alertmanager process: {tenants['kb_per_tenant'] / am:.3f}"
        )
    single = _run_child("single", args)
    fanout = _run_child("fanout", args)
    # The ratio is on CPU time: on a shared machine wall time measures the neighbours.
    ratio = fanout["alerts_per_cpu_s"] / single["alerts_per_cpu_s"]
    print(
        f"ingest of {args.alerts} alerts: single tenant {single['alerts_per_cpu_s']:.0f} "
        f"alerts per CPU second ({single['alerts_per_s']:.0f}/s wall), fan-out to 100 tenants "
        f"{fanout['alerts_per_cpu_s']:.0f} per CPU second ({fanout['alerts_per_s']:.0f}/s wall), "
        f"ratio {ratio:.2f} (target >= 0.50)"
    )


if __name__ == "__main__":
    main()
