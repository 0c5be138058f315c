"""Alertmanager's metric names and labels (spec §11), so existing dashboards work.

One registry per process. Gauges whose value lives elsewhere (alerts by state,
aggregation groups) are filled by collector callbacks registered by their owners,
so the hot path never touches them.
"""

from __future__ import annotations

import bisect
import resource
from collections.abc import Callable, Collection, Iterable
from typing import Any, TypeVar

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    ProcessCollector,
    Summary,
    disable_created_metrics,
)
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector
from prometheus_client.samples import Sample

# Go's client exposes no ``*_created`` series; dashboards and diffs expect none.
disable_created_metrics()  # type: ignore[no-untyped-call]

REGISTRY = CollectorRegistry(auto_describe=True)

#: The integrations whose series Alertmanager 0.25 creates at start-up (its
#: ``notify.NewMetrics``); the newer ones' series appear at their first notification.
PRECREATED_INTEGRATIONS = (
    "email",
    "opsgenie",
    "pagerduty",
    "pushover",
    "slack",
    "sns",
    "telegram",
    "victorops",
    "webhook",
    "wechat",
)
INTEGRATIONS = tuple(sorted((*PRECREATED_INTEGRATIONS, "discord", "msteams", "webex")))
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
# Alertmanager 0.25's ``cmd/alertmanager/main.go`` observes these per router handler
# (not for ``/api/v2/``, which 0.25 serves outside the router), labelled with the route
# path without the prefix and the lower-case method; buckets as there.
http_request_duration = Histogram(
    "alertmanager_http_request_duration_seconds",
    "Histogram of latencies for HTTP requests.",
    ["handler", "method"],
    buckets=(0.05, 0.1, 0.25, 0.5, 0.75, 1, 2, 5, 20, 60),
    registry=REGISTRY,
)
http_response_size = Histogram(
    "alertmanager_http_response_size_bytes",
    "Histogram of response size for HTTP requests.",
    ["handler", "method"],
    buckets=tuple(100 * 10**i for i in range(7)),  # Go: ExponentialBuckets(100, 10, 7)
    registry=REGISTRY,
)

# Go's client registers its process collector by default; dashboards read these.
ProcessCollector(registry=REGISTRY)


class _VirtualMemoryMax(Collector):
    """``process_virtual_memory_max_bytes`` as Go's collector reports it: RLIMIT_AS,
    with "unlimited" as the largest uint64 (Go's RLIM_INFINITY)."""

    def collect(self) -> Iterable[GaugeMetricFamily]:
        soft = resource.getrlimit(resource.RLIMIT_AS)[0]
        value = float(2**64 - 1) if soft == resource.RLIM_INFINITY else float(soft)
        yield GaugeMetricFamily(
            "process_virtual_memory_max_bytes",
            "Maximum amount of virtual memory available in bytes.",
            value=value,
        )


REGISTRY.register(_VirtualMemoryMax())

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
#: Go's ``prometheus.DefBuckets``, which Alertmanager's query histograms use (Python's
#: default buckets are different ones).
GO_DEFAULT_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)

nflog_query_duration = Histogram(
    "alertmanager_nflog_query_duration_seconds",
    "Duration of notification log query evaluation.",
    buckets=GO_DEFAULT_BUCKETS,
    registry=REGISTRY,
)
nflog_gossip_messages_propagated = Counter(
    "alertmanager_nflog_gossip_messages_propagated",
    "Number of received gossip messages that have been further gossiped.",
    registry=REGISTRY,
)


def _precreate() -> None:
    # Alertmanager 0.25 serves API v1 and v2, and counts each under its version.
    for version in ("v1", "v2"):
        alerts_received.labels(version, "firing")
        alerts_received.labels(version, "resolved")
        alerts_invalid.labels(version)
    http_requests_in_flight.labels("get")
    http_concurrency_limit_exceeded.labels("get")
    for integration in PRECREATED_INTEGRATIONS:
        notifications.labels(integration)
        notification_requests.labels(integration)
        notification_requests_failed.labels(integration)
        notification_latency.labels(integration)
        for reason in FAILURE_REASONS:
            notifications_failed.labels(integration, reason)


_precreate()


Family = Counter | Gauge | Histogram | Summary
F = TypeVar("F", Counter, Gauge, Histogram, Summary)


