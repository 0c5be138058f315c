"""Silences under load, tocsin against Alertmanager 0.25, in one run.

Each daemon in turn gets the same config and, before any alert arrives, 1,000
active silences whose matchers are all regular expressions. 900 of them each mute
one instance in two alert groups (``alertname=~"Bench(a|b)"``,
``instance=~"host-<i>-.*"``); 100 mute one whole group
(``alertname=~"Bench<g>"``, ``instance=~"host-.*"``, ``severity=~"warning|critical"``).

* Ingest: 10,000 unique alerts in 1,000 groups (``group_by: [alertname]``),
  POSTed in batches of 100 over 4 connections. Reports alerts/s.
* Drain: the webhook points to a threaded HTTP sink in this process that answers
  200; group_wait is 1 s. Time from the first alert POST until the sink has a
  notification from every group holding at least one unsilenced alert (that set is
  computed here from the labels and silences). Both daemons must notify the same
  group keys with the same alerts.
* GET after a silence change: expire one silence (DELETE), then time
  ``GET /api/v2/alerts`` with the whole body read; repeated, median reported. The
  last response's count of suppressed alerts is checked against the expectation.

Run: .venv/bin/python -m benchmarks.silences
"""

from __future__ import annotations

import argparse
import datetime
import json
import re
import statistics
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx
import trio

from benchmarks.harness import Daemon, start
from benchmarks.ingest import post_all

CONFIG = """
route:
  receiver: sink
  group_by: [alertname]
  group_wait: 1s
  group_interval: 1h
  repeat_interval: 4h
receivers:
  - name: sink
    webhook_configs:
      - url: {url}
        send_resolved: false
"""

INSTANCES = 10


def labels_of(group: int, instance: int) -> dict[str, str]:
    return {
        "alertname": f"Bench{group}",
        "instance": f"host-{instance}-{group}.example.org:9100",
        "job": "node",
        "severity": "warning",
    }


def make_alerts(groups: int) -> list[dict[str, str]]:
    return [labels_of(g, i) for g in range(groups) for i in range(INSTANCES)]


def make_silences(count: int, groups: int) -> list[list[tuple[str, str]]]:
    """Regex matchers ``(name, pattern)`` of each silence; each mutes a small slice."""
    out: list[list[tuple[str, str]]] = []
    for s in range(count):
        if s % 10 == 0:
            # A whole group, so some groups never notify.
            g = (s * 3) % groups
            out.append(
                [
                    ("alertname", f"Bench{g}"),
                    ("instance", "host-.*"),
                    ("severity", "warning|critical"),
                ]
            )
        else:
            a, b = s % groups, (s * 7 + 3) % groups
            out.append([("alertname", f"Bench({a}|{b})"), ("instance", f"host-{s % 10}-.*")])
    return out


def muted_by(silences: list[list[tuple[str, str]]], alerts: list[dict[str, str]]) -> list[set[int]]:
    """Indices of the alerts each silence mutes (all its matchers are regexes)."""
    by_name: dict[str, list[int]] = {}
    for k, lb in enumerate(alerts):
        by_name.setdefault(lb["alertname"], []).append(k)
    out: list[set[int]] = []
    for matchers in silences:
        # Alertmanager anchors regex matchers at both ends, as fullmatch does.
        compiled = {n: re.compile(p) for n, p in matchers}
        name_re = compiled.pop("alertname")
        out.append(
            {
                k
                for name, ks in by_name.items()
                if name_re.fullmatch(name)
                for k in ks
                if all(r.fullmatch(alerts[k].get(n, "")) for n, r in compiled.items())
            }
        )
    return out


def rfc3339(t: float) -> str:
    return datetime.datetime.fromtimestamp(t, datetime.UTC).isoformat().replace("+00:00", "Z")


async def create_silences(url: str, silences: list[list[tuple[str, str]]]) -> list[str]:
    now = time.time()
    bodies = [
        json.dumps(
            {
                "matchers": [
                    {"name": n, "value": v, "isRegex": True, "isEqual": True} for n, v in ms
                ],
                "startsAt": rfc3339(now - 60),
                "endsAt": rfc3339(now + 3600),
                "createdBy": "bench",
                "comment": f"benchmark silence {k}",
            }
        ).encode()
        for k, ms in enumerate(silences)
    ]
    ids: list[str] = [""] * len(bodies)
    send, receive = trio.open_memory_channel[int](len(bodies))
    for k in range(len(bodies)):
        send.send_nowait(k)
    send.close()

    async def worker() -> None:
        async with httpx.AsyncClient(limits=httpx.Limits(max_connections=1), timeout=60) as c:
            async for k in receive:
                r = await c.post(
                    f"{url}/api/v2/silences",
                    content=bodies[k],
                    headers={"Content-Type": "application/json"},
                )
                r.raise_for_status()
                ids[k] = r.json()["silenceID"]

    async with trio.open_nursery() as nursery:
        for _ in range(4):
            nursery.start_soon(worker)
    return ids


