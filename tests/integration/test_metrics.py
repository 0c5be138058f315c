"""/metrics exposes Alertmanager 0.25's metric names, so dashboards keep working."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.integration.processes import WebhookSink, run_tocsin

#: Every series name the real Alertmanager 0.25 exposes at start-up without clustering
#: (recorded from ``prometheus-alertmanager`` with the same config).
ALERTMANAGER_0_25 = {
    "alertmanager_alerts",
    "alertmanager_alerts_invalid_total",
    "alertmanager_alerts_received_total",
    "alertmanager_build_info",
    "alertmanager_cluster_enabled",
    "alertmanager_config_hash",
    "alertmanager_config_last_reload_success_timestamp_seconds",
    "alertmanager_config_last_reload_successful",
    "alertmanager_dispatcher_aggregation_groups",
    "alertmanager_dispatcher_alert_processing_duration_seconds_count",
    "alertmanager_dispatcher_alert_processing_duration_seconds_sum",
    "alertmanager_http_concurrency_limit_exceeded_total",
    "alertmanager_http_requests_in_flight",
    "alertmanager_integrations",
    "alertmanager_marked_alerts",
    "alertmanager_nflog_gc_duration_seconds_count",
    "alertmanager_nflog_gc_duration_seconds_sum",
    "alertmanager_nflog_gossip_messages_propagated_total",
    "alertmanager_nflog_queries_total",
    "alertmanager_nflog_query_duration_seconds_bucket",
    "alertmanager_nflog_query_duration_seconds_count",
    "alertmanager_nflog_query_duration_seconds_sum",
    "alertmanager_nflog_query_errors_total",
    "alertmanager_nflog_snapshot_duration_seconds_count",
    "alertmanager_nflog_snapshot_duration_seconds_sum",
    "alertmanager_nflog_snapshot_size_bytes",
    "alertmanager_notification_latency_seconds_bucket",
    "alertmanager_notification_latency_seconds_count",
    "alertmanager_notification_latency_seconds_sum",
    "alertmanager_notification_requests_failed_total",
    "alertmanager_notification_requests_total",
    "alertmanager_notifications_failed_total",
    "alertmanager_notifications_total",
    "alertmanager_receivers",
    "alertmanager_silences",
    "alertmanager_silences_gc_duration_seconds_count",
    "alertmanager_silences_gc_duration_seconds_sum",
    "alertmanager_silences_gossip_messages_propagated_total",
    "alertmanager_silences_queries_total",
    "alertmanager_silences_query_duration_seconds_bucket",
    "alertmanager_silences_query_duration_seconds_count",
    "alertmanager_silences_query_duration_seconds_sum",
    "alertmanager_silences_query_errors_total",
    "alertmanager_silences_snapshot_duration_seconds_count",
    "alertmanager_silences_snapshot_duration_seconds_sum",
    "alertmanager_silences_snapshot_size_bytes",
}


@pytest.fixture
def exposed(tmp_path: Path) -> set[str]:
    with WebhookSink() as sink:
        config = f"route: {{receiver: a}}\nreceivers: [{{name: a, webhook_configs: [{{url: '{sink.url}'}}]}}]\n"
        with run_tocsin(tmp_path, config) as d, d.api() as c:
            text = c.get("/metrics").text
    return {
        line.split("{")[0].split(" ")[0]
        for line in text.splitlines()
        if line.startswith("alertmanager_")
    }


def test_every_alertmanager_series_is_exposed(exposed: set[str]) -> None:
    """No series that Alertmanager 0.25 exposes is missing."""
    assert ALERTMANAGER_0_25 - exposed == set()


def test_no_client_library_extras(exposed: set[str]) -> None:
    """Python's client would add *_created series; Go's has none."""
    assert not [n for n in exposed if n.endswith("_created")]


#: The process series the real Alertmanager 0.25 exposes (Go's process collector).
PROCESS_0_25 = {
    "process_cpu_seconds_total",
    "process_max_fds",
    "process_open_fds",
    "process_resident_memory_bytes",
    "process_start_time_seconds",
    "process_virtual_memory_bytes",
    "process_virtual_memory_max_bytes",
}


def test_process_series_are_exposed(tmp_path: Path) -> None:
    """Dashboards' process_* panels find every series Alertmanager 0.25 exposes, with a
    plausible start time and resident size."""
    with run_tocsin(tmp_path, "route: {receiver: a}\nreceivers: [{name: a}]\n") as d:
        with d.api() as c:
            text = c.get("/metrics").text
    values = {
        line.split(" ")[0]: float(line.split(" ")[1])
        for line in text.splitlines()
        if line.startswith("process_")
    }
    assert PROCESS_0_25 <= set(values)
    assert values["process_resident_memory_bytes"] > 1e6
    assert values["process_start_time_seconds"] > 1.6e9
