"""Metrics of tenant pipelines: every per-pipeline family carries a ``tenant`` label in
tenant pipelines (issue 11, "Metrics and logs"), while the global pipeline's series keep
Alertmanager 0.25's exact names and label sets."""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.integration.processes import WebhookSink, run_alertmanager, run_tocsin, wait_for
from tests.tenancy.test_isolation import TENANCY, TOKENS, client, silence, tenant_config

#: Every family that belongs to one pipeline (its config, store, dispatcher, silences,
#: nflog and notifier). The process's own families (HTTP, build, cluster, config file
#: reloads, event sources, history, the event loop) have no tenant label.
PER_PIPELINE = {
    "alertmanager_alerts",
    "alertmanager_marked_alerts",
    "alertmanager_alerts_received",
    "alertmanager_alerts_invalid",
    "alertmanager_dispatcher_aggregation_groups",
    "alertmanager_dispatcher_alert_processing_duration_seconds",
    "alertmanager_notifications",
    "alertmanager_notifications_failed",
    "alertmanager_notification_requests",
    "alertmanager_notification_requests_failed",
    "alertmanager_notification_latency_seconds",
    "alertmanager_notifications_suppressed",
    "alertmanager_nflog_queries",
    "alertmanager_nflog_query_errors",
    "alertmanager_nflog_query_duration_seconds",
    "alertmanager_nflog_gossip_messages_propagated",
    "alertmanager_nflog_gc_duration_seconds",
    "alertmanager_nflog_snapshot_duration_seconds",
    "alertmanager_nflog_snapshot_size_bytes",
    "alertmanager_nflog_maintenance",
    "alertmanager_nflog_maintenance_errors",
    "alertmanager_silences",
    "alertmanager_silences_queries",
    "alertmanager_silences_query_errors",
    "alertmanager_silences_query_duration_seconds",
    "alertmanager_silences_gc_duration_seconds",
    "alertmanager_silences_snapshot_duration_seconds",
    "alertmanager_silences_snapshot_size_bytes",
    "alertmanager_silences_gossip_messages_propagated",
    "alertmanager_silences_maintenance",
    "alertmanager_silences_maintenance_errors",
}

Labels = frozenset[tuple[str, str]]


def scrape(url: str, token: str | None = None) -> dict[str, dict[Labels, float]]:
    """``/metrics`` as {family: {sample labels (with the sample's name suffix): value}}."""
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    text = httpx.get(f"{url}/metrics", headers=headers, timeout=10).text
    out: dict[str, dict[Labels, float]] = defaultdict(dict)
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            # A counter's one sample is its family's value; ``_total`` is only its name.
            suffix = sample.name[len(family.name) :].removeprefix("_total")
            labels = {**sample.labels, "__suffix__": suffix}
            if "le" in labels:
                # Go writes le="1", Python's client le="1.0": the same bound to Prometheus.
                labels["le"] = repr(float(labels["le"]))
            key = frozenset(labels.items())
            out[family.name][key] = sample.value
    return out


def value(families: dict[str, dict[Labels, float]], family: str, **labels: str) -> float:
    """The one sample of ``family`` with exactly ``labels`` (suffix ``""`` unless given)."""
    want = frozenset({"__suffix__": "", **labels}.items())
    return families[family][want]


def of_tenant(samples: dict[Labels, float], tenant: str | None) -> set[Labels]:
    """The label sets of ``tenant``'s samples (None: those without a tenant label)."""
    return {k for k in samples if dict(k).get("tenant") == tenant}


def alert(name: str, namespace: str | None = None) -> dict[str, object]:
    labels = (
        {"alertname": name} if namespace is None else {"alertname": name, "namespace": namespace}
    )
    return {"labels": labels}


GLOBAL_CONFIG = (
    "route: {{receiver: g, group_by: [alertname], group_wait: 50ms, group_interval: 1s}}\n"
    "receivers: [{{name: g, webhook_configs: [{{url: '{url}'}}]}}]\n"
)
#: Traffic of the global pipeline, the same into tocsin and into Alertmanager.
GLOBAL_ALERTS = [
    alert("G1"),
    alert("G2"),
    {"labels": {"alertname": "G3"}, "endsAt": "2020-01-01T00:00:00Z"},
]
MUTE = silence("mutes one alert", "Muted")
INVALID = [{"labels": {"": "no name"}}]


