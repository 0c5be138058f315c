"""The alerts the default rules make from the real-format fixtures are alerts
Alertmanager 0.25 takes as kube-events' ruler posts them, and tocsin stores the same
label sets from the events themselves."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from daemon.sources.kubeevents import decode_audit_events, decode_kube_events
from daemon.sources.rulesets import RuleFiles
from tests.integration.processes import ROOT, run_alertmanager, run_tocsin

pytestmark = pytest.mark.alertmanager

FIXTURES = Path(__file__).parent / "fixtures"
CONFIG = "route: {receiver: none, group_wait: 1h}\nreceivers: [{name: none}]\n"


def produced() -> list[dict[str, Any]]:
    rules = RuleFiles(
        events=[str(ROOT / "configs/rules/kube-events.yaml")],
        audit=[str(ROOT / "configs/rules/kube-auditing.yaml")],
        alerting_priority="INFO",
    ).load()
    events = [
        *decode_kube_events((FIXTURES / "core-v1-eventlist.json").read_bytes()),
        *decode_kube_events((FIXTURES / "events-k8s-io-v1.json").read_bytes()),
        *decode_kube_events((FIXTURES / "kubernetes-event-exporter.json").read_bytes()),
    ]
    audit = [
        *decode_audit_events((FIXTURES / "audit-eventlist.json").read_bytes()),
        *decode_audit_events((FIXTURES / "kubesphere-audit-items.json").read_bytes()),
    ]
    alerts = [o for e in events for o in rules.events.outcomes(e) if o.type == "alert"]
    alerts += [o for e in audit for o in rules.audit.outcomes(e)]
    return [{"labels": o.labels, "annotations": o.annotations} for o in alerts]


def test_alertmanager_takes_the_alerts_tocsin_makes(tmp_path: Path) -> None:
    """Posted to Alertmanager 0.25 as kube-events' ruler would, every alert is accepted
    and stored with its labels; tocsin, fed the events, stores the same label sets."""
    alerts = produced()
    assert len(alerts) >= 6
    with run_alertmanager(tmp_path, CONFIG) as am, am.api() as c:
        r = c.post("/api/v2/alerts", json=alerts)
        assert r.status_code == 200, r.text
        theirs = sorted(
            json.dumps(a["labels"], sort_keys=True) for a in c.get("/api/v2/alerts").json()
        )
    with (
        run_tocsin(
            tmp_path,
            CONFIG,
            f"--events.rules-file={ROOT}/configs/rules/kube-events.yaml",
            f"--auditing.rules-file={ROOT}/configs/rules/kube-auditing.yaml",
            "--auditing.alerting-priority=INFO",
        ) as d,
        d.api() as c,
    ):
        for name in (
            "core-v1-eventlist.json",
            "events-k8s-io-v1.json",
            "kubernetes-event-exporter.json",
        ):
            assert (
                c.post("/api/v1/events", content=(FIXTURES / name).read_bytes()).status_code == 200
            )
        for name in ("audit-eventlist.json", "kubesphere-audit-items.json"):
            assert (
                c.post("/audit/webhook/event", content=(FIXTURES / name).read_bytes()).status_code
                == 200
            )
        ours = sorted(
            json.dumps(a["labels"], sort_keys=True) for a in c.get("/api/v2/alerts").json()
        )
    assert ours == theirs
