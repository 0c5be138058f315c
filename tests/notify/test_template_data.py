"""The template data model (spec §10.1)."""

from __future__ import annotations

from daemon.alert import Alert
from daemon.clock import ZERO_TIME
from daemon.template.data import KV, build_data, quote_meta

NOW = 1_700_000_000 * 10**9


def test_quote_meta_matches_go() -> None:
    """Every Go regexp metacharacter gets a backslash; others are untouched."""
    assert quote_meta(r"a.b+c*d?e(f)g|h[i]j{k}l^m$n\o-p") == (
        r"a\.b\+c\*d\?e\(f\)g\|h\[i\]j\{k\}l\^m\$n\\o-p"
    )


def test_sorted_pairs_alertname_first() -> None:
    """SortedPairs puts alertname first, then names in byte order; helpers follow it."""
    kv = KV({"zone": "z", "alertname": "A", "b": "2"})
    assert kv.SortedPairs().Names() == ["alertname", "b", "zone"]
    assert kv.Names() == ["alertname", "b", "zone"]
    assert kv.Values() == ["A", "2", "z"]
    # Go's KV has no String(): templates print it as a map.
    assert not hasattr(kv, "String")
    assert KV({"b": "1", "a": "2"}).Names() == ["a", "b"]


def test_remove_returns_copy() -> None:
    """Remove drops the given names from a copy and leaves the original alone."""
    kv = KV({"a": "1", "b": "2", "c": "3"})
    assert kv.Remove(["a", "c", "x"]) == {"b": "2"}
    assert isinstance(kv.Remove([]), KV)
    assert kv == {"a": "1", "b": "2", "c": "3"}


def test_build_data_common_and_status() -> None:
    """Common labels/annotations are those equal in all alerts; any firing alert makes it firing."""
    firing = Alert({"alertname": "A", "i": "1", "t": "x"}, {"s": "1", "d": "x"}, NOW, ZERO_TIME)
    resolved = Alert({"alertname": "A", "i": "2", "t": "x"}, {"s": "2"}, NOW, NOW - 1)
    data = build_data("r.1", {"alertname": "A"}, [firing, resolved], "http://am", NOW)
    assert data.Receiver == r"r\.1"
    assert data.Status == "firing"
    assert data.CommonLabels == {"alertname": "A", "t": "x"}
    assert data.CommonAnnotations == {}
    assert data.GroupLabels == {"alertname": "A"}
    assert [a.Status for a in data.Alerts] == ["firing", "resolved"]
    assert [a.Labels["i"] for a in data.Alerts.Firing()] == ["1"]
    assert [a.Labels["i"] for a in data.Alerts.Resolved()] == ["2"]
    assert data.Alerts[0].Fingerprint == firing.fingerprint_hex
    assert data.ExternalURL == "http://am"


def test_build_data_all_resolved_and_empty() -> None:
    """All-resolved alerts give status resolved; no alerts give empty common maps."""
    resolved = Alert({"alertname": "A"}, {}, NOW - 2, NOW - 1)
    assert build_data("r", {}, [resolved], "", NOW).Status == "resolved"
    empty = build_data("r", {}, [], "", NOW)
    assert (empty.CommonLabels, empty.CommonAnnotations, list(empty.Alerts)) == ({}, {}, [])
