"""The notification hot path's per-alert encoding work, in this process (issue 15).

Issue 15's ingest workload (10k new alerts in 1k groups, ``group_wait: 0``) sends one
webhook per new group; every alert is new, so no per-alert cache helps. A profile of
the daemon put webhook body building (``build_payload``) at 11% of its samples and the
nflog dedup hash (``split_hashes``) at 2.4%. This times exactly those two calls over
1,000 groups of 10 alerts with that workload's labels and annotations, caches emptied
before every round, as the first flush of each group meets them.

Each round: ``build_payload`` for every group, then ``split_hashes`` for every group.
Reported: the median over ``--rounds`` rounds, per group and per 10k alerts.

Run: .venv/bin/python -m benchmarks.notify_encoding [--rounds N] [--python]

``--python`` blocks the C extension (daemon/_speedups) first, to time the pure Python
fallbacks. To time another checkout (say, before a change) with the same script, put
that checkout first on the path: ``PYTHONPATH=/path/to/checkout .venv/bin/python
benchmarks/notify_encoding.py``; the first line printed names the daemon package used.
``--untimed N`` instead runs N untimed rounds (``--only`` one of the two calls), for
``valgrind --tool=callgrind`` instruction counts: the difference between N=5 and N=0
is five rounds' work, start-up left out.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time

GROUPS = 1_000
PER_GROUP = 10
NOW = 1_800_000_000 * 10**9


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--python", action="store_true", help="block the C extension")
    parser.add_argument("--untimed", type=int, default=-1, help="N untimed rounds, no report")
    parser.add_argument("--only", choices=("payload", "hashes"), help="with --untimed")
    args = parser.parse_args()
    if args.python:
        sys.modules["daemon._speedups"] = None  # type: ignore[assignment]

    import daemon
    from daemon.alert import Alert
    from daemon.clock import ZERO_TIME
    from daemon.notify.context import NotifyContext
    from daemon.notify.dedup import split_hashes
    from daemon.notify.receivers import webhook

    print(f"daemon package: {daemon.__file__}", flush=True)
    groups = []
    for g in range(GROUPS):
        alerts = [
            Alert(
                {
                    "alertname": f"Bench{g}",
                    "instance": f"host-{i}-{g}.example.org:9100",
                    "job": "node",
                    "severity": "warning",
                },
                {"summary": f"Benchmark alert {g}/{i}"},
                NOW - 10**9,
                ZERO_TIME,
                "http://prometheus.example.org/graph?g0.expr=up",
            )
            for i in range(PER_GROUP)
        ]
        ctx = NotifyContext(
            group_key=f'{{}}:{{alertname="Bench{g}"}}',
            group_labels={"alertname": f"Bench{g}"},
            receiver="hook",
            repeat_interval=3600 * 10**9,
            route_id="{}",
            now=NOW,
        )
        groups.append((ctx, alerts))

    def one_round(payload: bool = True, hashes: bool = True) -> tuple[float, float]:
        # Every alert and group is new to the encoder, as in the workload's first flushes.
        webhook._fragments.clear()
        webhook._literals.clear()
        start = time.perf_counter()
        for ctx, alerts in groups if payload else ():
            webhook.build_payload(ctx, alerts, 0, "http://tocsin.example.org", NOW)
        built = time.perf_counter()
        for _, alerts in groups if hashes else ():
            split_hashes(alerts, NOW)
        return built - start, time.perf_counter() - built

    if args.untimed >= 0:
        for _ in range(args.untimed):
            one_round(payload=args.only != "hashes", hashes=args.only != "payload")
        return
    one_round()  # warm-up: imports, the time-text cache
    rounds = [one_round() for _ in range(args.rounds)]
    alerts_total = GROUPS * PER_GROUP
    for name, k in (("build_payload", 0), ("split_hashes", 1)):
        median = statistics.median(r[k] for r in rounds)
        print(
            f"{name:14} {median / GROUPS * 1e6:7.2f} us/group of {PER_GROUP}  "
            f"{median / alerts_total * 1e4 * 1e3:7.2f} ms per 10k alerts "
            f"(median of {args.rounds})"
        )


if __name__ == "__main__":
    main()
