"""The alert and group listings work in bounded steps, so a big store cannot stall the loop."""

from collections.abc import Sequence

from daemon.alert import Alert
from daemon.api import AlertStatus
from daemon.api import query as query_mod
from daemon.api.encoding import body
from daemon.api.postable import run_steps
from daemon.api.query import (
    LIST_STEP_ALERTS,
    AlertQuery,
    list_alerts_steps,
    list_groups_steps,
    parse_filters,
    parse_receiver,
)
from daemon.dispatch.snapshot import GroupSnapshot
from daemon.store import AlertStore

NOW = 1_700_000_000 * 10**9
S = 10**9


class FixedClock:
    """Wall time standing still at NOW."""

    def now(self) -> int:
        return NOW


class CountingBackend:
    """Groups of alerts, counting the status look-ups (one per alert and request)."""

    def __init__(self, groups: Sequence[GroupSnapshot]) -> None:
        self._groups = list(groups)
        self.store = AlertStore(FixedClock())
        self.store.put([a for g in groups for a in g.alerts], NOW)
        self.lookups = 0

    def groups(self) -> list[GroupSnapshot]:
        return self._groups

    def alert_status(self, alert: Alert, now: int) -> AlertStatus:
        self.lookups += 1
        return AlertStatus()

    def receivers_for(self, labels: object) -> list[str]:
        return ["sink"]


def _backend(groups: int, per_group: int) -> CountingBackend:
    snapshots = []
    for g in range(groups):
        alerts = tuple(
            Alert({"alertname": f"G{g}", "i": str(i)}, {}, NOW - S, NOW + 300 * S, "", NOW)
            for i in range(per_group)
        )
        snapshots.append(
            GroupSnapshot("sink", "{}", f"{{}}:{{alertname=G{g}}}", {"alertname": f"G{g}"}, alerts)
        )
    return CountingBackend(snapshots)


def _most_lookups_per_step(backend: CountingBackend, steps: object) -> tuple[int, int]:
    """The most status look-ups between two yields, and how many yields there were."""
    worst = yields = 0
    while True:
        before = backend.lookups
        try:
            next(steps)  # type: ignore[call-overload]
        except StopIteration:
            return max(worst, backend.lookups - before), yields
        yields += 1
        worst = max(worst, backend.lookups - before)


def test_group_listing_yields_every_few_alerts() -> None:
    """GET groups over 5,000 alerts yields at least every LIST_STEP_ALERTS alerts."""
    backend = _backend(50, 100)
    for query in (AlertQuery(), AlertQuery(filters=parse_filters(["i=~1.*"]))):
        backend.lookups = 0
        worst, yields = _most_lookups_per_step(backend, list_groups_steps(backend, query, NOW))
        assert backend.lookups == 5_000
        assert worst <= LIST_STEP_ALERTS
        assert yields >= 5_000 // LIST_STEP_ALERTS


def test_alert_listing_yields_every_few_alerts() -> None:
    """GET alerts over 5,000 alerts yields at least every LIST_STEP_ALERTS alerts."""
    backend = _backend(50, 100)
    worst, yields = _most_lookups_per_step(backend, list_alerts_steps(backend, AlertQuery(), NOW))
    assert backend.lookups == 5_000
    assert worst <= LIST_STEP_ALERTS
    assert yields >= 5_000 // LIST_STEP_ALERTS


def test_group_listing_is_the_same_cached_or_not() -> None:
    """A second listing, served from cached fragments, is byte for byte the first."""
    backend = _backend(3, 5)
    first = body(run_steps(list_groups_steps(backend, AlertQuery(), NOW)))
    second = body(run_steps(list_groups_steps(backend, AlertQuery(), NOW)))
    assert first == second
    assert first.startswith(b'[{"alerts":[{"annotations":{}')
    assert first.endswith(b'"labels":{"alertname":"G2"},"receiver":{"name":"sink"}}]\n')


def test_each_store_keeps_its_own_encodings() -> None:
    """Listing a small tenant's store does not drop a big one's cached encodings."""
    big, small = _backend(20, 100), _backend(1, 2)
    run_steps(list_groups_steps(big, AlertQuery(), NOW))
    cached = query_mod._fragments_of(big.store)
    assert len(cached) == 2_000
    run_steps(list_alerts_steps(small, AlertQuery(), NOW))
    run_steps(list_groups_steps(small, AlertQuery(), NOW))
    assert query_mod._fragments_of(big.store) is cached
    assert len(cached) == 2_000
    assert len(query_mod._fragments_of(small.store)) == 2


def test_filtered_listing_keeps_the_other_encodings() -> None:
    """A groups listing filtered down to nothing keeps the store's cached encodings."""
    backend = _backend(20, 100)
    run_steps(list_groups_steps(backend, AlertQuery(), NOW))
    run_steps(list_groups_steps(backend, AlertQuery(receiver=parse_receiver("none")), NOW))
    assert len(query_mod._fragments_of(backend.store)) == 2_000