class Sink:
    """Webhook receiver: records each group key's alerts and when all expected arrived."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.groups: dict[str, frozenset[str]] = {}
        self.expected = 0
        self.done = threading.Event()
        self.done_at = 0.0
        sink = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()
                msg = json.loads(body)
                fps = frozenset(a["labels"]["instance"] for a in msg["alerts"])
                with sink.lock:
                    sink.groups[msg["groupKey"]] = sink.groups.get(msg["groupKey"], fps) | fps
                    if len(sink.groups) >= sink.expected and not sink.done.is_set():
                        sink.done_at = time.perf_counter()
                        sink.done.set()

            def log_message(self, format: str, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def reset(self, expected: int) -> None:
        with self.lock:
            self.groups = {}
            self.expected = expected
            self.done = threading.Event()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def run_one(
    d: Daemon,
    sink: Sink,
    silences: list[list[tuple[str, str]]],
    alerts: list[dict[str, str]],
    expected_groups: int,
    reps: int,
) -> tuple[dict[str, float], dict[str, frozenset[str]], int]:
    t = time.perf_counter()
    ids = trio.run(create_silences, d.url, silences)
    print(f"{d.name}: {len(ids)} silences in {time.perf_counter() - t:.1f} s", flush=True)
    sink.reset(expected_groups)
    bodies = [
        json.dumps([{"labels": lb} for lb in alerts[i : i + 100]]).encode()
        for i in range(0, len(alerts), 100)
    ]
    t0 = time.perf_counter()
    trio.run(post_all, d.url, bodies, 4)
    ingest_s = time.perf_counter() - t0
    if not sink.done.wait(120):
        raise RuntimeError(f"{d.name}: {len(sink.groups)}/{expected_groups} groups notified")
    drain_s = sink.done_at - t0
    print(f"{d.name}: ingest {ingest_s:.2f} s, drain {drain_s:.2f} s", flush=True)
    time.sleep(0.5)  # late duplicates would show up as extra group keys
    with sink.lock:
        groups = dict(sink.groups)

    # Expire whole-group silences, so each change unmutes a group and the
    # suppressed count after the last one is known.
    changed = [k for k in range(len(silences)) if k % 10 == 0][:reps]
    times: list[float] = []
    suppressed = -1
    with httpx.Client(timeout=120) as c:
        for k in changed:
            c.delete(f"{d.url}/api/v2/silence/{ids[k]}").raise_for_status()
            t = time.perf_counter()
            r = c.get(f"{d.url}/api/v2/alerts")
            body = r.read()
            times.append(time.perf_counter() - t)
            print(f"{d.name}: GET after change {times[-1]:.3f} s", flush=True)
            r.raise_for_status()
            suppressed = sum(1 for a in json.loads(body) if a["status"]["state"] == "suppressed")
    result = {
        "alerts_per_s": len(alerts) / ingest_s,
        "drain_s": drain_s,
        "get_after_change_s": statistics.median(times),
    }
    return result, groups, suppressed


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--groups", type=int, default=1_000)
    ap.add_argument("--silences", type=int, default=1_000)
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--only", choices=("alertmanager", "tocsin"), help="run one daemon only")
    args = ap.parse_args()
    silences = make_silences(args.silences, args.groups)
    alerts = make_alerts(args.groups)
    muted = muted_by(silences, alerts)
    muted_all = set().union(*muted)
    expected = {lb["alertname"] for k, lb in enumerate(alerts) if k not in muted_all}
    expired = set(range(0, 10 * args.reps, 10))
    expected_suppressed = len(set().union(*(m for k, m in enumerate(muted) if k not in expired)))
    print(
        f"{len(alerts)} alerts, {len(silences)} silences, {len(muted_all)} muted, "
        f"{len(expected)} of {args.groups} groups to notify",
        flush=True,
    )

    sink = Sink()
    results: dict[str, dict[str, float]] = {}
    sent: dict[str, dict[str, frozenset[str]]] = {}
    try:
        for kind in (args.only,) if args.only else ("alertmanager", "tocsin"):
            with start(kind, CONFIG.format(url=sink.url)) as d:
                results[kind], sent[kind], suppressed = run_one(
                    d, sink, silences, alerts, len(expected), args.reps
                )
            if suppressed != expected_suppressed:
                raise RuntimeError(
                    f"{kind}: {suppressed} suppressed after changes, want {expected_suppressed}"
                )
            names = {key.split('alertname="')[1].split('"')[0] for key in sent[kind]}
            if names != expected:
                raise RuntimeError(f"{kind}: notified groups differ from the expected set")
    finally:
        sink.close()
    if args.only:
        for key, value in results[args.only].items():
            print(f"{key:<22}{value:>12.3f}")
        return
    if sent["alertmanager"] != sent["tocsin"]:
        raise RuntimeError("the daemons notified different group keys or alerts")

    am, to = results["alertmanager"], results["tocsin"]
    print(f"{'metric':<22}{'alertmanager':>14}{'tocsin':>12}{'tocsin/AM':>12}")
    for key in ("alerts_per_s", "drain_s", "get_after_change_s"):
        print(f"{key:<22}{am[key]:>14.3f}{to[key]:>12.3f}{to[key] / am[key]:>12.3f}")


if __name__ == "__main__":
    main()
