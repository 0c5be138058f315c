"""The cluster's metrics: every ``alertmanager_cluster_*``, ``alertmanager_peer_*`` and
``alertmanager_oversize*`` series of Alertmanager 0.25, with its names, help texts and
types, read from the running peer at scrape time.

The collector is registered the first time a peer uses it, so a daemon without
clustering exposes none of these series, as Alertmanager.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator, Sequence
from typing import Protocol

from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector

from cluster.channel import NFLOG_KEY, SILENCES_KEY
from cluster.node import OVERSIZE_BUCKETS, Histogram, Node, NodeMetrics, NodeStatistics
from cluster.tls_transport import TLSTransport
from daemon import metrics
from daemon.ha.channels import MSG_TYPES, Counters
from daemon.ha.tls_config import tls_transport_metrics


class MeteredPeer(Protocol):
    """What the collector reads of the peer."""

    @property
    def name(self) -> str: ...

    @property
    def counters(self) -> Counters: ...

    @property
    def running_node(self) -> Node | None: ...

    @property
    def tls_transport(self) -> TLSTransport | None: ...

    def position(self) -> int: ...


class ClusterCollector(Collector):
    """``alertmanager_cluster_*``, ``alertmanager_peer_position`` and oversize counters."""

    def __init__(self) -> None:
        self.peer: MeteredPeer | None = None
        self._registered = False

    def use(self, peer: MeteredPeer) -> None:
        """Serve ``peer``'s metrics (registered on first use: none without clustering)."""
        self.peer = peer
        if not self._registered:
            metrics.REGISTRY.register(self)
            self._registered = True

    def release(self, peer: MeteredPeer) -> None:
        """Stop serving ``peer``'s metrics (if it is still the one served)."""
        if self.peer is peer:
            self.peer = None

    def collect(self) -> Iterable[Metric]:
        """Read the peer's node and counters at scrape time."""
        peer = self.peer
        if peer is None:
            return
        c = peer.counters
        node = peer.running_node
        stats = node.statistics() if node is not None else None
        tls = peer.tls_transport
        if tls is not None:
            yield from tls_transport_metrics(tls.statistics())
        yield _gauge(
            "alertmanager_cluster_members",
            "Number indicating current number of members in cluster.",
            stats.members if stats else 0,
        )
        yield _gauge(
            "alertmanager_cluster_failed_peers",
            "Number indicating the current number of failed peers in the cluster.",
            stats.failed_peers if stats else 0,
        )
        yield _gauge(
            "alertmanager_cluster_health_score",
            "Health score of the cluster. Lower values are better and zero means "
            "'totally healthy'.",
            stats.health_score if stats else 0,
        )
        yield _gauge(
            "alertmanager_peer_position",
            "Position the Alertmanager instance believes it's in. The position determines "
            "a peer's behavior in the cluster.",
            peer.position(),
        )
        info = GaugeMetricFamily(
            "alertmanager_cluster_peer_info",
            "A metric with a constant '1' value labeled by peer name.",
            labels=["peer"],
        )
        info.add_metric([peer.name], 1)
        yield info
        yield from _labelled_counters(
            "msg_type",
            MSG_TYPES,
            (
                (
                    "alertmanager_cluster_messages_received",
                    "Total number of cluster messages received.",
                    c.received,
                ),
                (
                    "alertmanager_cluster_messages_received_size",
                    "Total size of cluster messages received.",
                    c.received_size,
                ),
                (
                    "alertmanager_cluster_messages_sent",
                    "Total number of cluster messages sent.",
                    {**c.sent, "update": stats.user_messages_sent if stats else 0},
                ),
                (
                    "alertmanager_cluster_messages_sent_size",
                    "Total size of cluster messages sent.",
                    {**c.sent_size, "update": stats.user_bytes_sent if stats else 0},
                ),
            ),
        )
        if node is not None:
            yield from _node_metrics(node.metrics, stats)
        for name, doc, value in (
            (
                "alertmanager_cluster_peers_joined",
                "A counter of the number of peers that have joined.",
                c.joined,
            ),
            (
                "alertmanager_cluster_peers_left",
                "A counter of the number of peers that have left.",
                c.left,
            ),
            (
                "alertmanager_cluster_peers_update",
                "A counter of the number of peers that have updated metadata.",
                c.updated,
            ),
        ):
            yield CounterMetricFamily(name, doc, value=value)


