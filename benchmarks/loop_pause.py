"""The event loop's worst pause under load, and Alertmanager 0.25's API latency under the same.

Workload, per run and per daemon:

1. Load 100,000 alerts in 1,000 groups, POSTed as bodies of about 1 MiB.
2. For ``--seconds``, all at once: two connections re-POST those 1 MiB bodies; the
   config is reloaded (POST /-/reload, alternating between two files so the reload
   does real work) every 2 s; /metrics is scraped every second; silences and the nflog
   are snapshotted every 2 s (``--data.maintenance-interval=2s``, with 200 silences and
   an nflog entry per group: the groups flush to a local webhook sink); and a probe
   client GETs /api/v2/status every 20 ms, one request at a time.

tocsin's figure is its own ``tocsin_event_loop_max_pause_seconds``: the longest any
timer woke late on the event loop, over the whole run (load included), measured inside
the real daemon by a task that sleeps 5 ms in a loop (``daemon/loop_monitor.py``).
Alertmanager has no event loop (goroutines on every core), so the comparable figure is
the probe's request latency: p99 and max, reported for both daemons.

Run: .venv/bin/python -m benchmarks.loop_pause [--runs 3] [--seconds 20]
"""

from __future__ import annotations

import argparse
import datetime as dt
import http.server
import json
import statistics
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import trio

from benchmarks.harness import Daemon, start

ALERTS = 100_000
GROUPS = 1_000
SILENCES = 200

CONFIG = """
route:
  receiver: sink
  group_by: [alertname]
  group_wait: 1s
  group_interval: {interval}
  repeat_interval: 4h
receivers:
  - name: sink
    webhook_configs:
      - url: http://127.0.0.1:{sink}/
"""


class _Sink(http.server.BaseHTTPRequestHandler):
    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


@contextmanager
def webhook_sink() -> Iterator[int]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Sink)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield int(server.server_address[1])
    finally:
        server.shutdown()
        server.server_close()


