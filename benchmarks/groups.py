"""``GET /api/v2/alerts/groups`` with 100,000 alerts loaded: tocsin against Alertmanager 0.25.

Per run and per daemon: load 100,000 alerts in 1,000 groups (the bodies of
``benchmarks.loop_pause``, about 1 MiB each, on two connections), wait until every group
shows in the listing (the first complete listing is timed too: it encodes every alert,
while later ones reuse what did not change, as a dashboard polling the endpoint sees),
then time ``--requests`` GETs one after another, from sending the request to the last
byte of the answer. Each answer is checked to hold every group and
every alert, so a daemon that answers less is not counted as faster. Runs alternate
between the daemons, so a change in machine load hits both; the ratio is taken per run
from the medians.

Run: .venv/bin/python -m benchmarks.groups [--runs 3] [--requests 5]
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

import httpx
import trio

from benchmarks.harness import Daemon, start
from benchmarks.ingest import CONFIG
from benchmarks.loop_pause import ALERTS, GROUPS, alert_bodies, post_bodies


async def load(d: Daemon, bodies: list[bytes]) -> None:
    async with httpx.AsyncClient(timeout=120) as client:
        half = len(bodies) // 2
        async with trio.open_nursery() as nursery:
            nursery.start_soon(post_bodies, client, d.url, bodies[:half])
            nursery.start_soon(post_bodies, client, d.url, bodies[half:])


def fetch_groups(client: httpx.Client, d: Daemon) -> tuple[float, int, int]:
    """One GET: seconds until the whole answer arrived, groups and alerts in it."""
    started = time.perf_counter()
    r = client.get(f"{d.url}/api/v2/alerts/groups")
    took = time.perf_counter() - started
    r.raise_for_status()
    groups = json.loads(r.content)
    return took, len(groups), sum(len(g["alerts"]) for g in groups)


def one_run(kind: str, bodies: list[bytes], requests: int) -> tuple[float, float]:
    """The first complete GET's time of ``kind`` and the median of the next ``requests``,
    in seconds (ingest's config: group_wait 1h, so nothing is notified while it runs).

    The first listing encodes every alert; later ones reuse what did not change, as a
    dashboard polling the endpoint does.
    """
    with start(kind, CONFIG) as d, httpx.Client(timeout=300) as client:
        trio.run(load, d, bodies)
        deadline = time.monotonic() + 60
        while True:
            first, *listed = fetch_groups(client, d)
            if listed == [GROUPS, ALERTS]:
                break
            if time.monotonic() > deadline:
                raise RuntimeError(f"{kind} never listed {GROUPS} groups of {ALERTS} alerts")
            time.sleep(0.5)
        times = []
        for _ in range(requests):
            took, groups, alerts = fetch_groups(client, d)
            if (groups, alerts) != (GROUPS, ALERTS):
                raise RuntimeError(f"{kind} answered {groups} groups, {alerts} alerts")
            times.append(took)
        return first, statistics.median(times)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--requests", type=int, default=5)
    args = ap.parse_args()
    bodies = alert_bodies()
    ratios, first_ratios = [], []
    for n in range(args.runs):
        am_first, am = one_run("alertmanager", bodies, args.requests)
        tocsin_first, tocsin = one_run("tocsin", bodies, args.requests)
        ratios.append(tocsin / am)
        first_ratios.append(tocsin_first / am_first)
        print(
            f"run {n + 1}: GET /api/v2/alerts/groups at {ALERTS:,} alerts, median of "
            f"{args.requests}: alertmanager {am * 1000:.0f} ms, tocsin {tocsin * 1000:.0f} ms, "
            f"tocsin/AM {tocsin / am:.2f}; first GET: alertmanager {am_first * 1000:.0f} ms, "
            f"tocsin {tocsin_first * 1000:.0f} ms, tocsin/AM {tocsin_first / am_first:.2f}",
            flush=True,
        )
    print(
        f"tocsin/AM over {args.runs} runs: median {statistics.median(ratios):.2f} "
        f"(min {min(ratios):.2f}, max {max(ratios):.2f}); target at most 0.5. "
        f"First GET: median {statistics.median(first_ratios):.2f} "
        f"(min {min(first_ratios):.2f}, max {max(first_ratios):.2f})"
    )


if __name__ == "__main__":
    main()
