"""The in-memory alert store (Alertmanager's ``provider/mem``), spec §2.2.

Rules:

* One alert per fingerprint. ``put`` merges an incoming alert with the stored one by
  :func:`daemon.alert.merge` (which replaces it when the activity ranges do not overlap).
* ``put`` returns every stored result, resolved alerts and unchanged re-posts
  included: the owner (:class:`daemon.instance.Instance`) hands them all to the
  inhibitor and the dispatcher.
* Nothing is persisted; ``gc`` drops alerts resolved at ``now`` and returns them so the
  owner can drop their status markers too.

Pure: no trio, no I/O. Memory matters (a benchmark holds 100k alerts): the store holds
only the fingerprint map and never wraps an alert in a per-alert object of its own.
"""

from __future__ import annotations

import builtins
import gc
from collections.abc import Callable, Iterable, Iterator

from daemon.alert import Alert, merge
from daemon.clock import Clock

#: The states ``alertmanager_alerts{state}`` always exposes, even at zero.
ALERT_STATES = ("active", "suppressed", "unprocessed")

#: Collector thresholds for a process that keeps many long-lived alerts (see tune_gc).
GC_THRESHOLDS = (10_000, 10, 100)


def tune_gc() -> None:
    """Tune CPython's cyclic collector for a daemon holding a large alert store.

    Every posted alert allocates a few dicts, so with the default thresholds (700, 10,
    10) the collector runs every few requests and its older generations re-walk every
    stored alert; in the ingest benchmark that is up to a third of the daemon's CPU.
    Ingest creates no reference cycles, so collecting less often costs no memory worth
    counting. ``gc.freeze()`` also moves what start-up built (modules, config,
    templates) out of the collector's sight for good. Call once, from the composition
    root, after start-up: it changes process-wide state.
    """
    gc.freeze()
    gc.set_threshold(*GC_THRESHOLDS)


class AlertStore:
    """Fingerprint → alert, with merge-on-put."""

    # __weakref__: the API keeps its encoding cache per store, weakly.
    __slots__ = ("__weakref__", "_alerts", "_clock")

    def __init__(self, clock: Clock) -> None:
        self._clock = clock
        self._alerts: dict[int, Alert] = {}

    def put(self, alerts: Iterable[Alert], now: int | None = None) -> builtins.list[Alert]:
        """Merge each alert into the store; returns the stored results, in order."""
        if now is None:
            now = self._clock.now()
        stored = self._alerts
        results = []
        for alert in alerts:
            old = stored.get(alert.fingerprint)
            if old is not None:
                alert = merge(old, alert, now)
            stored[alert.fingerprint] = alert
            results.append(alert)
        return results

    def get(self, fingerprint: int) -> Alert | None:
        return self._alerts.get(fingerprint)

    def __iter__(self) -> Iterator[Alert]:
        # A copy, so callers may put or gc while iterating.
        return iter(list(self._alerts.values()))

    def list(self) -> list[Alert]:
        return list(self._alerts.values())

    def __len__(self) -> int:
        return len(self._alerts)

    def gc(self, now: int) -> builtins.list[Alert]:
        """Delete and return the alerts resolved at ``now`` (``endsAt`` set and ``<= now``)."""
        gone = [a for a in self._alerts.values() if a.resolved(now)]
        for alert in gone:
            del self._alerts[alert.fingerprint]
        return gone

    def count_by_state(
        self, state_of: Callable[[Alert], str], now: int
    ) -> builtins.list[tuple[tuple[str], float]]:
        """``alertmanager_alerts{state}`` samples: unresolved alerts counted by ``state_of``.

        Shaped for :func:`daemon.metrics.register_callback`; every state in
        :data:`ALERT_STATES` is present, zero when empty.
        """
        counts = dict.fromkeys(ALERT_STATES, 0)
        for alert in self._alerts.values():
            if alert.resolved(now):
                continue
            state = state_of(alert)
            counts[state] = counts.get(state, 0) + 1
        return [((state,), float(n)) for state, n in counts.items()]
