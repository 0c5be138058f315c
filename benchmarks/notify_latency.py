"""Notification latency, paced, with ``group_wait: 0``: tocsin with the notification
history on, tocsin with it off, and Alertmanager 0.25, in one run.

Each round posts ``--alerts`` alerts, one every ``--pace`` seconds, each a new group
(a new alertname), and times each from just before its POST until its webhook arrives
at a sink, which answers HTTP/1.0 (so every notification opens a connection). Rounds
alternate between the three daemons, so a change in machine load hits all of them
alike. Prints p50/p99/max per daemon and the ratios history-on / history-off and
tocsin / Alertmanager. ``--floor`` adds a fourth server to the rounds, the least a trio
program can do per alert (:mod:`benchmarks.notify_floor`), as a floor for tocsin's
figures on this machine.

The sink runs in a process of its own (``--sink process``, the default) and stamps each
webhook on the system's monotonic clock when its request is in. ``--sink thread`` is the
sink of sessions 5-11: a thread per connection in this process, which shares this
process's interpreter lock with the client waiting for the POST's answer. A daemon that
notifies before it answers (tocsin) then had its webhook stamped only after the client
had taken in the answer; one that answers first (Alertmanager) did not.

``--sink-keep-alive``: the sink answers HTTP/1.1 and keeps its connections, as most
receivers do, so both daemons (and the floor) send each webhook on the connection they
kept. Without it every notification opens a connection, and on this machine the sink's
accept then runs on the connecting daemon's CPU inside the connect call (the kernel
wakes it there): ~0.25 ms of every sample for every daemon.

    .venv/bin/python -m benchmarks.notify_latency --rounds 3 [--repeat N] [--floor]

One run's p99 is the sixth-worst of 600 samples, and which side of Alertmanager's it
lands on moves with the machine from run to run: ``--repeat N`` makes N whole runs and
ends with every run's p99 ratios, their median and range, and how many runs met the
target.
"""

from __future__ import annotations

import argparse
import asyncio
import http.server
import json
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

import httpx

from benchmarks.harness import free_port, start
from benchmarks.notify_floor import start_floor
from benchmarks.webhook_sink import SinkConnection, reap

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
def sink_server(keep_alive: bool = False) -> Iterator[tuple[Sink, int]]:
    sink = Sink()

    class Handler(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1" if keep_alive else "HTTP/1.0"

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


class ProcessSink:
    """The sink as a child process (``--sink-child``), reporting each group's first
    arrival into a :class:`Sink` from a reader thread."""

    def __init__(self, sink: Sink, keep_alive: bool = False) -> None:
        keep = ["--sink-keep-alive"] if keep_alive else []
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "benchmarks.notify_latency", "--sink-child", *keep],
            stdout=subprocess.PIPE,
            text=True,
            bufsize=1,
        )
        assert self.proc.stdout is not None
        self._stdout = self.proc.stdout
        first = self._stdout.readline().split()
        if first[:1] != ["port"]:
            self.proc.kill()
            self.proc.wait(5)
            raise RuntimeError(f"latency sink did not start: {first}")
        self.port = int(first[1])
        self._sink = sink
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        for line in self._stdout:
            name, _, at = line.rstrip("\n").rpartition("\t")
            with self._sink.got:
                self._sink.arrived.setdefault(name, float(at))
                self._sink.got.notify_all()

    def close(self) -> None:
        self.proc.terminate()
        reap(self.proc, self._reader, self._stdout)


@contextmanager
def process_sink(keep_alive: bool = False) -> Iterator[tuple[Sink, int]]:
    sink = Sink()
    child = ProcessSink(sink, keep_alive)
    try:
        yield sink, child.port
    finally:
        child.close()


def _stamp(body: bytes) -> None:
    """The child's record: ``<alertname>\t<monotonic>`` on stdout, stamped on arrival."""
    now = time.monotonic()
    name = json.loads(body)["groupLabels"]["alertname"]
    sys.stdout.write(f"{name}\t{now!r}\n")
    sys.stdout.flush()


