"""Silences under load, tocsin against Alertmanager 0.25, in one run.

Each daemon in turn gets the same config and, before any alert arrives, 1,000
active silences whose matchers are all regular expressions. 900 of them each mute
one instance in two alert groups (``alertname=~"Bench(a|b)"``,
``instance=~"host-<i>-.*"``); 100 mute one whole group
(``alertname=~"Bench<g>"``, ``instance=~"host-.*"``, ``severity=~"warning|critical"``).

* Ingest: 10,000 unique alerts in 1,000 groups (``group_by: [alertname]``),
  POSTed in batches of 100 over 4 connections. Reports alerts/s.
* Drain: the webhook points to a sink in this process (asyncio on its own thread,
  answering 200 as soon as a body is read and parsing JSON only afterwards, so it is
  not the bottleneck); group_wait is 1 s. ``drain_s`` is the time from the moment
  every group's first flush is due (ingest finished + group_wait; a group exists once
  its POST was answered) until the sink has a notification from every group holding
  at least one unsilenced alert (that set is computed here from the labels and
  silences): the daemon's notification backlog. Near zero means notifications keep up
  with their due times; flushes due during ingest are spread over it, so a daemon
  keeping up makes this small whatever the burst. ``first_post_to_all_s`` is the old
  measure (first alert POST to last group notified; includes ingest and group_wait).
  Both daemons must notify the same group keys with the same alerts.
* GET after a silence change: expire one silence (DELETE), then time
  ``GET /api/v2/alerts`` with the whole body read; repeated, median reported. The
  last response's count of suppressed alerts is checked against the expectation.

Run: .venv/bin/python -m benchmarks.silences [--repeat N]
(``--repeat`` measures N times in a row and prints the spread: ratios are noisy on a
shared machine).
"""

from __future__ import annotations

import argparse
import asyncio
import datetime
import json
import re
import statistics
import threading
import time

import httpx
import trio

from benchmarks.harness import Daemon, start
from benchmarks.ingest import post_all
from benchmarks.webhook_sink import SinkConnection, group_key

CONFIG = """
route:
  receiver: sink
  group_by: [alertname]
  group_wait: {group_wait}s
  group_interval: 1h
  repeat_interval: 4h
receivers:
  - name: sink
    webhook_configs:
      - url: {url}
        send_resolved: false
"""

INSTANCES = 10
GROUP_WAIT_S = 1


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
    """Webhook receiver doing minimal work per request, so it is never the bottleneck.

    An asyncio server on its own thread answers 200 as soon as a body is read, keeps the
    raw body and only extracts the group key (to see when every expected group has a
    notification); the JSON is parsed after the measurement, in :meth:`groups`.
    """

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.bodies: list[bytes] = []
        self.keys: set[bytes] = set()
        self.expected = 0
        self.done = threading.Event()
        self.done_at = 0.0
        self.loop = asyncio.new_event_loop()
        self.server = self.loop.run_until_complete(
            self.loop.create_server(lambda: SinkConnection(self.record), "127.0.0.1", 0)
        )
        port = self.server.sockets[0].getsockname()[1]
        self.url = f"http://127.0.0.1:{port}/"
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()

    def record(self, body: bytes) -> None:
        now = time.perf_counter()
        key = group_key(body)
        with self.lock:
            self.bodies.append(body)
            if key is not None:
                self.keys.add(key)
            if len(self.keys) >= self.expected and not self.done.is_set():
                self.done_at = now
                self.done.set()

    def reset(self, expected: int) -> None:
        with self.lock:
            self.bodies = []
            self.keys = set()
            self.expected = expected
            self.done = threading.Event()

    def groups(self) -> dict[str, frozenset[str]]:
        """Group key -> instances notified, over every body received since the reset."""
        with self.lock:
            bodies = list(self.bodies)
        out: dict[str, frozenset[str]] = {}
        for body in bodies:
            msg = json.loads(body)
            fps = frozenset(a["labels"]["instance"] for a in msg["alerts"])
            out[msg["groupKey"]] = out.get(msg["groupKey"], fps) | fps
        return out

    def close(self) -> None:
        # On the loop's own thread: asyncio's server is not thread-safe.
        self.loop.call_soon_threadsafe(self.server.close)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)
        self.loop.close()


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
    t1 = time.perf_counter()
    ingest_s = t1 - t0
    if not sink.done.wait(120):
        raise RuntimeError(f"{d.name}: {len(sink.keys)}/{expected_groups} groups notified")
    # Every group exists once its alerts' POST was answered, so by t1 + group_wait every
    # first flush is due; what is left after that is the daemon's backlog.
    drain_s = sink.done_at - (t1 + GROUP_WAIT_S)
    total_s = sink.done_at - t0
    print(
        f"{d.name}: ingest {ingest_s:.2f} s, drain past group_wait {drain_s:.3f} s, "
        f"first POST to last group {total_s:.2f} s",
        flush=True,
    )
    time.sleep(0.5)  # late duplicates would show up as extra group keys
    groups = sink.groups()

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
        "first_post_to_all_s": total_s,
        "get_after_change_s": statistics.median(times),
    }
    return result, groups, suppressed