def _drop_reasons(stats: NodeStatistics | None) -> list[tuple[str, int]]:
    """``(reason, count)`` for every way the node drops what a peer sent."""
    if stats is None:
        return []
    return [
        ("malformed_packet", stats.malformed_packets),
        ("malformed_message", stats.malformed_messages),
        ("malformed_stream", stats.malformed_streams),
        ("bad_user_message", stats.bad_user_messages),
        ("label", stats.label_refused),
        ("decrypt", stats.decrypt_failures),
        ("stream_too_large", stats.streams_too_large),
        ("too_many_streams", stats.streams_refused),
    ]


def _node_metrics(m: NodeMetrics, stats: NodeStatistics | None) -> Iterator[Metric]:
    """The series fed by the node's own counters (memberlist's and the channels')."""
    yield _gauge(
        "alertmanager_cluster_messages_queued",
        "Number of cluster messages which are queued.",
        stats.queued_user_messages if stats else 0,
    )
    for name, doc, value in (
        (
            "alertmanager_cluster_messages_pruned",
            "Total number of cluster messages pruned.",
            m.messages_pruned,
        ),
        (
            "alertmanager_cluster_reconnections",
            "A counter of the number of cluster peer reconnections.",
            m.reconnections,
        ),
        (
            "alertmanager_cluster_reconnections_failed",
            "A counter of the number of failed cluster peer reconnection attempts.",
            m.reconnections_failed,
        ),
        (
            "alertmanager_cluster_refresh_join",
            "A counter of the number of cluster peer joined via refresh.",
            m.refresh_joins,
        ),
        (
            "alertmanager_cluster_refresh_join_failed",
            "A counter of the number of failed cluster peer joined attempts via refresh.",
            m.refresh_joins_failed,
        ),
    ):
        yield CounterMetricFamily(name, doc, value=value)
    dropped = CounterMetricFamily(
        "tocsin_cluster_input_dropped",
        "Packets, packet parts and streams from the cluster port that were dropped, by "
        "reason (tocsin only; each drop is counted once).",
        labels=["reason"],
    )
    for reason, count in _drop_reasons(stats):
        dropped.add_metric([reason], count)
    yield dropped
    alive = CounterMetricFamily(
        "alertmanager_cluster_alive_messages",
        "Total number of received alive messages.",
        labels=["peer"],
    )
    for peer_name, count in sorted((stats.alive_messages if stats else {}).items()):
        alive.add_metric([peer_name], count)
    yield alive
    pings = HistogramMetricFamily(
        "alertmanager_cluster_pings_seconds",
        "Histogram of latencies for ping messages.",
        labels=["peer"],
    )
    for peer_name, histogram in sorted(m.ping_seconds.items()):
        _add_histogram(pings, [peer_name], histogram)
    yield pings
    keys = (NFLOG_KEY, SILENCES_KEY)
    duration = HistogramMetricFamily(
        "alertmanager_oversize_gossip_message_duration_seconds",
        "Duration of oversized gossip message requests.",
        labels=["key"],
    )
    for key in keys:
        _add_histogram(duration, [key], m.oversize_seconds.get(key) or Histogram(OVERSIZE_BUCKETS))
    yield duration
    yield from _labelled_counters(
        "key",
        keys,
        (
            (
                "alertmanager_oversized_gossip_message_sent",
                "Number of oversized gossip message sent.",
                m.oversize_sent,
            ),
            (
                "alertmanager_oversized_gossip_message_failure",
                "Number of oversized gossip message sends that failed.",
                m.oversize_failed,
            ),
            (
                "alertmanager_oversized_gossip_message_dropped",
                "Number of oversized gossip messages that were dropped due to a full message queue.",
                m.oversize_dropped,
            ),
        ),
    )


def _labelled_counters(
    label: str, keys: Sequence[str], rows: Iterable[tuple[str, str, dict[str, int]]]
) -> Iterator[Metric]:
    """One counter family per ``(name, help, counts)`` row, a series for every key."""
    for name, doc, counts in rows:
        family = CounterMetricFamily(name, doc, labels=[label])
        for key in keys:
            family.add_metric([key], counts.get(key, 0))
        yield family


def _add_histogram(family: HistogramMetricFamily, labels: list[str], h: Histogram) -> None:
    buckets = [(_le(bound), float(count)) for bound, count in h.cumulative()]
    family.add_metric(labels, buckets, h.total)


def _le(bound: float) -> str:
    """A bucket bound as Go's client prints it (``0.005``, ``1``, ``+Inf``)."""
    return "+Inf" if bound == math.inf else f"{bound:g}"


def _gauge(name: str, doc: str, value: float) -> GaugeMetricFamily:
    return GaugeMetricFamily(name, doc, value=value)


#: One per process: the registry refuses the same names twice.
#: The one collector: at most one peer runs per process.
COLLECTOR = ClusterCollector()
