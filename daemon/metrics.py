"""Alertmanager's metric names and labels (spec §11), so existing dashboards work.

One registry per process. Gauges whose value lives elsewhere (alerts by state,
aggregation groups) are filled by collector callbacks registered by their owners,
so the hot path never touches them.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    Summary,
    disable_created_metrics,
)
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

# Go's client exposes no ``*_created`` series; dashboards and diffs expect none.
disable_created_metrics()  # type: ignore[no-untyped-call]

REGISTRY = CollectorRegistry(auto_describe=True)

INTEGRATIONS = (
    "discord",
    "email",
    "msteams",
    "opsgenie",
    "pagerduty",
    "pushover",
    "slack",
    "sns",
    "telegram",
    "victorops",
    "webex",
    "webhook",
    "wechat",
)
FAILURE_REASONS = (
    "other",
    "clientError",
    "serverError",
    "contextCanceled",
    "contextDeadlineExceeded",
)

alerts_received = Counter(
    "alertmanager_alerts_received",
    "The total number of received alerts.",
    ["version", "status"],
    registry=REGISTRY,
)
alerts_invalid = Counter(
    "alertmanager_alerts_invalid",
    "The total number of received alerts that were invalid.",
    ["version"],
    registry=REGISTRY,
)
notifications = Counter(
    "alertmanager_notifications",
    "The total number of attempted notifications.",
    ["integration"],
    registry=REGISTRY,
)
notifications_failed = Counter(
    "alertmanager_notifications_failed",
    "The total number of failed notifications.",
    ["integration", "reason"],
    registry=REGISTRY,
)
notification_requests = Counter(
    "alertmanager_notification_requests",
    "The total number of attempted notification requests.",
    ["integration"],
    registry=REGISTRY,
)
notification_requests_failed = Counter(
    "alertmanager_notification_requests_failed",
    "The total number of failed notification requests.",
    ["integration"],
    registry=REGISTRY,
)
notification_latency = Histogram(
    "alertmanager_notification_latency_seconds",
    "The latency of notifications in seconds.",
    ["integration"],
    buckets=(1, 5, 10, 15, 20),
    registry=REGISTRY,
)
#: 0.27+ (absent from 0.25); reasons: silence, inhibition, mute_time_interval, active_time_interval.
notifications_suppressed = Counter(
    "alertmanager_notifications_suppressed",
    "The total number of notifications suppressed for being silenced, inhibited, outside of active time intervals or within muted time intervals.",
    ["reason"],
    registry=REGISTRY,
)
dispatcher_processing = Summary(
    "alertmanager_dispatcher_alert_processing_duration_seconds",
    "Summary of latencies for the processing of alerts.",
    registry=REGISTRY,
)
config_hash = Gauge(
    "alertmanager_config_hash",
    "Hash of the currently loaded alertmanager configuration.",
    registry=REGISTRY,
)
config_last_reload_successful = Gauge(
    "alertmanager_config_last_reload_successful",
    "Whether the last configuration reload attempt was successful.",
    registry=REGISTRY,
)
config_last_reload_success_timestamp = Gauge(
    "alertmanager_config_last_reload_success_timestamp_seconds",
    "Timestamp of the last successful configuration reload.",
    registry=REGISTRY,
)
cluster_enabled = Gauge(
    "alertmanager_cluster_enabled",
    "Indicates whether the clustering is enabled or not.",
    registry=REGISTRY,
)
receivers = Gauge("alertmanager_receivers", "Number of configured receivers.", registry=REGISTRY)
integrations = Gauge(
    "alertmanager_integrations", "Number of configured integrations.", registry=REGISTRY
)
build_info = Gauge(
    "alertmanager_build_info",
    "A metric with a constant '1' value labeled by version, revision, branch, goversion, goos and goarch.",
    ["version", "revision", "branch", "goversion", "goos", "goarch"],
    registry=REGISTRY,
)


http_requests_in_flight = Gauge(
    "alertmanager_http_requests_in_flight",
    "Current number of HTTP requests being processed.",
    ["method"],
    registry=REGISTRY,
)
http_concurrency_limit_exceeded = Counter(
    "alertmanager_http_concurrency_limit_exceeded",
    "Total number of times an HTTP request failed because the concurrency limit was reached.",
    ["method"],
    registry=REGISTRY,
)
nflog_queries = Counter(
    "alertmanager_nflog_queries",
    "Number of notification log queries were received.",
    registry=REGISTRY,
)
nflog_query_errors = Counter(
    "alertmanager_nflog_query_errors",
    "Number notification log received queries that failed.",
    registry=REGISTRY,
)
nflog_query_duration = Histogram(
    "alertmanager_nflog_query_duration_seconds",
    "Duration of notification log query evaluation.",
    registry=REGISTRY,
)
nflog_gossip_messages_propagated = Counter(
    "alertmanager_nflog_gossip_messages_propagated",
    "Number of received gossip messages that have been further gossiped.",
    registry=REGISTRY,
)


def _precreate() -> None:
    alerts_received.labels("v2", "firing")
    alerts_received.labels("v2", "resolved")
    alerts_invalid.labels("v2")
    http_requests_in_flight.labels("get")
    http_concurrency_limit_exceeded.labels("get")
    for integration in INTEGRATIONS:
        notifications.labels(integration)
        notification_requests.labels(integration)
        notification_requests_failed.labels(integration)
        notification_latency.labels(integration)
        for reason in FAILURE_REASONS:
            notifications_failed.labels(integration, reason)


_precreate()


class GaugeCallback(Collector):
    """A gauge family computed at scrape time by ``read``: ``[(label values, value)]``."""

    def __init__(
        self,
        name: str,
        documentation: str,
        labels: list[str],
        read: Callable[[], Iterable[tuple[tuple[str, ...], float]]],
    ) -> None:
        self._name = name
        self._doc = documentation
        self._labels = labels
        self.read = read

    def collect(self) -> Iterable[GaugeMetricFamily]:
        family = GaugeMetricFamily(self._name, self._doc, labels=self._labels)
        for values, value in self.read():
            family.add_metric(list(values), value)
        yield family

    def describe(self) -> Iterable[GaugeMetricFamily]:
        yield GaugeMetricFamily(self._name, self._doc, labels=self._labels)


def register_callback(
    name: str,
    documentation: str,
    labels: list[str],
    read: Callable[[], Iterable[tuple[tuple[str, ...], float]]],
) -> GaugeCallback:
    """Register (or re-point, on reload) a scrape-time gauge."""
    existing = _callbacks.get(name)
    if existing is not None:
        existing.read = read
        return existing
    cb = GaugeCallback(name, documentation, labels, read)
    REGISTRY.register(cb)
    _callbacks[name] = cb
    return cb


_callbacks: dict[str, GaugeCallback] = {}
