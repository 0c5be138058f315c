"""Aggregation-group timing, flush copies and cleanup, and alert order (spec §3.3, §3.4, §3.6)."""

import functools
import itertools

import attrs
from hypothesis import given
from hypothesis import strategies as st

from daemon.alert import Alert
from daemon.clock import NS_PER_SECOND, ZERO_TIME
from daemon.dispatch.group import AggregationGroup, _zeroed, alert_cmp, sort_alerts

S = NS_PER_SECOND
T0 = 1_700_000_000 * S


def _alert(
    labels: dict[str, str], start: int = T0, end: int = T0 + 300 * S, updated: int = T0
) -> Alert:
    return Alert(dict(labels), {}, start, end, "", updated)


def _group(now: float = 100.0, gw: int = 30, gi: int = 300) -> AggregationGroup:
    return AggregationGroup.create("{}:{}", {}, gw * S, gi * S, now)


def test_first_flush_is_due_group_wait_after_creation() -> None:
    """A new group is due exactly group_wait after it was created, not before."""
    g = _group(now=100.0, gw=30)
    g.insert(_alert({"a": "1"}), T0)
    assert not g.due(129.9)
    assert g.due(130.0)


def test_tick_rearms_group_interval_ahead_and_marks_flushed() -> None:
    """A tick moves the next flush group_interval past the tick time."""
    g = _group(now=100.0, gw=30, gi=300)
    g.tick(130.0)
    assert g.has_flushed
    assert g.next_flush_at == 430.0
    assert not g.due(429.0)


def test_old_starts_at_asks_for_an_immediate_flush_before_first_flush() -> None:
    """An alert older than group_wait makes a never-flushed group flush now."""
    g = _group(gw=30)
    assert g.insert(_alert({"a": "1"}, start=T0 - 31 * S), T0) is True
    g.expedite(101.0)
    assert g.due(101.0)


def test_recent_starts_at_waits_for_group_wait() -> None:
    """An alert whose startsAt + group_wait is not yet past does not expedite the flush."""
    g = _group(gw=30)
    assert g.insert(_alert({"a": "1"}, start=T0 - 30 * S), T0) is False
    assert g.insert(_alert({"a": "2"}, start=T0 - 5 * S), T0) is False


def test_old_starts_at_after_first_flush_waits_for_next_tick() -> None:
    """Once the group has flushed, even an old alert waits for the next group_interval tick."""
    g = _group(gw=30)
    g.tick(130.0)
    assert g.insert(_alert({"a": "1"}, start=T0 - 3600 * S), T0) is False


def test_empty_group_has_nothing_to_flush() -> None:
    """begin_flush on an empty group returns None and leaves it idle."""
    g = _group()
    assert g.begin_flush(T0) is None
    assert not g.flushing


def test_flush_copies_zero_firing_ends_at_and_keep_resolved_ends_at() -> None:
    """Firing copies carry ZERO_TIME as endsAt; resolved copies keep theirs; stored alerts stay."""
    g = _group()
    firing = _alert({"a": "1"}, end=T0 + 60 * S)
    resolved = _alert({"a": "2"}, end=T0 - S)
    g.insert(firing, T0)
    g.insert(resolved, T0)
    planned = g.begin_flush(T0)
    assert planned is not None
    alerts, snap = planned
    by_label = {a.labels["a"]: a for a in alerts}
    assert by_label["1"].ends_at == ZERO_TIME
    assert by_label["2"].ends_at == T0 - S
    assert snap.resolved == ((resolved.fingerprint, T0),)
    assert g.alerts[firing.fingerprint].ends_at == T0 + 60 * S
    assert g.flushing and not g.due(10_000.0)


def test_resolved_at_boundary_counts_as_resolved() -> None:
    """An alert whose endsAt equals now is resolved in the flush (endsAt <= now)."""
    g = _group()
    g.insert(_alert({"a": "1"}, end=T0), T0)
    planned = g.begin_flush(T0)
    assert planned is not None
    assert planned[0][0].ends_at == T0


def test_successful_flush_removes_unchanged_resolved_alerts_only() -> None:
    """After success, resolved alerts go, firing ones and ones re-posted during the flush stay."""
    g = _group()
    firing = _alert({"a": "1"})
    gone = _alert({"a": "2"}, end=T0 - S)
    reposted = _alert({"a": "3"}, end=T0 - S)
    for a in (firing, gone, reposted):
        g.insert(a, T0)
    planned = g.begin_flush(T0)
    assert planned is not None
    g.insert(_alert({"a": "3"}, end=T0 + 300 * S, updated=T0 + S), T0 + S)
    g.finish_flush(planned[1], success=True)
    assert set(g.alerts) == {firing.fingerprint, reposted.fingerprint}
    assert not g.flushing