def test_every_per_pipeline_family_is_labelled_by_tenant(tmp_path: Path) -> None:
    """After traffic into two tenants and the global pipeline, every per-pipeline family
    has series for both tenants, counting that tenant's traffic only, and no other
    alertmanager_* family carries a tenant label; a tenant taken out of the tenancy
    file leaves no series behind."""
    (tmp_path / "tenancy.yml").write_text(TENANCY)
    flags = (f"--tenancy.config-file={tmp_path / 'tenancy.yml'}", "--data.maintenance-interval=1s")
    with WebhookSink() as sink:
        with run_tocsin(tmp_path, GLOBAL_CONFIG.format(url=sink.url), *flags) as proc:
            for who in ("a", "b"):
                with client(proc, who) as c:
                    put = c.post("/api/v1/alerts", content=tenant_config("r", sink.url))
                    assert put.status_code == 201, put.text
            with client(proc, "ingest") as ingest:
                # Fanned out by namespace: one alert for each tenant, and the global copies.
                posted = [*GLOBAL_ALERTS, alert("FanA", "team-a"), alert("FanB", "team-b")]
                assert ingest.post("/api/v2/alerts", json=posted).status_code == 200
                assert ingest.post("/api/v2/alerts", json=INVALID).status_code == 400
            with client(proc, "a") as a:
                # Tenant A's own intake: three firing alerts and one invalid one.
                own = [alert("A1"), alert("A2"), alert("A3")]
                assert a.post("/api/v2/alerts", json=own).status_code == 200
                assert a.post("/api/v2/alerts", json=INVALID).status_code == 400
                assert a.get("/api/v2/silences").status_code == 200
                assert a.post("/api/v2/silences", json=MUTE).status_code == 200
                assert a.post("/api/v2/alerts", json=[alert("Muted")]).status_code == 200
            with client(proc, "b") as b:
                assert b.post("/api/v2/alerts", json=[alert("B1")]).status_code == 200
                assert b.get("/api/v2/silences").status_code == 200
                assert b.post("/api/v2/silences", json=MUTE).status_code == 200
                assert b.post("/api/v2/alerts", json=[alert("Muted")]).status_code == 200
            # One notification per firing alert (groups by alertname): the global
            # pipeline's G1, G2, FanA and FanB (G3 was never firing), A's 4 and B's 2.
            sink.wait_count(4 + 4 + 2, timeout=30)

            def maintained() -> bool:
                now = scrape(proc.url, TOKENS["admin"])
                return all(
                    value(now, family, tenant=t) > 0
                    for family in (
                        "alertmanager_nflog_maintenance",
                        "alertmanager_silences_maintenance",
                    )
                    for t in ("team-a", "team-b")
                ) and all(
                    value(now, "alertmanager_notifications_suppressed", reason="silence", tenant=t)
                    for t in ("team-a", "team-b")
                )

            wait_for(maintained, 30)
            families = scrape(proc.url, TOKENS["admin"])

            # Team B taken out of the tenancy file: none of its series stay behind.
            without_b = TENANCY[: TENANCY.index("  team-b:")]
            (tmp_path / "tenancy.yml").write_text(without_b)
            with client(proc, "admin") as admin:
                assert admin.post("/-/reload").status_code == 200
            after = scrape(proc.url, TOKENS["admin"])
            assert not [n for n, samples in after.items() if of_tenant(samples, "team-b")]
            assert of_tenant(after["alertmanager_nflog_queries"], "team-a")

    tenanted = {
        name
        for name, samples in families.items()
        if name.startswith("alertmanager_") and any(dict(k).get("tenant") for k in samples)
    }
    assert tenanted == PER_PIPELINE
    for name in sorted(PER_PIPELINE):
        samples = families[name]
        untenanted = {k for k in samples if "tenant" not in dict(k)}
        for t in ("team-a", "team-b"):
            mine = of_tenant(samples, t)
            assert mine, f"{name} has no series for {t}"
            # A tenant's series have the global ones' label names, plus the tenant (the
            # global pipeline suppressed nothing, so it has no suppressed series).
            names = {frozenset(n for n, _ in k) for k in mine}
            want = {frozenset(n for n, _ in k) | {"tenant"} for k in untenanted}
            assert names == want or name == "alertmanager_notifications_suppressed", name

    # Each pipeline's traffic shows in its own series only.
    received = "alertmanager_alerts_received"
    # As Alertmanager, an invalid alert counts as received too: A's 4 and its invalid one.
    assert value(families, received, version="v2", status="firing", tenant="team-a") == 5
    assert value(families, received, version="v2", status="firing", tenant="team-b") == 2
    assert value(families, received, version="v2", status="firing") == 5
    assert value(families, received, version="v2", status="resolved") == 1
    invalid = "alertmanager_alerts_invalid"
    assert value(families, invalid, version="v2", tenant="team-a") == 1
    assert value(families, invalid, version="v2") == 1
    assert value(families, invalid, version="v2", tenant="team-b") == 0
    processing = "alertmanager_dispatcher_alert_processing_duration_seconds"
    # Tenant A's pipeline routed its 4 own alerts and 1 fanned-out one; B 2 and 1.
    assert value(families, processing, tenant="team-a", __suffix__="_count") == 5
    assert value(families, processing, tenant="team-b", __suffix__="_count") == 3
    assert value(families, processing, __suffix__="_count") == 5
    for t, flushes in (("team-a", 4), ("team-b", 2)):
        assert value(families, "alertmanager_nflog_queries", tenant=t) >= flushes
        assert value(families, "alertmanager_silences_queries", tenant=t) >= 1
        notified = value(families, "alertmanager_notifications", integration="webhook", tenant=t)
        assert notified == flushes


