"""Cost per event of kube-events rule matching as the rule count grows, 10 -> 1,000.

Run as ``.venv/bin/python -m benchmarks.eventrules``. The rules are shaped like
KubeSphere's shipped set: ``type="Warning" and involvedObject.kind=K and reason=R``,
sometimes with ``count>3``, each reason used by a few rules, plus three rules with no
equality to index on (``message contains ...``), which every event is tested against.
The events are core/v1 Events in the API server's JSON shape: 80% are ``Normal`` events
with reasons no rule names (what a cluster mostly emits), 20% are warnings with a reason
some rule names. For each rule count, the same events go through
``EventRuleSet.match`` (the index) and through a plain scan of every rule in order (what
kube-events does), and the CPU time per event of each is printed (best of
``--repeats``), with the growth factor
from the smallest rule count. No Alertmanager comparison: Alertmanager has no rules of
this kind (kube-events itself is Go, not installed here).
"""

from __future__ import annotations

import argparse
import random
import tempfile
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from daemon.eventrules.kubeevents import EventRuleSet, load_event_rules

KINDS = ("Pod", "Node", "Deployment", "ReplicaSet", "PersistentVolumeClaim", "Job")


def rule_file(count: int, directory: Path) -> str:
    lines = [
        "apiVersion: events.kubesphere.io/v1alpha1",
        "kind: Rule",
        "metadata:",
        "  name: bench",
        "  namespace: kubesphere-logging-system",
        "  labels: {kubesphere.io/rule-scope: cluster}",
        "spec:",
        "  rules:",
    ]
    for extra in ("OOMKilled", "Evicted", "Preempted"):
        lines.append(
            f'  - {{name: Msg{extra}, condition: \'type = "Warning" or message contains "{extra}"\','
            " enable: true, type: notification}"
        )
    for i in range(count - 3):
        reason = f"Reason{i // 3}"
        kind = KINDS[i % len(KINDS)]
        cond = f'type=\\"Warning\\" and involvedObject.kind=\\"{kind}\\" and reason=\\"{reason}\\"'
        if i % 4 == 0:
            cond += " and count>3"
        lines.append(f'  - {{name: Rule{i}, condition: "{cond}", enable: true, type: alert}}')
    path = directory / f"rules-{count}.yaml"
    path.write_text("\n".join(lines) + "\n")
    return str(path)


def events(n: int, rule_count: int, rng: random.Random) -> list[dict[str, Any]]:
    out = []
    for i in range(n):
        warning = rng.random() < 0.2
        reason = (
            f"Reason{rng.randrange(max(1, (rule_count - 3) // 3))}"
            if warning
            else rng.choice(
                ("Scheduled", "Pulled", "Created", "Started", "Killing", "SuccessfulCreate")
            )
        )
        kind = rng.choice(KINDS)
        out.append(
            {
                "apiVersion": "v1",
                "kind": "Event",
                "metadata": {
                    "name": f"web-{i}.17b2c3d4e5f6",
                    "namespace": "shop",
                    "uid": "u",
                    "resourceVersion": "1",
                },
                "involvedObject": {
                    "kind": kind,
                    "namespace": "shop",
                    "name": f"web-{i}",
                    "uid": "0b4f",
                    "apiVersion": "v1",
                    "resourceVersion": "1234",
                    "fieldPath": "spec.containers{app}",
                },
                "reason": reason,
                "message": "Back-off restarting failed container",
                "source": {"component": "kubelet", "host": "node-1"},
                "firstTimestamp": "2024-03-01T10:00:00Z",
                "lastTimestamp": "2024-03-01T10:20:30Z",
                "count": rng.randrange(1, 10),
                "type": "Warning" if warning else "Normal",
                "eventTime": None,
                "reportingComponent": "",
                "reportingInstance": "",
            }
        )
    return out


def scan(rules: EventRuleSet, event: Mapping[str, Any]) -> list[str]:
    """kube-events' way: every rule in order, first match per type."""
    found: dict[str, str] = {}
    for rule in rules.rules:
        if rule.type not in found and rule.condition(event):
            found[rule.type] = rule.name
            if len(found) == 2:
                break
    return sorted(found.values())


def timed(fn: Any, items: Sequence[Mapping[str, Any]], repeats: int) -> float:
    best = float("inf")
    for _ in range(repeats):
        # CPU time of this process: the machine is shared, and wall time would count
        # whatever else runs (the work is single-threaded and does no I/O).
        start = time.process_time()
        for item in items:
            fn(item)
        best = min(best, time.process_time() - start)
    return best / len(items)


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=5_000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--counts", default="10,100,1000")
    args = parser.parse_args(argv)
    rng = random.Random(12)
    counts = [int(c) for c in args.counts.split(",")]
    print(f"{'rules':>6} {'indexed CPU us/event':>21} {'scan CPU us/event':>18} {'candidates':>11}")
    base: tuple[float, float] | None = None
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for count in counts:
            rules = load_event_rules([rule_file(count, Path(tmp))])
            batch = events(args.events, count, rng)
            # The index must not change any outcome: checked on every event, untimed.
            for event in batch:
                assert sorted(m.rule.name for m in rules.match(event)) == scan(rules, event)
            indexed = timed(rules.match, batch, args.repeats)
            linear = timed(lambda e, r=rules: scan(r, e), batch, args.repeats)
            cands = sum(len(rules.candidates(e)) for e in batch) / len(batch)
            rows.append((count, indexed, linear))
            base = base or (indexed, linear)
            print(f"{count:>6} {indexed * 1e6:>21.2f} {linear * 1e6:>18.2f} {cands:>11.1f}")
    first, last = rows[0], rows[-1]
    print(
        f"growth {first[0]} -> {last[0]} rules ({last[0] / first[0]:.0f}x): indexed "
        f"{last[1] / first[1]:.2f}x, scan {last[2] / first[2]:.2f}x"
    )


if __name__ == "__main__":
    main()
