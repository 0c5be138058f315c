"""One notification attempt as the history keeps it, and why it happened. Pure.

Rules:

* A record is written for every integration a flush reaches: a send that succeeded
  (``sent``), one that gave up (``failed``, with the error text), and one the nflog
  dedup stopped (``suppressed``; no reason, no attempts).
* The reason is Alertmanager's dedup verdict, named as its event recorder names it
  (``NOTIFY_REASON_*``): :func:`daemon.notify.dedup.notify_reason`, the decision the
  dedup stage takes.
* Times are Unix nanoseconds (:mod:`daemon.clock`); durations are nanoseconds.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import attrs

from daemon.alert import Alert, untrack
from daemon.gocompat.timestamp import format_nano
from daemon.notify.attempt import Attempt, Outcome
from daemon.notify.dedup import NotifyReason, notify_reason


class Status(enum.Enum):
    FIRING = "firing"
    RESOLVED = "resolved"


def _frozen_labels(labels: Mapping[str, str]) -> Mapping[str, str]:
    # Sorted by name: the stored JSON and the API answer are then stable.
    return dict(sorted(labels.items()))


@attrs.frozen
class HistoryAlert:
    """An alert as it was in the notification."""

    #: 16 lowercase hex digits (:attr:`daemon.alert.Alert.fingerprint_hex`).
    fingerprint: str
    #: The alert's own (immutable) label set, not a copy: built on the event loop for
    #: every attempt, so it stays a reference; the writer sorts when it encodes.
    labels: Mapping[str, str]
    status: Status


def _alerts_tuple(alerts: Iterable[HistoryAlert]) -> tuple[HistoryAlert, ...]:
    return tuple(alerts)


@attrs.frozen
class IntegrationRef:
    """Which integration of the receiver: its type name and index (``webhook[0]``)."""

    name: str
    index: int


@attrs.frozen
class HistoryRecord:
    """One notification attempt of one integration for one aggregation group."""

    #: When the attempt ended (or dedup decided), Unix ns.
    time: int
    receiver: str
    integration: IntegrationRef
    group_key: str
    group_labels: Mapping[str, str] = attrs.field(converter=_frozen_labels)
    alerts: Sequence[HistoryAlert] = attrs.field(converter=_alerts_tuple)
    #: None only for ``suppressed``: dedup found nothing new to say.
    reason: NotifyReason | None
    outcome: Outcome
    #: The give-up error text of a ``failed`` attempt, else None.
    error: str | None = None
    attempts: int = 0
    #: Wall time from the first attempt to the outcome, ns.
    duration: int = 0
    #: The route's repeat interval, ns (exported as the event recorder's repeatInterval).
    repeat_interval: int = 0
    #: "" without tenancy.
    tenant: str = ""

    @property
    def status(self) -> Status:
        """Firing if any alert of the notification is firing, as Alertmanager's webhook status."""
        if any(a.status is Status.FIRING for a in self.alerts):
            return Status.FIRING
        return Status.RESOLVED


def history_alerts(alerts: Iterable[Alert], now: int) -> tuple[HistoryAlert, ...]:
    """The flush's alerts as a record keeps them; resolved as of ``now`` (the dedup's now)."""
    # Values only (the alert's own label map, strings, an enum): never in a cycle, and
    # they live until the writer has them, so out of the collector's walks.
    return tuple(
        untrack(
            HistoryAlert(
                a.fingerprint_hex,
                a.labels,
                Status.RESOLVED if a.resolved(now) else Status.FIRING,
            )
        )
        for a in alerts
    )


def record_to_json(rec: HistoryRecord) -> dict[str, Any]:
    """The API's JSON object for a record (``GET /api/v1/history`` items)."""
    return {
        "time": format_nano(rec.time),
        "tenant": rec.tenant,
        "receiver": rec.receiver,
        "integration": {"name": rec.integration.name, "index": rec.integration.index},
        "groupKey": rec.group_key,
        "groupLabels": dict(rec.group_labels),
        "status": rec.status.value,
        "reason": rec.reason.value if rec.reason is not None else None,
        "outcome": rec.outcome.value,
        "error": rec.error,
        "attempts": rec.attempts,
        "durationSeconds": rec.duration / 1e9,
        "alerts": [
            {"fingerprint": a.fingerprint, "labels": dict(a.labels), "status": a.status.value}
            for a in rec.alerts
        ],
    }


def from_attempt(attempt: Attempt, tenant: str = "") -> HistoryRecord:
    """The record of one attempt the notification pipeline reported."""
    ctx = attempt.ctx
    # Values only, as its alerts (see history_alerts).
    record = HistoryRecord(
        time=attempt.ended,
        receiver=ctx.receiver,
        integration=IntegrationRef(attempt.integration, attempt.index),
        group_key=ctx.group_key,
        group_labels=ctx.group_labels,
        alerts=history_alerts(attempt.alerts, attempt.now),
        reason=attempt.reason,
        outcome=attempt.outcome,
        error=attempt.error,
        attempts=attempt.attempts,
        duration=attempt.duration,
        repeat_interval=ctx.repeat_interval,
        tenant=tenant,
    )
    return untrack(record)


__all__ = [
    "HistoryAlert",
    "HistoryRecord",
    "IntegrationRef",
    "NotifyReason",
    "Outcome",
    "Status",
    "from_attempt",
    "history_alerts",
    "notify_reason",
    "record_to_json",
]
