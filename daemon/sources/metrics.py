"""Metrics of the Kubernetes event and audit sources (kube-events and kube-auditing had
none: kubesphere/kube-events#27).

``intake`` is ``events`` (``POST /api/v1/events`` and the API-server watch) or
``audit`` (``POST /audit/webhook/event``). Per-rule series carry the rule's name, which
the rule files bound.
"""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

from daemon.metrics import REGISTRY

bodies_received = Counter(
    "tocsin_event_bodies_received",
    "Request bodies (or watch batches) received by an event intake.",
    ["intake"],
    registry=REGISTRY,
)
bodies_rejected = Counter(
    "tocsin_event_bodies_rejected",
    "Request bodies refused whole by an event intake (nothing of them was applied).",
    ["intake"],
    registry=REGISTRY,
)
events_decoded = Counter(
    "tocsin_events_decoded",
    "Events decoded from accepted bodies, by intake.",
    ["intake"],
    registry=REGISTRY,
)
events_matched = Counter(
    "tocsin_events_matched",
    "Events matched, by intake, rule and rule type (alert or notification).",
    ["intake", "rule", "type"],
    registry=REGISTRY,
)
alerts_produced = Counter(
    "tocsin_event_alerts_produced",
    "Alerts put by the event sources (a new firing alert or one extended by a recurrence).",
    registry=REGISTRY,
)
alerts_resolved = Counter(
    "tocsin_event_alerts_resolved",
    "Event alerts put resolved because their event stopped recurring.",
    registry=REGISTRY,
)
rule_evaluation = Histogram(
    "tocsin_event_rule_evaluation_seconds",
    "Time spent evaluating the rules over one body's events.",
    ["intake"],
    buckets=(0.0001, 0.0005, 0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5),
    registry=REGISTRY,
)
rules_loaded = Gauge(
    "tocsin_event_rules",
    "Rules loaded, by intake (disabled rules included).",
    ["intake"],
    registry=REGISTRY,
)
rules_last_reload_successful = Gauge(
    "tocsin_event_rules_last_reload_successful",
    "Whether the last load of the event and audit rule files succeeded (a failed reload keeps the rules that run).",
    registry=REGISTRY,
)
notifications_sent = Counter(
    "tocsin_event_notifications_sent",
    "Events delivered to a notification webhook.",
    ["url"],
    registry=REGISTRY,
)
notification_requests_failed = Counter(
    "tocsin_event_notification_requests_failed",
    "Notification webhook requests that failed (each retry counts).",
    ["url"],
    registry=REGISTRY,
)
notifications_dropped = Counter(
    "tocsin_event_notifications_dropped",
    "Events a notification webhook never got: queue full, or retries used up.",
    ["url", "reason"],
    registry=REGISTRY,
)
watch_restarts = Counter(
    "tocsin_event_watch_restarts",
    "Restarts of the API-server watch, by reason (gone = 410, error, closed).",
    ["reason"],
    registry=REGISTRY,
)
watch_events = Counter(
    "tocsin_event_watch_events",
    "Watch events received from the API server, by type.",
    ["type"],
    registry=REGISTRY,
)
