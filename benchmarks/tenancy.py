"""Multi-tenancy at scale: 1,000 tenants in one process, and fan-out ingest.

What it measures, and how (read this before quoting a figure):

* **Tenants.** The daemon with ``--tenancy.config-file`` and 1,000 tenants, each with
  its own Alertmanager config (5 routes under the root, 3 receivers: two webhooks and a
  Slack) posted through Mimir's config API (``POST /api/v1/alerts``), so each is a full
  pipeline with its own storage folder. The daemon is then restarted on the same
  storage: start-up is the time until ``GET /api/v1/tenants`` lists every tenant with
  its own config, and memory per idle tenant is the daemon's RSS 3 s later minus the
  RSS of the same daemon with no tenants, divided by 1,000. Alongside, one real
  Alertmanager 0.25 process loaded with one tenant's config, idle: its RSS is what a
  tenant costs when each team runs its own Alertmanager, the deployment tocsin
  replaces.
* **Fan-out ingest.** 10,000 alerts POSTed to ``/api/v2/alerts`` in batches of 100 over
  4 connections, consecutive alerts in different namespaces (a Prometheus batch holds
  many namespaces' alerts). Single-tenant: tocsin without tenancy. Fan-out: tocsin with
  100 tenants, each owning one namespace (their config is the fallback file, the same
  5 routes and 3 receivers), posted with an ingest token to the global pipeline, which
  stores every alert and copies it to its tenant. Throughput per CPU second of the
  daemon (from the first POST until the daemon is quiet again, so grouping after the
  replies counts) and per wall second. group_wait is an hour so no notification runs.
  The ratio that matters is on CPU time: on a shared machine wall time mostly measures
  the neighbours.

``--in-process`` measures the same without the HTTP server and without disk, by building
:class:`daemon.instance.Instance` objects in one interpreter: the pipeline's own cost.

Run: .venv/bin/python -m benchmarks.tenancy   (--tenants, --alerts, --no-alertmanager,
--in-process)
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import hashlib
import json
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import trio
import trio.testing

from benchmarks.harness import ROOT, Daemon, _stop, free_port, start
from benchmarks.ingest import post_all

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


def _batches(total: int, tenants: int, batch: int, tag: str = "run") -> list[bytes]:
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
                "run": tag,
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


# --- the real daemon (--tenancy.config-file) ---------------------------------------------

ADMIN, INGEST = "bench-admin-token", "bench-ingest-token"


def tenancy_file(tenants: int, fallback: str = "") -> str:
    def sha(token: str) -> str:
        return hashlib.sha256(token.encode()).hexdigest()

    lines = [
        f"admins: [{{name: ops, token_sha256: {sha(ADMIN)}}}]",
        f"ingest: [{{name: prom, token_sha256: {sha(INGEST)}}}]",
    ]
    if fallback:
        lines.append(f"fallback_config_file: {fallback}")
    lines.append("tenants:" if tenants else "tenants: {}")
    lines += [f"  team-{i}: {{namespaces: [team-{i}]}}" for i in range(tenants)]
    return "\n".join(lines) + "\n"


@contextlib.contextmanager
def tocsin(folder: Path, *extra: str) -> Iterator[Daemon]:
    """tocsin on ``folder``'s config.yml, data/ and tenancy.yml (kept between runs)."""
    port = free_port()
    argv = [
        sys.executable,
        "-m",
        "daemon",
        f"--config.file={folder}/config.yml",
        f"--storage.path={folder}/data",
        f"--web.listen-address=127.0.0.1:{port}",
        "--cluster.listen-address=",
        "--log.level=warn",
        *extra,
    ]
    proc = subprocess.Popen(argv, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
    daemon = Daemon("tocsin", proc, f"http://127.0.0.1:{port}")
    try:
        yield daemon
    finally:
        _stop(proc)


def wait_ready(d: Daemon, timeout: float = 600) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{d.url}/-/ready", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        if d.proc.poll() is not None:
            raise RuntimeError("tocsin exited")
        time.sleep(0.05)
    raise RuntimeError("tocsin did not become ready")


def tenants_running(d: Daemon) -> list[dict[str, object]]:
    r = httpx.get(
        f"{d.url}/api/v1/tenants", headers={"Authorization": f"Bearer {ADMIN}"}, timeout=30
    )
    r.raise_for_status()
    listed: list[dict[str, object]] = r.json()
    return listed


def daemon_tenants(count: int) -> dict[str, float]:
    """RSS per idle tenant and start-up time of the real daemon with ``count`` tenants,
    each with its own config posted through the config API."""
    with tempfile.TemporaryDirectory(prefix="bench-tenancy-") as tmp:
        folder = Path(tmp)
        (folder / "config.yml").write_text(tenant_config("global"))
        (folder / "tenancy.yml").write_text(tenancy_file(0))
        flag = f"--tenancy.config-file={folder}/tenancy.yml"
        with tocsin(folder, flag) as d:
            wait_ready(d)
            time.sleep(2)
            base = d.rss_bytes()
        (folder / "tenancy.yml").write_text(tenancy_file(count))
        with tocsin(folder, flag) as d:
            wait_ready(d)
            with httpx.Client(base_url=d.url, timeout=60) as client:
                for i in range(count):
                    doc = "alertmanager_config: |\n" + "".join(
                        f"  {line}\n" for line in tenant_config(f"team-{i}").splitlines()
                    )
                    r = client.post(
                        "/api/v1/alerts",
                        content=doc,
                        headers={
                            "Authorization": f"Bearer {ADMIN}",
                            "X-Scope-OrgID": f"team-{i}",
                            "Content-Type": "application/yaml",
                        },
                    )
                    r.raise_for_status()
        # A restart loads every stored tenant config: that is the start-up measured.
        with tocsin(folder, flag) as d:
            t0 = time.perf_counter()
            wait_ready(d)
            ready = time.perf_counter() - t0
            while True:
                listed = tenants_running(d)
                if sum(1 for t in listed if t.get("config") == "custom") >= count:
                    break
                time.sleep(0.1)
            startup = time.perf_counter() - t0
            cpu = d.cpu_seconds()
            time.sleep(3)
            rss = d.rss_bytes()
    return {
        "tenants": count,
        "ready_s": ready,
        "startup_s": startup,
        "startup_cpu_s": cpu,
        "kb_per_tenant": (rss - base) / count / 1024,
    }


def daemon_ingest(total: int, tenants: int, fan_out: bool) -> dict[str, float]:
    """POST ``total`` alerts over HTTP: to tocsin without tenancy, or to the global
    pipeline of tocsin with ``tenants`` tenants that fan them out."""
    with tempfile.TemporaryDirectory(prefix="bench-tenancy-") as tmp:
        folder = Path(tmp)
        (folder / "config.yml").write_text(tenant_config("global"))
        (folder / "tenant.yml").write_text(tenant_config("tenant"))
        extra: tuple[str, ...] = ()
        if fan_out:
            (folder / "tenancy.yml").write_text(tenancy_file(tenants, "tenant.yml"))
            extra = (f"--tenancy.config-file={folder}/tenancy.yml",)
        with tocsin(folder, *extra) as d:
            wait_ready(d)
            if fan_out:
                while len(tenants_running(d)) < tenants:
                    time.sleep(0.1)
            headers = {"Authorization": f"Bearer {INGEST}"} if fan_out else {}
            warm = _batches(1_000, tenants, 100, tag="warm")
            trio.run(post_all, d.url, warm, 4, headers)
            bodies = _batches(total, tenants, 100)
            cpu0, t0 = d.cpu_seconds(), time.perf_counter()
            trio.run(post_all, d.url, bodies, 4, headers)
            elapsed = time.perf_counter() - t0
            # Grouping runs after the 200: wait for the daemon to go quiet.
            while True:
                mark = d.cpu_seconds()
                time.sleep(0.5)
                if d.cpu_seconds() - mark < 0.02:
                    break
            cpu = mark - cpu0
    return {"alerts_per_s": total / elapsed, "alerts_per_cpu_s": total / cpu}


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
    ap.add_argument("--in-process", action="store_true", help="build Instances in-process instead")
    ap.add_argument("--child", choices=("tenants", "single", "fanout"))
    args = ap.parse_args()
    if args.child:
        _child(args.child, args)
        return
    if args.in_process:
        print("in-process Instances: no HTTP server, no disk")
        tenants = _run_child("tenants", args)
        single = _run_child("single", args)
        fanout = _run_child("fanout", args)
    else:
        print("the daemon: --tenancy.config-file, configs through the config API, HTTP ingest")
        tenants = daemon_tenants(args.tenants)
        single = daemon_ingest(args.alerts, 100, fan_out=False)
        fanout = daemon_ingest(args.alerts, 100, fan_out=True)
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
    # The ratio is on CPU time: on a shared machine wall time measures the neighbours.
    ratio = fanout["alerts_per_cpu_s"] / single["alerts_per_cpu_s"]
    wall = fanout["alerts_per_s"] / single["alerts_per_s"]
    print(
        f"ingest of {args.alerts} alerts: single tenant {single['alerts_per_cpu_s']:.0f} "
        f"alerts per CPU second ({single['alerts_per_s']:.0f}/s wall), fan-out to 100 tenants "
        f"{fanout['alerts_per_cpu_s']:.0f} per CPU second ({fanout['alerts_per_s']:.0f}/s wall), "
        f"ratio {ratio:.2f} on CPU, {wall:.2f} on wall time (target >= 0.50)"
    )


if __name__ == "__main__":
    main()
