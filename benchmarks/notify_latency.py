"""Notification latency, paced, with ``group_wait: 0``: tocsin with the notification
history on, tocsin with it off, and Alertmanager 0.25, in one run.

Each round posts ``--alerts`` alerts, one every ``--pace`` seconds, each a new group
(a new alertname), and times each from just before its POST until its webhook arrives
at a sink in this process. Rounds alternate between the three daemons, so a change in
machine load hits all of them alike. Prints p50/p99/max per daemon and the ratios
history-on / history-off and tocsin / Alertmanager.

    .venv/bin/python -m benchmarks.notify_latency --rounds 3
"""

from __future__ import annotations

import argparse
import http.server
import json
import statistics
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

import httpx

from benchmarks.harness import free_port, start

CONFIG = """
route:
  receiver: sink
  group_by: [alertname]
  group_wait: 0s
  group_interval: 5m
  repeat_interval: 4h
receivers:
  - name: sink
    webhook_configs:
      - url: http://127.0.0.1:{port}/
"""


class Sink:
    """Records when each group's first webhook arrived (monotonic seconds)."""

    def __init__(self) -> None:
        self.arrived: dict[str, float] = {}
        self.lock = threading.Lock()
        self.got = threading.Condition(self.lock)


@contextmanager
def sink_server() -> Iterator[tuple[Sink, int]]:
    sink = Sink()

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            now = time.monotonic()
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            self.send_response(200)
            self.send_header("Content-Length", "0")
            self.end_headers()
            with sink.got:
                sink.arrived.setdefault(body["groupLabels"]["alertname"], now)
                sink.got.notify_all()

        def log_message(self, *args: object) -> None:
            pass

    class Server(http.server.ThreadingHTTPServer):
        # socketserver's default backlog of 5: a burst of connects (each notification
        # opens one, as this HTTP/1.0 sink closes them) could overflow it, and a
        # dropped SYN is retried after 1 s, a stall that says nothing about the daemon.
        request_queue_size = 128

    port = free_port()
    server = Server(("127.0.0.1", port), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield sink, port
    finally:
        server.shutdown()
        server.server_close()


def one_round(url: str, sink: Sink, prefix: str, count: int, pace: float) -> list[float]:
    """Latencies (s) of ``count`` paced single-alert groups."""
    posted: dict[str, float] = {}
    with httpx.Client(base_url=url, timeout=10) as client:
        # one warm-up group, so connection set-up is not in the first sample
        client.post("/api/v2/alerts", json=[{"labels": {"alertname": f"{prefix}-warm"}}])
        next_at = time.monotonic() + 0.5
        for i in range(count):
            name = f"{prefix}-{i}"
            time.sleep(max(0.0, next_at - time.monotonic()))
            posted[name] = time.monotonic()
            r = client.post("/api/v2/alerts", json=[{"labels": {"alertname": name}}])
            r.raise_for_status()
            next_at += pace
    deadline = time.monotonic() + 30
    with sink.got:
        while not all(n in sink.arrived for n in posted) and time.monotonic() < deadline:
            sink.got.wait(0.5)
        missing = [n for n in posted if n not in sink.arrived]
        if missing:
            raise RuntimeError(f"{len(missing)} groups never notified ({prefix})")
        return [sink.arrived[n] - posted[n] for n in posted]


def quantile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--alerts", type=int, default=200, help="groups per round")
    parser.add_argument("--pace", type=float, default=0.02, help="seconds between posts")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    kinds = {
        "tocsin, history on": ("tocsin", ()),
        "tocsin, history off": ("tocsin", ("--history.retention=0s",)),
        "alertmanager": ("alertmanager", ()),
    }
    samples: dict[str, list[float]] = {k: [] for k in kinds}
    with sink_server() as (sink, port):
        config = CONFIG.format(port=port)
        for rnd in range(args.rounds):
            # rotate the order each round so no daemon always runs first
            order = list(kinds)[rnd % 3 :] + list(kinds)[: rnd % 3]
            for label in order:
                kind, extra = kinds[label]
                with start(kind, config, extra) as daemon:
                    time.sleep(1.0)
                    got = one_round(
                        daemon.url, sink, f"r{rnd}-{kind}-{len(extra)}", args.alerts, args.pace
                    )
                samples[label] += got
                print(
                    f"round {rnd + 1} {label:20} p50 {statistics.median(got) * 1e3:7.2f} ms"
                    f"  p99 {quantile(got, 0.99) * 1e3:7.2f} ms",
                    flush=True,
                )
    print()
    print(
        f"{'daemon':22} {'p50 ms':>8} {'p99 ms':>8} {'max ms':>8}  ({args.rounds} x {args.alerts} groups)"
    )
    p99 = {}
    for label, got in samples.items():
        p99[label] = quantile(got, 0.99)
        print(
            f"{label:22} {statistics.median(got) * 1e3:8.2f} {p99[label] * 1e3:8.2f}"
            f" {max(got) * 1e3:8.2f}"
        )
    on, off, am = p99["tocsin, history on"], p99["tocsin, history off"], p99["alertmanager"]
    print()
    print(f"p99 history on / history off: {on / off:.2f}")
    print(f"p99 tocsin (history on) / Alertmanager: {on / am:.2f}")


if __name__ == "__main__":
    main()
