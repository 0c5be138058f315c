"""A tenant pipeline's notification series exist at zero from its start for the
integrations its config uses, and the others' appear at their first notification."""

from __future__ import annotations

from prometheus_client.exposition import generate_latest

from daemon import metrics
from daemon.config.load import load_config_text
from daemon.instance import configured_integrations

CONFIG = """
route:
  receiver: hook
receivers:
  - name: hook
    webhook_configs:
      - url: http://127.0.0.1:9/
  - name: chat
    slack_configs:
      - api_url: http://127.0.0.1:9/
        channel: "#x"
  - name: nothing
"""


def _series(tenant: str) -> list[str]:
    text = generate_latest(metrics.REGISTRY).decode()
    return [line for line in text.splitlines() if f'tenant="{tenant}"' in line]


def test_configured_integrations_are_the_receivers_types() -> None:
    assert configured_integrations(load_config_text(CONFIG)) == {"webhook", "slack"}


def test_only_configured_integrations_are_precreated() -> None:
    tenant = "precreate-test"
    metrics.open_pipeline(tenant, {"webhook", "slack"})
    try:
        lines = _series(tenant)
        notified = [line for line in lines if line.startswith("alertmanager_notifications_total")]
        assert sorted(notified) == [
            f'alertmanager_notifications_total{{integration="slack",tenant="{tenant}"}} 0.0',
            f'alertmanager_notifications_total{{integration="webhook",tenant="{tenant}"}} 0.0',
        ]
        # The families without an integration label are all there from the start.
        assert any(line.startswith("alertmanager_nflog_queries_total") for line in lines)
        assert any(line.startswith("alertmanager_alerts_received_total") for line in lines)
        # Another integration's series appear with its first notification.
        metrics.pipeline_series(metrics.notifications, tenant, "email").inc()
        assert (
            f'alertmanager_notifications_total{{integration="email",tenant="{tenant}"}} 1.0'
            in _series(tenant)
        )
    finally:
        metrics.close_pipeline(tenant)
    assert _series(tenant) == []


def test_a_tenant_opened_without_a_config_gets_alertmanagers_ten() -> None:
    tenant = "precreate-all"
    metrics.open_pipeline(tenant)
    try:
        notified = [
            line for line in _series(tenant) if line.startswith("alertmanager_notifications_total")
        ]
        assert len(notified) == len(metrics.PRECREATED_INTEGRATIONS)
    finally:
        metrics.close_pipeline(tenant)