METRICS = ("alerts_per_s", "drain_s", "first_post_to_all_s", "get_after_change_s")


def run_daemons(
    args: argparse.Namespace,
    silences: list[list[tuple[str, str]]],
    alerts: list[dict[str, str]],
    expected: set[str],
    expected_suppressed: int,
) -> dict[str, dict[str, float]]:
    """One measurement of each daemon asked for (both unless ``--only``), checked."""
    sink = Sink()
    results: dict[str, dict[str, float]] = {}
    sent: dict[str, dict[str, frozenset[str]]] = {}
    try:
        for kind in (args.only,) if args.only else ("alertmanager", "tocsin"):
            with start(kind, CONFIG.format(url=sink.url, group_wait=GROUP_WAIT_S)) as d:
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
    if not args.only and sent["alertmanager"] != sent["tocsin"]:
        raise RuntimeError("the daemons notified different group keys or alerts")
    return results


def print_results(results: dict[str, dict[str, float]], only: str | None) -> None:
    if only:
        for key, value in results[only].items():
            print(f"{key:<22}{value:>12.3f}")
        return
    am, to = results["alertmanager"], results["tocsin"]
    print(f"{'metric':<22}{'alertmanager':>14}{'tocsin':>12}{'tocsin/AM':>12}")
    for key in METRICS:
        print(f"{key:<22}{am[key]:>14.3f}{to[key]:>12.3f}{to[key] / am[key]:>12.3f}")


def print_spread(runs: list[dict[str, dict[str, float]]], only: str | None) -> None:
    """Min, median and max over the runs of each value (and of each run's ratio)."""
    print(f"\nover {len(runs)} runs: min / median / max")
    columns = [only] if only else ["alertmanager", "tocsin", "tocsin/AM"]
    for key in METRICS:
        for column in columns:
            if column == "tocsin/AM":
                values = [r["tocsin"][key] / r["alertmanager"][key] for r in runs]
            else:
                values = [r[column][key] for r in runs]
            print(
                f"{key:<22}{column:<14}{min(values):>10.3f}"
                f"{statistics.median(values):>10.3f}{max(values):>10.3f}"
            )


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--groups", type=int, default=1_000)
    ap.add_argument("--silences", type=int, default=1_000)
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--only", choices=("alertmanager", "tocsin"), help="run one daemon only")
    ap.add_argument(
        "--repeat", type=int, default=1, help="measure N times; prints each run and the spread"
    )
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
    runs = []
    for _ in range(args.repeat):
        runs.append(run_daemons(args, silences, alerts, expected, expected_suppressed))
        print_results(runs[-1], args.only)
    if len(runs) > 1:
        print_spread(runs, args.only)


if __name__ == "__main__":
    main()