def alert_bodies() -> list[bytes]:
    """The 100k alerts as JSON arrays of about 1 MiB each."""
    alerts = [
        {
            "labels": {
                "alertname": f"Pause{g}",
                "instance": f"host-{i}.example.org:9100",
                "job": "node",
                "severity": "warning",
            },
            "annotations": {"summary": f"Loop pause benchmark alert {g}/{i}", "runbook": "x" * 40},
        }
        for g in range(GROUPS)
        for i in range(ALERTS // GROUPS)
    ]
    per_body = 1 << 20
    size = len(json.dumps(alerts[:100]).encode()) / 100
    step = int(per_body / size)
    return [json.dumps(alerts[i : i + step]).encode() for i in range(0, len(alerts), step)]


def silence_bodies() -> list[bytes]:
    ends = (dt.datetime.now(dt.UTC) + dt.timedelta(hours=1)).isoformat()
    return [
        json.dumps(
            {
                "matchers": [
                    {"name": "instance", "value": f"nohost-{i}", "isRegex": False, "isEqual": True}
                ],
                "startsAt": dt.datetime.now(dt.UTC).isoformat(),
                "endsAt": ends,
                "createdBy": "bench",
                "comment": "loop pause benchmark",
            }
        ).encode()
        for i in range(SILENCES)
    ]


JSON = {"Content-Type": "application/json"}


async def post_bodies(client: httpx.AsyncClient, url: str, bodies: list[bytes]) -> None:
    for body in bodies:
        r = await client.post(f"{url}/api/v2/alerts", content=body, headers=JSON)
        r.raise_for_status()


async def workload(d: Daemon, config_file: Path, configs: list[str], seconds: float) -> list[float]:
    """Run the workload on ``d``; the probe's request latencies (seconds)."""
    bodies = alert_bodies()
    latencies: list[float] = []
    async with httpx.AsyncClient(timeout=120) as client:
        half = len(bodies) // 2
        async with trio.open_nursery() as nursery:
            nursery.start_soon(post_bodies, client, d.url, bodies[:half])
            nursery.start_soon(post_bodies, client, d.url, bodies[half:])
        for body in silence_bodies():
            r = await client.post(f"{d.url}/api/v2/silences", content=body, headers=JSON)
            r.raise_for_status()

        async def repost() -> None:
            async with httpx.AsyncClient(timeout=120) as own:
                while True:
                    await post_bodies(own, d.url, bodies)

        async def reload() -> None:
            async with httpx.AsyncClient(timeout=120) as own:
                for n in range(1_000_000):
                    await trio.sleep(2)
                    await trio.Path(config_file).write_text(configs[n % 2])
                    r = await own.post(f"{d.url}/-/reload")
                    r.raise_for_status()

        async def scrape() -> None:
            async with httpx.AsyncClient(timeout=120) as own:
                while True:
                    await trio.sleep(1)
                    (await own.get(f"{d.url}/metrics")).raise_for_status()

        async def probe() -> None:
            async with httpx.AsyncClient(timeout=120) as own:
                while True:
                    await trio.sleep(0.02)
                    started = time.perf_counter()
                    (await own.get(f"{d.url}/api/v2/status")).raise_for_status()
                    latencies.append(time.perf_counter() - started)

        async with trio.open_nursery() as nursery:
            for task in (repost, repost, reload, scrape, probe):
                nursery.start_soon(task)
            await trio.sleep(seconds)
            nursery.cancel_scope.cancel()
    return latencies


def max_pause(d: Daemon) -> tuple[float, int]:
    """tocsin's worst loop pause and how many wake-ups came over 100 ms late."""
    text = httpx.get(f"{d.url}/metrics", timeout=60).text
    worst, total, under = 0.0, 0.0, 0.0
    for line in text.splitlines():
        if line.startswith("tocsin_event_loop_max_pause_seconds "):
            worst = float(line.split()[1])
        elif line.startswith("tocsin_event_loop_pause_seconds_count "):
            total = float(line.split()[1])
        elif line.startswith('tocsin_event_loop_pause_seconds_bucket{le="0.1"}'):
            under = float(line.split()[1])
    return worst, int(total - under)


def p99(values: list[float]) -> float:
    return statistics.quantiles(values, n=100, method="inclusive")[98]


def one_run(kind: str, seconds: float) -> dict[str, float]:
    with webhook_sink() as sink:
        configs = [CONFIG.format(sink=sink, interval=i) for i in ("5m", "6m")]
        with start(kind, configs[0], ("--data.maintenance-interval=2s",)) as d:
            config_file = _config_path(d)
            latencies = trio.run(workload, d, config_file, configs, seconds)
            result = {"p99": p99(latencies), "max": max(latencies), "n": len(latencies)}
            if kind == "tocsin":
                worst, over = max_pause(d)
                result |= {"pause": worst, "over_100ms": over}
            return result


def _config_path(d: Daemon) -> Path:
    for arg in Path(f"/proc/{d.proc.pid}/cmdline").read_bytes().split(b"\0"):
        if arg.startswith(b"--config.file="):
            return Path(arg.split(b"=", 1)[1].decode())
    raise RuntimeError("no --config.file")


def decoder_figures(mib: int = 30) -> None:
    """How long a ``mib`` MiB alerts body holds the GIL in each decoder, and tocsin's
    longest slice when it parses the body in steps (``daemon.api.postable``)."""
    import importlib

    from daemon.api.postable import decode_json, parse_alerts_steps
    from daemon.store import tune_gc

    tune_gc()  # the daemon's collector settings: its passes land inside these steps
    bodies = alert_bodies()
    one = json.loads(bodies[0])
    alerts = (one * (mib // 1 + 1))[: int(len(one) * mib)]
    body = json.dumps(alerts).encode()
    print(f"decoding a {len(body) / (1 << 20):.1f} MiB body of {len(alerts)} alerts:")
    started = time.perf_counter()
    json.loads(body)
    print(f"  json.loads (one call, holds the GIL): {time.perf_counter() - started:.3f} s")
    started = time.perf_counter()
    decode_json(body)
    print(f"  tocsin decode_json in one go: {time.perf_counter() - started:.3f} s")
    try:
        msgspec = importlib.import_module("msgspec")
    except ImportError:
        print("  msgspec: not installed (pip install msgspec to compare)")
    else:
        started = time.perf_counter()
        msgspec.json.decode(body)
        print(f"  msgspec.json.decode (one call): {time.perf_counter() - started:.3f} s")
    steps = parse_alerts_steps(body)
    longest = total = 0.0
    while True:
        started = time.perf_counter()
        try:
            next(steps)
        except StopIteration:
            break
        finally:
            took = time.perf_counter() - started
            longest = max(longest, took)
            total += took
    print(
        f"  tocsin parse_alerts_steps: {total:.3f} s in all, longest step {longest * 1000:.1f} ms"
    )


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--seconds", type=float, default=20)
    ap.add_argument("--only", choices=("tocsin", "alertmanager"))
    ap.add_argument("--decoders", action="store_true", help="only time the JSON decoders")
    args = ap.parse_args()
    if args.decoders:
        decoder_figures()
        return
    kinds = [args.only] if args.only else ["tocsin", "alertmanager"]
    runs: dict[str, list[dict[str, float]]] = {k: [] for k in kinds}
    for n in range(args.runs):
        for kind in kinds:
            r = one_run(kind, args.seconds)
            runs[kind].append(r)
            extra = (
                f" loop max pause {r['pause'] * 1000:.1f} ms ({r['over_100ms']} over 100 ms)"
                if kind == "tocsin"
                else ""
            )
            print(
                f"run {n + 1} {kind:<12} status p99 {r['p99'] * 1000:.1f} ms, "
                f"max {r['max'] * 1000:.1f} ms over {int(r['n'])} probes;{extra}",
                flush=True,
            )
    print(f"worst over {args.runs} runs:")
    if "tocsin" in runs:
        print(
            "  tocsin event-loop max pause: "
            f"{max(r['pause'] for r in runs['tocsin']) * 1000:.1f} ms (budget 100 ms)"
        )
    for kind in kinds:
        print(
            f"  {kind} GET /api/v2/status latency under load: "
            f"p99 {max(r['p99'] for r in runs[kind]) * 1000:.1f} ms, "
            f"max {max(r['max'] for r in runs[kind]) * 1000:.1f} ms"
        )


if __name__ == "__main__":
    main()
