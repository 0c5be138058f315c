"""The alert store: merge on put, subscribers, GC and state counts (spec §2.2, §2.3)."""

from daemon.alert import Alert
from daemon.clock import NS_PER_SECOND, FixedClock
from daemon.metrics import REGISTRY, register_callback
from daemon.store import AlertStore

S = NS_PER_SECOND
T0 = 1_767_225_600 * S


def _alert(name: str, start: int, end: int, updated: int, timeout: bool = False) -> Alert:
    return Alert({"alertname": name}, {}, start, end, "", updated, timeout)


def _store() -> tuple[AlertStore, FixedClock]:
    clock = FixedClock(T0)
    return AlertStore(clock), clock


def test_put_stores_by_fingerprint() -> None:
    """Alerts are retrievable by fingerprint, iterable and counted."""
    store, _ = _store()
    a, b = _alert("a", T0, T0 + 300 * S, T0), _alert("b", T0, T0 + 300 * S, T0)
    store.put([a, b])
    assert store.get(a.fingerprint) is a
    assert store.get(12345) is None
    assert len(store) == 2
    assert {x.fingerprint for x in store} == {a.fingerprint, b.fingerprint}
    assert sorted(x.labels["alertname"] for x in store.list()) == ["a", "b"]


def test_overlapping_repost_is_merged() -> None:
    """A heartbeat re-post keeps the first startsAt and extends endsAt."""
    store, clock = _store()
    store.put([_alert("a", T0, T0 + 300 * S, T0, timeout=True)])
    clock.advance(60)
    later = T0 + 60 * S
    store.put([_alert("a", later, later + 300 * S, later, timeout=True)])
    (got,) = store.list()
    assert (got.starts_at, got.ends_at, got.updated_at) == (T0, later + 300 * S, later)


def test_non_overlapping_repost_replaces() -> None:
    """A re-post after resolution starts fresh (new startsAt)."""
    store, clock = _store()
    store.put([_alert("a", T0, T0 + 10 * S, T0)])
    clock.advance(60)
    fresh = _alert("a", T0 + 60 * S, T0 + 360 * S, T0 + 60 * S)
    store.put([fresh])
    assert store.list() == [fresh]


def test_put_returns_every_stored_result() -> None:
    """put returns the merged alert of each input, also for resolved ones, in order."""
    store, clock = _store()
    first = store.put([_alert("a", T0, T0 + 300 * S, T0)])
    clock.advance(1)
    second = store.put([_alert("a", T0 + S, T0 + S, T0 + S), _alert("b", T0, T0 + 300 * S, T0)])
    assert [(a.starts_at, a.ends_at) for a in first] == [(T0, T0 + 300 * S)]
    # The resolving re-post is merged: it keeps the first startsAt.
    assert [(a.starts_at, a.ends_at) for a in second] == [(T0, T0 + S), (T0, T0 + 300 * S)]
    assert second[0] is store.get(second[0].fingerprint)


def test_gc_removes_only_resolved() -> None:
    """GC deletes alerts whose endsAt is at or before now and returns them."""
    store, _ = _store()
    firing = _alert("firing", T0, T0 + 300 * S, T0)
    ended = _alert("ended", T0 - 10 * S, T0, T0)
    later = _alert("later", T0, T0 + 10 * S, T0)
    store.put([firing, ended, later])
    assert store.gc(T0) == [ended]
    assert len(store) == 2
    assert store.gc(T0 + 10 * S) == [later]
    assert store.list() == [firing]


def test_count_by_state_skips_resolved_and_feeds_metrics() -> None:
    """State counts cover unresolved alerts, always list every state, and plug into metrics."""
    store, _ = _store()
    store.put(
        [
            _alert("a", T0, T0 + 300 * S, T0),
            _alert("b", T0, T0 + 300 * S, T0),
            _alert("c", T0 - S, T0, T0),
        ]
    )

    def state_of(a: Alert) -> str:
        return "suppressed" if a.labels["alertname"] == "b" else "active"

    samples = store.count_by_state(state_of, T0)
    assert sorted(samples) == [(("active",), 1.0), (("suppressed",), 1.0), (("unprocessed",), 0.0)]
    unregister = register_callback(
        "tocsin_test_store_alerts", "test", ["state"], lambda: store.count_by_state(state_of, T0)
    )
    family = next(f for f in REGISTRY.collect() if f.name == "tocsin_test_store_alerts")
    unregister()
    assert {s.labels["state"]: s.value for s in family.samples} == {
        "active": 1.0,
        "suppressed": 1.0,
        "unprocessed": 0.0,
    }


def test_store_has_no_per_instance_dict() -> None:
    """The store uses slots (memory is benchmarked with 100k alerts)."""
    store, _ = _store()
    assert not hasattr(store, "__dict__")
