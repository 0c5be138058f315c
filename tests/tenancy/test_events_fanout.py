"""Alerts made from Kubernetes events fan out by the namespace they carry, end to end:
each reaches the tenant that owns its namespace, and no other tenant."""

from __future__ import annotations

import json
from pathlib import Path

from tests.api.test_events_e2e import FIXTURES, RULES
from tests.integration.processes import WebhookSink
from tests.tenancy.test_isolation import client, start, tenant_config


def event_in(namespace: str, name: str) -> bytes:
    """The events.k8s.io/v1 fixture (a ProvisioningFailed warning) moved to ``namespace``."""
    event = json.loads((FIXTURES / "events-k8s-io-v1.json").read_text())
    event["metadata"]["namespace"] = event["regarding"]["namespace"] = namespace
    event["metadata"]["uid"] = f"uid-{name}"
    event["regarding"]["name"] = name
    return json.dumps(event).encode()


def test_event_alerts_reach_only_the_tenant_of_their_namespace(tmp_path: Path) -> None:
    """A rule-made alert from an event in team-a's namespace is in team-a's pipeline at
    once (read-your-writes) and notifies team-a's receiver; team-b neither sees nor gets
    it, and an event in nobody's namespace stays in the global pipeline."""
    rules = tmp_path / "rules.yaml"
    rules.write_text(RULES)
    with (
        WebhookSink() as sink_a,
        WebhookSink() as sink_b,
        start(tmp_path, f"--events.rules-file={rules}") as proc,
    ):
        for who, sink in (("a", sink_a), ("b", sink_b)):
            with client(proc, who) as c:
                r = c.post("/api/v1/alerts", content=tenant_config(f"{who}-hook", sink.url))
                assert r.status_code == 201, r.text
        with client(proc, "ingest") as c:
            for namespace, name in (("team-a-dev", "pvc-a"), ("nobody", "pvc-x")):
                r = c.post("/api/v1/events", content=event_in(namespace, name))
                assert r.json() == {"received": 1, "matched": 1, "alerts": 1}, r.text
                if namespace == "team-a-dev":
                    # Right after the POST's reply, before any notification.
                    with client(proc, "a") as ca, client(proc, "b") as cb:
                        seen_a = ca.get("/api/v2/alerts").json()
                        seen_b = cb.get("/api/v2/alerts").json()
        assert [a["labels"]["namespace"] for a in seen_a] == ["team-a-dev"]
        assert seen_a[0]["labels"]["alertname"] == "VolumeProvisioning"
        assert seen_b == []
        got_a = json.loads(sink_a.next().body)
        assert [a["labels"]["namespace"] for a in got_a["alerts"]] == ["team-a-dev"]
        assert sink_b.quiet_for(2.5)
        with client(proc, "admin") as c:
            everywhere = {a["labels"]["namespace"] for a in c.get("/api/v2/alerts").json()}
        assert everywhere == {"team-a-dev", "nobody"}
        with client(proc, "b") as c:
            assert c.get("/api/v2/alerts").json() == []
