"""The dedup decision: does this flush tell the integration anything new, and why? (spec §4.1)

Pure. Dedup is subset-based, not equality-based (trap 2): a shrinking firing set is not
news, only a new firing hash, "everything resolved", a new resolved hash (when the
integration sends resolved notifications) or an expired repeat interval is. The
verdict is kept as the reason Alertmanager's event recorder names
(:class:`NotifyReason`), which the notification history records.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Sequence

from daemon.alert import Alert
from daemon.nflog.state import Entry, alert_hash


def split_hashes(alerts: Sequence[Alert], now: int) -> tuple[list[int], list[int]]:
    """The nflog hashes of the firing and of the resolved alerts, in alert order."""
    firing: list[int] = []
    resolved: list[int] = []
    for alert in alerts:
        (resolved if alert.resolved(now) else firing).append(alert_hash(alert.labels))
    return firing, resolved


class NotifyReason(enum.Enum):
    """Why a notification was sent; the values are Alertmanager's event-recorder enum names."""

    FIRST_NOTIFICATION = "NOTIFY_REASON_FIRST_NOTIFICATION"
    NEW_ALERTS_IN_GROUP = "NOTIFY_REASON_NEW_ALERTS_IN_GROUP"
    NEW_RESOLVED_ALERTS = "NOTIFY_REASON_NEW_RESOLVED_ALERTS"
    ALL_ALERTS_RESOLVED = "NOTIFY_REASON_ALL_ALERTS_RESOLVED"
    REPEAT_INTERVAL_ELAPSED = "NOTIFY_REASON_REPEAT_INTERVAL_ELAPSED"


def notify_reason(
    previous: Entry | None,
    firing: Iterable[int],
    resolved: Iterable[int],
    repeat_interval: int,
    now: int,
    *,
    send_resolved: bool = True,
) -> NotifyReason | None:
    """Why this flush must notify the integration, or None when dedup suppresses it.

    ``previous`` is the integration's nflog entry for the group (None: never notified);
    ``firing`` and ``resolved`` are the nflog hashes of the flush's alerts.
    ``send_resolved`` is the integration's setting: without it new resolved alerts
    alone are no news.
    """
    firing_set = frozenset(firing)
    if previous is None:
        return NotifyReason.FIRST_NOTIFICATION if firing_set else None
    if not previous.is_firing_subset(firing_set):
        # After an "all resolved" message the receiver knows of nothing firing: the
        # next firing alert starts the conversation again.
        if not previous.firing_alerts:
            return NotifyReason.FIRST_NOTIFICATION
        return NotifyReason.NEW_ALERTS_IN_GROUP
    if not firing_set:
        # Sent whatever send_resolved says, so that the log's firing set gets cleared;
        # if nothing was firing at the last message either, the receiver never heard
        # of these alerts.
        return NotifyReason.ALL_ALERTS_RESOLVED if previous.firing_alerts else None
    if send_resolved and not previous.is_resolved_subset(resolved):
        return NotifyReason.NEW_RESOLVED_ALERTS
    # Nothing changed: repeat once the last send is strictly older than the interval.
    if previous.timestamp < now - repeat_interval:
        return NotifyReason.REPEAT_INTERVAL_ELAPSED
    return None


def needs_update(
    entry: Entry | None,
    firing: Iterable[int],
    resolved: Iterable[int],
    send_resolved: bool,
    repeat_interval: int,
    now: int,
) -> bool:
    """Whether the alerts must be passed on to the integration (the five rules of §4.1)."""
    reason = notify_reason(
        entry, firing, resolved, repeat_interval, now, send_resolved=send_resolved
    )
    return reason is not None