def test_failed_flush_keeps_resolved_alerts() -> None:
    """After a failed flush the resolved alerts remain and are offered again next time."""
    g = _group()
    gone = _alert({"a": "2"}, end=T0 - S)
    g.insert(gone, T0)
    planned = g.begin_flush(T0)
    assert planned is not None
    g.finish_flush(planned[1], success=False)
    assert set(g.alerts) == {gone.fingerprint}
    again = g.begin_flush(T0 + S)
    assert again is not None and [a.fingerprint for a in again[0]] == [gone.fingerprint]


def test_insert_replaces_previous_copy() -> None:
    """Re-inserting an alert with the same labels replaces it rather than adding one."""
    g = _group()
    g.insert(_alert({"a": "1"}, updated=T0), T0)
    g.insert(_alert({"a": "1"}, updated=T0 + S), T0)
    assert len(g) == 1
    assert next(iter(g.alerts.values())).updated_at == T0 + S


def test_observed_notification_order() -> None:
    """job first, then instance, then alerts without job: the order Alertmanager showed."""
    a = _alert({"job": "j1"})
    b = _alert({"job": "j2", "instance": "a"})
    c = _alert({"job": "j2", "instance": "b"})
    d = _alert({"alertname": "x"})
    assert sort_alerts([d, c, b, a]) == [a, b, c, d]


def test_labelset_before_fallback() -> None:
    """Without job/instance: fewer labels first, then a missing name sorts first, then values."""
    one = _alert({"z": "1"})
    two_ac = _alert({"a": "1", "c": "1"})
    two_bc = _alert({"b": "1", "c": "1"})
    two_bc2 = _alert({"b": "1", "c": "2"})
    assert sort_alerts([two_ac, two_bc2, two_bc, one]) == [one, two_bc, two_bc2, two_ac]


def test_instance_only_and_value_compare() -> None:
    """Having instance beats lacking it; equal job falls through to instance; values compare."""
    with_instance = _alert({"instance": "b", "zz": "1", "yy": "1"})
    without = _alert({"a": "1"})
    assert alert_cmp(with_instance, without) == -1
    assert alert_cmp(without, with_instance) == 1
    assert (
        alert_cmp(_alert({"job": "x", "instance": "a"}), _alert({"job": "x", "instance": "b"}))
        == -1
    )
    assert alert_cmp(_alert({"a": "1"}), _alert({"a": "1"})) == 0


def test_view_is_sorted_and_follows_changes() -> None:
    """The group view is in notification order and reflects inserts and removals."""
    g = _group()
    g.insert(_alert({"job": "b"}), T0)
    g.insert(_alert({"job": "a"}), T0)
    assert [a.labels["job"] for a in g.view()] == ["a", "b"]
    g.insert(_alert({"job": "0", "x": "y"}, end=T0 - S), T0)
    assert [a.labels["job"] for a in g.view()] == ["0", "a", "b"]
    planned = g.begin_flush(T0)
    assert planned is not None
    g.finish_flush(planned[1], success=True)
    assert [a.labels["job"] for a in g.view()] == ["a", "b"]


_label_sets = st.dictionaries(
    st.sampled_from(["job", "instance", "a", "b", "c"]),
    st.sampled_from(["", "1", "2", "x"]),
    max_size=4,
)


@given(st.lists(_label_sets, max_size=8, unique_by=lambda d: tuple(sorted(d.items()))))
def test_order_does_not_depend_on_input_order(label_sets: list[dict[str, str]]) -> None:
    """Distinct label sets sort the same from any starting order (Go lists groups from a map)."""
    alerts = [_alert(ls) for ls in label_sets]
    forward = [a.labels for a in sort_alerts(alerts)]
    backward = [a.labels for a in sort_alerts(list(reversed(alerts)))]
    assert forward == backward
    for x, y in itertools.pairwise(forward):
        assert alert_cmp(_alert(x), _alert(y)) == -1


@given(
    st.sampled_from([("job", "instance", "a"), ("a", "b"), ("instance", "c"), ("job",)]),
    st.lists(st.lists(st.sampled_from(["", "1", "2", "x", "é"]), min_size=3, max_size=3)),
)
def test_same_names_fast_sort_equals_comparator_sort(
    names: tuple[str, ...], rows: list[list[str]]
) -> None:
    """With one label-name set throughout, the key sort gives the comparator's stable order."""
    alerts = [_alert(dict(zip(names, row, strict=False))) for row in rows]
    expected = sorted(alerts, key=functools.cmp_to_key(alert_cmp))
    assert [id(a) for a in sort_alerts(alerts)] == [id(a) for a in expected]


def test_zeroed_copy_carries_every_field() -> None:
    """The flush's firing copy passes every Alert field (a new field must be added there)."""
    assert [f.name for f in attrs.fields(Alert)] == [
        "labels",
        "annotations",
        "starts_at",
        "ends_at",
        "generator_url",
        "updated_at",
        "timeout",
        "fingerprint",
    ]
    alert = Alert({"a": "1"}, {"n": "v"}, 5, 10**19, "http://g", updated_at=7, timeout=True)
    copy = _zeroed(alert)
    assert attrs.asdict(copy) == attrs.asdict(alert) | {"ends_at": ZERO_TIME}
