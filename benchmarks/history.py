"""The notification history store: write throughput and query latency at 1M rows.

* Write: ``--rows`` records (default 1,000,000) go through the real service path,
  ``HistoryStore.record()`` -> memory channel -> writer actor -> batched ``executemany``
  in a worker thread, in bursts of ``queue_size`` records (a notification storm that
  fills the queue, then waits for the writer). Reports records/s end to end, and the
  cost of one ``record()`` call, the only part on the notifier's path.
* Query: on the filled database (50 receivers, 3 integrations, times spread over the
  7-day retention, 2% failed), time ``HistoryStore.query`` (thread hop included) for
  the shapes the API serves; each is run ``--runs`` times, median and p99 reported.
  The target is a filtered query under 100 ms. The last two shapes are the label
  filter's worst cases: one page is bounded by the scan window or the check budget
  and answers with a cursor to go on.

Not measured here: notification latency p99 with history on vs off. That needs the
store wired into the notification pipeline (the lead's wiring); the ``record()`` cost
printed here is the per-notification overhead it adds.

Run: .venv/bin/python -m benchmarks.history [--rows N] [--runs N]
"""

from __future__ import annotations

import argparse
import random
import statistics
import tempfile
import time
from pathlib import Path

import trio

from daemon.clock import NS_PER_SECOND, FixedClock
from daemon.history.query import Cursor, HistoryQuery
from daemon.history.record import (
    HistoryAlert,
    HistoryRecord,
    IntegrationRef,
    NotifyReason,
    Outcome,
    Status,
)
from daemon.history.store import HistoryStore
from daemon.matcher import parse_matcher

S = NS_PER_SECOND
#: 2026-01-01T00:00:00Z: the newest record; the oldest is 7 days before.
NOW = 1_767_225_600 * S
SPAN = 7 * 24 * 3600 * S
RECEIVERS = 50
INTEGRATIONS = ("webhook", "slack", "email")


def make_records(n: int, seed: int = 1) -> list[HistoryRecord]:
    """``n`` records, oldest first, ~3 alerts each, 2% failed and 10% suppressed."""
    rng = random.Random(seed)
    out = []
    for i in range(n):
        t = NOW - SPAN + SPAN * i // n
        group = rng.randrange(2000)
        alerts = [
            HistoryAlert(
                f"{rng.getrandbits(64):016x}",
                {
                    "alertname": f"Alert{group % 200}",
                    "instance": f"host-{rng.randrange(500)}:9100",
                    "job": "node",
                    "severity": rng.choice(("warning", "critical")),
                    "team": f"team-{group % 20}",
                },
                Status.FIRING,
            )
            for _ in range(rng.randrange(1, 6))
        ]
        roll = rng.random()
        outcome = (
            Outcome.FAILED if roll < 0.02 else Outcome.SUPPRESSED if roll < 0.12 else Outcome.SENT
        )
        out.append(
            HistoryRecord(
                time=t,
                receiver=f"receiver-{group % RECEIVERS}",
                integration=IntegrationRef(INTEGRATIONS[group % 3], 0),
                group_key=f'{{}}:{{alertname="Alert{group % 200}"}}',
                group_labels={"alertname": f"Alert{group % 200}"},
                alerts=alerts,
                reason=None
                if outcome is Outcome.SUPPRESSED
                else NotifyReason.REPEAT_INTERVAL_ELAPSED,
                outcome=outcome,
                error="webhook[0]: unexpected status 500" if outcome is Outcome.FAILED else None,
                attempts=0 if outcome is Outcome.SUPPRESSED else 1,
                duration=12_000_000,
                repeat_interval=4 * 3600 * S,
            )
        )
    return out


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def bench(rows: int, runs: int, directory: Path) -> None:
    t0 = time.perf_counter()
    records = make_records(rows)
    print(f"generated {rows:,} records in {time.perf_counter() - t0:.1f}s")
    # Retention and size cap far enough to keep every row; the clock stands at NOW.
    store = HistoryStore(directory, clock=FixedClock(NOW), max_rows=rows * 2, prune_interval=3600.0)
    async with trio.open_nursery() as nursery:
        await nursery.start(store.run)

        burst = store.queue_size
        call_ns = 0
        start = time.perf_counter()
        for i in range(0, rows, burst):
            chunk = records[i : i + burst]
            c0 = time.perf_counter_ns()
            for rec in chunk:
                store.record(rec)
            call_ns += time.perf_counter_ns() - c0
            await store.wait_written()
        elapsed = time.perf_counter() - start
        print(f"write: {rows / elapsed:,.0f} records/s end to end ({elapsed:.1f}s for {rows:,})")
        print(f"record(): {call_ns / rows:,.0f} ns per call (the notifier's cost)")

        hour = 3600 * S
        mid = NOW - SPAN // 2
        first = await store.query(HistoryQuery(receiver="receiver-7", limit=100))
        assert first.next_cursor is not None
        shapes: dict[str, HistoryQuery] = {
            "receiver, newest 100": HistoryQuery(receiver="receiver-7", limit=100),
            "receiver + 1h range mid-week, 100": HistoryQuery(
                receiver="receiver-7", since=mid, until=mid + hour, limit=100
            ),
            "receiver + 1d range, 1000": HistoryQuery(
                receiver="receiver-7", since=mid, until=mid + 24 * hour, limit=1000
            ),
            "receiver + range, page 2 (cursor)": HistoryQuery(
                receiver="receiver-7",
                since=mid - 24 * hour,
                until=mid,
                limit=100,
                cursor=Cursor(mid - hour, 1 << 62),
            ),
            "receiver + outcome=failed, 100": HistoryQuery(
                receiver="receiver-7", outcome=Outcome.FAILED, limit=100
            ),
            "1h range, all receivers, 100": HistoryQuery(since=mid, until=mid + hour, limit=100),
            "receiver + label filter, 100": HistoryQuery(
                receiver="receiver-7",
                matchers=(
                    parse_matcher("severity=critical"),
                    parse_matcher('instance=~"host-1.*"'),
                ),
                limit=100,
            ),
            "label filter only (no index), 100": HistoryQuery(
                matchers=(parse_matcher("team=team-7"), parse_matcher("severity=critical")),
                limit=100,
            ),
            "label filter matching nothing, 1 page": HistoryQuery(
                matchers=(parse_matcher("team=nobody"),), limit=100
            ),
            "regex every row has, no match, 1 page": HistoryQuery(
                matchers=(parse_matcher('instance=~"nohost.*"'),), limit=100
            ),
        }
        print(f"query latency over {runs} runs (store.query, thread hop included):")
        for name, query in shapes.items():
            times: list[float] = []
            count = 0
            for _ in range(runs):
                q0 = time.perf_counter()
                page = await store.query(query)
                times.append((time.perf_counter() - q0) * 1000)
                count = len(page.items)
            print(
                f"  {name:<38} median {statistics.median(times):7.2f} ms"
                f"  p99 {percentile(times, 0.99):7.2f} ms  ({count} items)"
            )
        nursery.cancel_scope.cancel()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--runs", type=int, default=50)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="tocsin-history-bench-") as tmp:
        trio.run(bench, args.rows, args.runs, Path(tmp))
        size = sum(p.stat().st_size for p in Path(tmp).iterdir())
        print(f"database size: {size / 1e6:,.0f} MB ({size / args.rows:,.0f} bytes/row)")


if __name__ == "__main__":
    main()