@pytest.mark.alertmanager
def test_global_series_keep_alertmanagers_label_sets(tmp_path: Path) -> None:
    """With tenant pipelines running, the global pipeline's per-pipeline series have
    exactly the label sets of a live Alertmanager 0.25's after the same traffic."""
    (tmp_path / "tenancy.yml").write_text(TENANCY)
    flag = f"--tenancy.config-file={tmp_path / 'tenancy.yml'}"
    traffic = [*GLOBAL_ALERTS, alert("FanA", "team-a")]
    with WebhookSink() as sink:
        config = GLOBAL_CONFIG.format(url=sink.url)
        am_dir = tmp_path / "am"
        am_dir.mkdir()
        with run_alertmanager(am_dir, config) as am:
            assert httpx.post(f"{am.url}/api/v2/alerts", json=traffic).status_code == 200
            assert httpx.post(f"{am.url}/api/v2/alerts", json=INVALID).status_code == 400
            sink.wait_count(3, timeout=30)  # G1, G2 and FanA
            theirs = scrape(am.url)
        with run_tocsin(tmp_path, config, flag) as proc:
            with client(proc, "a") as a:
                assert a.post("/api/v2/alerts", json=[alert("A1")]).status_code == 200
            with client(proc, "ingest") as ingest:
                assert ingest.post("/api/v2/alerts", json=traffic).status_code == 200
                assert ingest.post("/api/v2/alerts", json=INVALID).status_code == 400
            # Then the global G1, G2 and FanA again, and tenant A's A1 and FanA.
            sink.wait_count(3 + 3 + 2, timeout=30)
            ours = scrape(proc.url, TOKENS["admin"])
    compared = sorted(PER_PIPELINE & set(theirs))
    # All but the suppressed counter (0.27+) and the maintenance counters (0.26+) are
    # Alertmanager 0.25's.
    newer = {
        "alertmanager_notifications_suppressed",
        "alertmanager_nflog_maintenance",
        "alertmanager_nflog_maintenance_errors",
        "alertmanager_silences_maintenance",
        "alertmanager_silences_maintenance_errors",
    }
    assert set(compared) == PER_PIPELINE - newer
    for name in compared:
        mine = of_tenant(ours[name], None)
        if name == "alertmanager_notifications_failed":
            # tocsin counts failures by ``reason`` as Alertmanager 0.26+ does (spec §11).
            mine = {frozenset(x for x in k if x[0] != "reason") for k in mine}
        assert mine == set(theirs[name]), name