def sink_child(keep_alive: bool) -> None:
    """The child's side: print ``port N``, then ``<alertname>\t<monotonic>`` per webhook."""
    loop = asyncio.new_event_loop()
    server = loop.run_until_complete(
        loop.create_server(
            lambda: SinkConnection(_stamp, close_after=not keep_alive),
            "127.0.0.1",
            0,
            backlog=128,
        )
    )
    sys.stdout.write(f"port {server.sockets[0].getsockname()[1]}\n")
    sys.stdout.flush()
    try:
        loop.run_forever()
    except KeyboardInterrupt:
        pass


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
    parser.add_argument(
        "--sink",
        choices=("process", "thread"),
        default="process",
        help="where the webhook sink runs (see the module docstring)",
    )
    parser.add_argument(
        "--floor",
        action="store_true",
        help="also run the least a trio program can do per alert (benchmarks.notify_floor)",
    )
    parser.add_argument(
        "--repeat",
        type=int,
        default=1,
        help="whole runs, each with its own table; then the p99 ratios of every run",
    )
    parser.add_argument(
        "--sink-keep-alive",
        action="store_true",
        help="the sink answers HTTP/1.1 and keeps the connection (see the module docstring)",
    )
    parser.add_argument("--sink-child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.sink_child:
        sink_child(args.sink_keep_alive)
        return
    runs = [measure(args, run) for run in range(args.repeat)]
    if len(runs) > 1:
        summarize(runs, args.floor)


def measure(args: argparse.Namespace, run: int) -> dict[str, float]:
    """One run: ``args.rounds`` rounds of every daemon; prints its table and returns
    each daemon's p99 (seconds)."""
    kinds = {
        "tocsin, history on": ("tocsin", ()),
        "tocsin, history off": ("tocsin", ("--history.retention=0s",)),
        "alertmanager": ("alertmanager", ()),
    }
    if args.floor:
        kinds["trio floor"] = ("floor", ())
    samples: dict[str, list[float]] = {k: [] for k in kinds}
    if args.repeat > 1:
        print(f"run {run + 1} of {args.repeat}", flush=True)
    keep = args.sink_keep_alive
    with process_sink(keep) if args.sink == "process" else sink_server(keep) as (sink, port):
        config = CONFIG.format(port=port)
        for rnd in range(args.rounds):
            # rotate the order each round so no daemon always runs first
            order = list(kinds)[rnd % len(kinds) :] + list(kinds)[: rnd % len(kinds)]
            for label in order:
                kind, extra = kinds[label]
                with start_floor(port) if kind == "floor" else start(kind, config, extra) as daemon:
                    time.sleep(1.0)
                    got = one_round(
                        daemon.url,
                        sink,
                        f"x{run}-r{rnd}-{kind}-{len(extra)}",
                        args.alerts,
                        args.pace,
                    )
                samples[label] += got
                print(
                    f"round {rnd + 1} {label:20} p50 {statistics.median(got) * 1e3:7.2f} ms"
                    f"  p99 {quantile(got, 0.99) * 1e3:7.2f} ms",
                    flush=True,
                )
    print()
    print(
        f"{'daemon':22} {'p50 ms':>8} {'p99 ms':>8} {'max ms':>8}"
        f"  ({args.rounds} x {args.alerts} groups, sink: {args.sink}"
        f"{', keep-alive' if keep else ''})"
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
    if args.floor:
        floor = p99["trio floor"]
        print(f"p99 trio floor / Alertmanager: {floor / am:.2f}")
        print(f"p99 tocsin (history on) / trio floor: {on / floor:.2f}")
    print(flush=True)
    return p99


def summarize(runs: list[dict[str, float]], floor: bool) -> None:
    """The p99 ratios of every run, their median, and how many runs met the target."""
    pairs = [("tocsin, history on", "alertmanager"), ("tocsin, history on", "tocsin, history off")]
    if floor:
        pairs += [("trio floor", "alertmanager"), ("tocsin, history on", "trio floor")]
    print(f"p99 ratios over {len(runs)} runs")
    for top, bottom in pairs:
        ratios = [run[top] / run[bottom] for run in runs]
        print(
            f"{top + ' / ' + bottom:44} median {statistics.median(ratios):.2f}"
            f"  ({min(ratios):.2f}-{max(ratios):.2f})  each: "
            + ", ".join(f"{r:.2f}" for r in ratios)
        )
    met = sum(run["tocsin, history on"] <= run["alertmanager"] for run in runs)
    print(f"runs with tocsin's p99 at most Alertmanager's: {met} of {len(runs)}")


if __name__ == "__main__":
    main()
