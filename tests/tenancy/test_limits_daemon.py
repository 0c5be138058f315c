"""Limits end to end in the daemon: the tenancy file's limits reach a tenant's pipeline,
every breach is the contract's answer (a 400 with nothing applied, a dropped fan-out
copy, a refused connect) and shows in tocsin_tenant_limit_exceeded_total on /metrics."""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

import httpx

from tests.integration.processes import Proc, WebhookSink, run_tocsin, wait_for

TOKENS = {"admin": "limits-admin", "ingest": "limits-ingest", "a": "limits-team-a"}


def sha(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


TENANCY = f"""\
admins: [{{name: ops, token_sha256: {sha(TOKENS["admin"])}}}]
ingest: [{{name: prom, token_sha256: {sha(TOKENS["ingest"])}}}]
default_limits:
  alertmanager_max_silences_count: 1
tenants:
  lim-a:
    tokens_sha256: [{sha(TOKENS["a"])}]
    namespaces: [a]
    limits:
      alertmanager_max_alerts_count: 2
      alertmanager_max_config_size_bytes: 400
      alertmanager_receivers_firewall_block_private_addresses: true
"""
GLOBAL_CONFIG = "route: {receiver: g, group_wait: 1h}\nreceivers: [{name: g}]\n"


def client(proc: Proc, who: str) -> httpx.Client:
    headers = {"Authorization": f"Bearer {TOKENS[who]}"}
    return httpx.Client(base_url=proc.url, headers=headers, timeout=10)


def breaches(proc: Proc, limit: str) -> float:
    with client(proc, "admin") as c:
        text = c.get("/metrics").text
    found = re.search(
        r'^tocsin_tenant_limit_exceeded_total\{limit="' + limit + r'",tenant="lim-a"\} (\S+)$',
        text,
        re.MULTILINE,
    )
    return float(found.group(1)) if found else 0.0


def alerts(*names: str) -> list[dict[str, object]]:
    return [{"labels": {"alertname": n, "namespace": "a"}} for n in names]


def silence(name: str) -> dict[str, object]:
    return {
        "matchers": [{"name": "alertname", "value": name, "isRegex": False}],
        "startsAt": "2020-01-01T00:00:00Z",
        "endsAt": "2099-01-01T00:00:00Z",
        "createdBy": "test",
        "comment": "limits",
    }


def test_the_tenancy_files_limits_hold_in_the_daemon(tmp_path: Path) -> None:
    """Alert count, fan-out copies, silence count, config size and the firewall, each
    refused as the contract says and counted under Mimir's name."""
    (tmp_path / "tenancy.yml").write_text(TENANCY)
    flag = f"--tenancy.config-file={tmp_path / 'tenancy.yml'}"
    with WebhookSink() as sink, run_tocsin(tmp_path, GLOBAL_CONFIG, flag) as proc:
        with client(proc, "a") as a:
            # Alerts: a batch that would make 3 is refused whole; re-posts pass.
            assert a.post("/api/v2/alerts", json=alerts("A1", "A2")).status_code == 200
            refused = a.post("/api/v2/alerts", json=alerts("A1", "A3"))
            assert refused.status_code == 400
            assert "too many alerts" in refused.text
            assert a.post("/api/v2/alerts", json=alerts("A2", "A1")).status_code == 200
            names = sorted(x["labels"]["alertname"] for x in a.get("/api/v2/alerts").json())
            assert names == ["A1", "A2"]
            assert breaches(proc, "max_alerts_count") == 1

            # The global intake still stores what the tenant's limit drops from its copy.
            with client(proc, "ingest") as ingest:
                assert ingest.post("/api/v2/alerts", json=alerts("G1", "G2")).status_code == 200
            with client(proc, "admin") as admin:
                assert len(admin.get("/api/v2/alerts").json()) == 2
            assert len(a.get("/api/v2/alerts").json()) == 2
            assert breaches(proc, "max_alerts_count") == 2

            # Silences: default_limits' one, then a 400.
            assert a.post("/api/v2/silences", json=silence("x")).status_code == 200
            second = a.post("/api/v2/silences", json=silence("y"))
            assert second.status_code == 400
            assert "exceeded maximum number of silences" in second.text
            assert len(a.get("/api/v2/silences").json()) == 1
            assert breaches(proc, "max_silences_count") == 1

            # Config size: refused before anything else; a small one is taken.
            big = "alertmanager_config: |\n  route: {receiver: r}\n  receivers: [{name: r}]\n"
            big += "  # " + "x" * 400 + "\n"
            too_big = a.post("/api/v1/alerts", content=big)
            assert too_big.status_code == 400
            assert "Alertmanager configuration is too big" in too_big.text
            assert breaches(proc, "max_config_size_bytes") == 1
            small = (
                "alertmanager_config: |\n"
                "  route: {receiver: r, group_wait: 100ms}\n"
                f"  receivers: [{{name: r, webhook_configs: [{{url: '{sink.url}'}}]}}]\n"
            )
            accepted = a.post("/api/v1/alerts", content=small)
            assert accepted.status_code == 201, accepted.text

        # The firewall: the tenant's webhook on loopback is never connected to.
        wait_for(lambda: breaches(proc, "receivers_firewall_block_private_addresses") > 0, 30)
        assert sink.quiet_for(0.5)
        assert sink.received == []