class _WithTenants(Collector):
    """One family: the global pipeline's series exactly as Alertmanager's, then the same
    series of tenant pipelines with a ``tenant`` label (samples of one family may carry
    different label sets; the exposition stays one HELP and one TYPE per name)."""

    def __init__(self, base: Family, tenanted: Family) -> None:
        self.base = base
        self.tenanted = tenanted

    def collect(self) -> Iterable[Any]:
        for family in self.base.collect():
            for extra in self.tenanted.collect():
                family.samples.extend(extra.samples)
            yield family

    def describe(self) -> Iterable[Any]:
        return self.base.describe()


def per_pipeline(base: F) -> F:
    """Declare ``base`` a per-pipeline family: tenant pipelines get their own series of
    it, with a ``tenant`` label, served inside ``base``'s family (see
    :func:`pipeline_series`). Returns ``base``, so a definition can be wrapped."""
    _add_twin(base)
    return base


def _add_twin(base: Family) -> None:
    # prometheus_client keeps label names, documentation and buckets in private fields.
    names = [*base._labelnames, "tenant"]
    twin: Family
    if isinstance(base, Histogram):
        twin = Histogram(
            base._name, base._documentation, names, buckets=base._upper_bounds[:-1], registry=None
        )
    elif isinstance(base, Summary):
        twin = Summary(base._name, base._documentation, names, registry=None)
    elif isinstance(base, Gauge):
        twin = Gauge(base._name, base._documentation, names, registry=None)
    else:
        twin = Counter(base._name, base._documentation, names, registry=None)
    REGISTRY.unregister(base)
    REGISTRY.register(_WithTenants(base, twin))
    _twins[id(base)] = twin
    if not base._labelnames:
        _unlabelled.append(base)


_twins: dict[int, Family] = {}
#: Per-pipeline families without labels of their own: a tenant pipeline's series of
#: these exist from its start (see :func:`open_pipeline`).
_unlabelled: list[Family] = []
#: How many pipelines of each tenant are open (see :func:`close_pipeline`).
_open: dict[str, int] = {}


def open_pipeline(tenant: str, integrations: Collection[str] = PRECREATED_INTEGRATIONS) -> None:
    """Create ``tenant``'s series of every per-pipeline family at zero, as the global
    pipeline's exist from the process's start (``_precreate``), so a dashboard sees a
    new tenant before its first alert, query or maintenance.

    Per integration only for ``integrations`` (those its config uses, of the ones
    Alertmanager creates at start-up): a notification family's series of all ten
    integrations were about 100 KB per tenant, half of the 200 KB an idle tenant may
    cost (issue 11), for integrations most tenants never configure. Another
    integration's series appear at its first notification, as newer integrations' do
    in Alertmanager."""
    _open[tenant] = _open.get(tenant, 0) + 1
    for family in _unlabelled:
        _twins[id(family)].labels(tenant)
    for version in ("v1", "v2"):
        pipeline_series(alerts_received, tenant, version, "firing")
        pipeline_series(alerts_received, tenant, version, "resolved")
        pipeline_series(alerts_invalid, tenant, version)
    for integration in PRECREATED_INTEGRATIONS:
        if integration not in integrations:
            continue
        pipeline_series(notifications, tenant, integration)
        pipeline_series(notification_requests, tenant, integration)
        pipeline_series(notification_requests_failed, tenant, integration)
        pipeline_series(notification_latency, tenant, integration)
        for reason in FAILURE_REASONS:
            pipeline_series(notifications_failed, tenant, integration, reason)


def close_pipeline(tenant: str) -> None:
    """Undo one :func:`open_pipeline`; the last one removes ``tenant``'s series of every
    per-pipeline family, so a tenant taken out of the tenancy file leaves no frozen
    series behind (back again, it starts at zero, which Prometheus reads as a counter
    reset). Call it once the pipeline has stopped: its final snapshot still counts.
    Counted, because a tenant removed and added again can start its new pipeline
    before the old one's final snapshot is written."""
    _open[tenant] -= 1
    if _open[tenant] > 0:
        return
    del _open[tenant]
    for twin in _twins.values():
        # prometheus_client lists a family's children only in a private field.
        for values in [v for v in twin._metrics if v[-1] == tenant]:
            twin.remove(*values)


def pipeline_series(family: Family, tenant: str | None, *values: str) -> Any:
    """The child of a per-pipeline series: ``family``'s own for the global pipeline
    (tenant None), its tenant-labelled twin's for a tenant pipeline. Looking a child up
    also creates it, so a tenant's series exist from its pipeline's start, at zero, as
    Alertmanager's unlabelled ones do."""
    if tenant is None:
        return family.labels(*values) if values else family
    return _twins[id(family)].labels(*values, tenant)


