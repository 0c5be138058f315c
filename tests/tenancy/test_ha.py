"""Tenant pipelines in an HA pair: tenant configs, silences and nflog gossip under
tocsin-only keys, so a config set on one node runs on both, the pair sends one
notification per tenant group, and a tenant silence made on one node mutes on both."""

from __future__ import annotations

import contextlib
import json
from pathlib import Path

import httpx

from tests.integration.cluster_processes import run_node
from tests.integration.processes import WebhookSink, wait_for
from tests.tenancy.test_isolation import IDENTITIES, TENANCY, silence, tenant_config


def api(url: str, who: str) -> httpx.Client:
    return httpx.Client(base_url=url, headers=IDENTITIES[who], timeout=10)


def test_ha_pair_sends_one_notification_per_tenant_group(tmp_path: Path) -> None:
    """A tenant config set on one node runs on both, and a delete on the other is seen
    on the first. Both nodes get the same tenant alerts (as from Prometheus); the tenant's webhook
    gets one notification per group, the global one still gets its own, and a tenant
    silence made on node 0 mutes the tenant's copy on node 1 (and nowhere else)."""
    (tmp_path / "tenancy.yml").write_text(TENANCY)
    flag = f"--tenancy.config-file={tmp_path / 'tenancy.yml'}"
    with contextlib.ExitStack() as stack:
        global_sink = stack.enter_context(WebhookSink())
        sink_a = stack.enter_context(WebhookSink())
        first = stack.enter_context(run_node(tmp_path / "n0", global_sink.url, [], flag))
        second = stack.enter_context(
            run_node(tmp_path / "n1", global_sink.url, [first.cluster_address], flag)
        )
        urls = [first.proc.url, second.proc.url]
        # The tenant sets its config on one node; it reaches the other by gossip.
        with api(urls[0], "a") as c:
            r = c.post("/api/v1/alerts", content=tenant_config("a-hook", sink_a.url))
            assert r.status_code == 201, r.text
            stored = c.get("/api/v1/alerts").text
        with api(urls[1], "a") as c:
            wait_for(lambda: c.get("/api/v1/alerts").text == stored, timeout=10)
            assert c.get("/api/v2/receivers").json() == [{"name": "a-hook"}]
        with api(urls[0], "a") as c:
            muted = c.post("/api/v2/silences", json=silence("a mutes", "muted")).json()
        sid = muted["silenceID"]
        with api(urls[1], "a") as c:
            wait_for(lambda: c.get(f"/api/v2/silence/{sid}").status_code == 200, timeout=10)
        with api(urls[1], "admin") as c:
            assert c.get(f"/api/v2/silence/{sid}").status_code == 404  # not global
        alerts = [
            {"labels": {"alertname": "g1", "namespace": "team-a"}},
            {"labels": {"alertname": "g2", "namespace": "team-a-dev"}},
            {"labels": {"alertname": "muted", "namespace": "team-a"}},
        ]
        for url in urls:
            with api(url, "ingest") as c:
                assert c.post("/api/v2/alerts", json=alerts).status_code == 200
        got = [sink_a.next(), sink_a.next()]
        assert sink_a.quiet_for(4)
        names = sorted(a["labels"]["alertname"] for r in got for a in json.loads(r.body)["alerts"])
        assert names == ["g1", "g2"]
        global_got = [global_sink.next() for _ in range(3)]
        assert global_sink.quiet_for(1)
        global_names = sorted(
            a["labels"]["alertname"] for r in global_got for a in json.loads(r.body)["alerts"]
        )
        assert global_names == ["g1", "g2", "muted"]
        # A delete on the other node reaches the first one too.
        with api(urls[1], "a") as c:
            assert c.delete("/api/v1/alerts").status_code == 200
        with api(urls[0], "a") as c:
            wait_for(lambda: c.get("/api/v1/alerts").status_code == 404, timeout=10)
