"""The dedup decision: does this flush tell the integration anything new? (spec §4.1)

Pure. Dedup is subset-based, not equality-based (trap 2): a shrinking firing set is not
news, only a new firing hash, "everything resolved", a new resolved hash (when the
integration sends resolved notifications) or an expired repeat interval is.
"""

from __future__ import annotations

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


def needs_update(
    entry: Entry | None,
    firing: Iterable[int],
    resolved: Iterable[int],
    send_resolved: bool,
    repeat_interval: int,
    now: int,
) -> bool:
    """Whether the alerts must be passed on to the integration (the five rules of §4.1)."""
    firing_set = frozenset(firing)
    if entry is None:
        # Never notified: only firing alerts are worth a first message.
        return bool(firing_set)
    if not entry.is_firing_subset(firing_set):
        return True
    if not firing_set:
        # "All resolved" is sent whatever send_resolved says, so that the log's firing
        # set gets cleared; if the log had nothing firing either, the receiver never
        # heard of these alerts and there is nothing to say.
        return bool(entry.firing_alerts)
    if send_resolved and not entry.is_resolved_subset(resolved):
        return True
    # Nothing changed: repeat only once the last send is strictly older than the interval.
    return entry.timestamp < now - repeat_interval