for _family in (
    alerts_received,
    alerts_invalid,
    notifications,
    notifications_failed,
    notification_requests,
    notification_requests_failed,
    notification_latency,
    notifications_suppressed,
    dispatcher_processing,
    nflog_queries,
    nflog_query_errors,
    nflog_query_duration,
    nflog_gossip_messages_propagated,
):
    _add_twin(_family)


Samples = Iterable[tuple[tuple[str, ...], float]]


class GaugeCallback(Collector):
    """A gauge family computed at scrape time from one source per instance.

    Each source gives ``[(label values, value)]``. A source registered for a tenant
    gets a ``tenant`` label on its samples; the default instance's (tenant None) has
    none, so a daemon without tenancy exposes exactly Alertmanager's series.
    """

    def __init__(self, name: str, documentation: str, labels: list[str]) -> None:
        self._name = name
        self._doc = documentation
        self._labels = labels
        self.sources: dict[str | None, Callable[[], Samples]] = {}

    def collect(self) -> Iterable[GaugeMetricFamily]:
        family = GaugeMetricFamily(self._name, self._doc, labels=self._labels)
        for tenant, read in list(self.sources.items()):
            for values, value in read():
                if tenant is None:
                    family.add_metric(list(values), value)
                else:
                    labels = {**dict(zip(self._labels, values, strict=True)), "tenant": tenant}
                    family.samples.append(Sample(self._name, labels, value, None, None))
        yield family

    def describe(self) -> Iterable[GaugeMetricFamily]:
        yield GaugeMetricFamily(self._name, self._doc, labels=self._labels)


def register_callback(
    name: str,
    documentation: str,
    labels: list[str],
    read: Callable[[], Samples],
    *,
    tenant: str | None = None,
) -> Callable[[], None]:
    """Serve ``read`` as the scrape-time gauge ``name`` for ``tenant``'s instance;
    returns the function that stops serving it. Registering again for the same tenant
    (a restarted instance) replaces the earlier source."""
    family = _callbacks.get(name)
    if family is None:
        family = _callbacks[name] = GaugeCallback(name, documentation, labels)
        REGISTRY.register(family)
    family.sources[tenant] = read

    def unregister() -> None:
        if family.sources.get(tenant) is read:
            del family.sources[tenant]

    return unregister


_callbacks: dict[str, GaugeCallback] = {}


def observe_summary_many(summary: Summary, count: int, total: float) -> None:
    """What ``count`` calls of ``summary.observe`` adding up to ``total`` seconds leave.

    A summary here keeps a count and a sum only, so a batch timed as a whole
    (``alertmanager_dispatcher_alert_processing_duration_seconds``, per alert in
    Alertmanager) takes two increments instead of two per alert. Reads
    prometheus_client's own child fields (pinned in constraints.txt); a test checks the
    exposition against one ``observe`` per value.
    """
    summary._raise_if_not_observable()  # type: ignore[no-untyped-call]
    summary._count.inc(count)
    summary._sum.inc(total)


def observe_many(histogram: Histogram, amounts: list[float]) -> None:
    """``histogram.observe(a)`` for every ``a`` of ``amounts``, bucket by bucket.

    For series observed per alert (``alertmanager_silences_query_duration_seconds``):
    ``observe`` costs 0.85 us a call (a lock and a Python loop over the bounds for each
    value); here each touched bucket and the sum take one increment per batch. Same
    counts; the sum may differ in the last bits (one addition of the batch's sum).
    Reads prometheus_client's own child fields (pinned in constraints.txt); a test
    checks the exposition against one ``observe`` per value.
    """
    if not amounts:
        return
    histogram._raise_if_not_observable()  # type: ignore[no-untyped-call]
    bounds: list[float] = histogram._upper_bounds
    buckets = histogram._buckets
    if max(amounts) <= bounds[0]:
        # The usual batch: every amount in the first bucket (silence queries take
        # microseconds, the first bound is 5 ms).
        buckets[0].inc(len(amounts))
        histogram._sum.inc(sum(amounts))
        return
    counts: dict[int, int] = {}
    for amount in amounts:
        # The first bound >= amount: observe's "amount <= bound" bucket.
        i = bisect.bisect_left(bounds, amount)
        counts[i] = counts.get(i, 0) + 1
    # The last bound is +Inf: every index names a bucket.
    for i, n in counts.items():
        buckets[i].inc(n)
    histogram._sum.inc(sum(amounts))
