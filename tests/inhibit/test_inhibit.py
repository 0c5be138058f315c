"""The pure inhibitor: spec §7 behaviours and the equal-label index against a brute force."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from hypothesis import given, settings
from hypothesis import strategies as st

from daemon.alert import Alert, format_fingerprint
from daemon.config.model import InhibitRule
from daemon.inhibit import Inhibitor
from daemon.matcher import Matcher, MatchType, matches_all
from tests.inhibit.conftest import NOW, S, alert, rules

TEAM_RULE = """\
  - source_matchers: [alertname="X"]
    target_matchers: [team="t"]
    equal: [team]
"""

ZONE_RULE = """\
  - source_match: {alertname: S}
    target_match: {alertname: T}
    equal: [zone]
"""


def inhibitor_with(rule_yaml: str, *sources: Alert) -> Inhibitor:
    inh = Inhibitor(rules(rule_yaml))
    for source in sources:
        inh.ingest(source)
    return inh


def judge(inh: Inhibitor, labels: Mapping[str, str], now: int = NOW) -> str | None:
    return inh.inhibited_by(labels, alert(dict(labels)).fingerprint, now)


def test_two_sided_alerts_do_not_inhibit_each_other() -> None:
    """Alerts matching both sides are not inhibited by each other, but a target-only one is."""
    x1 = alert({"alertname": "X", "team": "t"})
    x2 = alert({"alertname": "X", "team": "t", "i": "2"})
    inh = inhibitor_with(TEAM_RULE, x1, x2)
    assert judge(inh, x1.labels) is None
    assert judge(inh, x2.labels) is None
    assert judge(inh, {"alertname": "Y", "team": "t"}) == x1.fingerprint_hex


def test_two_sided_alert_is_not_inhibited_by_itself() -> None:
    """A lone alert matching source and target of a rule does not inhibit itself."""
    x = alert({"alertname": "X", "team": "t"})
    inh = inhibitor_with(TEAM_RULE, x)
    assert judge(inh, x.labels) is None


def test_two_sided_target_is_inhibited_by_source_only_alert() -> None:
    """The exclusion only skips sources that also match the target side."""
    inh_yaml = """\
  - source_matchers: [severity="critical"]
    target_matchers: [team="t"]
"""
    source = alert({"severity": "critical", "team": "other"})
    inh = inhibitor_with(inh_yaml, source)
    assert judge(inh, {"severity": "critical", "team": "t"}) == source.fingerprint_hex


def test_missing_equal_label_on_both_sides_counts_as_equal() -> None:
    """With equal [zone], a target without zone is inhibited by a source without zone only."""
    source = alert({"alertname": "S"})
    inh = inhibitor_with(ZONE_RULE, source)
    assert judge(inh, {"alertname": "T"}) == source.fingerprint_hex
    assert judge(inh, {"alertname": "T", "zone": "z1"}) is None


def test_equal_label_values_must_match() -> None:
    """Every equal label must have the same value on source and target."""
    inh_yaml = """\
  - source_matchers: [alertname="S"]
    target_matchers: [alertname="T"]
    equal: [dc, zone]
"""
    source = alert({"alertname": "S", "dc": "a", "zone": "1"})
    inh = inhibitor_with(inh_yaml, source)
    assert judge(inh, {"alertname": "T", "dc": "a", "zone": "1"}) == source.fingerprint_hex
    assert judge(inh, {"alertname": "T", "dc": "a", "zone": "2"}) is None
    assert judge(inh, {"alertname": "T", "dc": "a"}) is None
    # An empty value is the same as a missing label (posting drops them anyway).
    empty = alert({"alertname": "S", "dc": "b"})
    inh.ingest(empty)
    assert judge(inh, {"alertname": "T", "dc": "b", "zone": ""}) == empty.fingerprint_hex


def test_resolved_source_does_not_inhibit() -> None:
    """Only sources still firing at ``now`` inhibit, judged by their endsAt."""
    source = alert({"alertname": "S"}, ends_at=NOW + 60 * S)
    inh = inhibitor_with(ZONE_RULE, source)
    assert judge(inh, {"alertname": "T"}, NOW) == source.fingerprint_hex
    assert judge(inh, {"alertname": "T"}, NOW + 60 * S) is None
    already = inhibitor_with(ZONE_RULE, alert({"alertname": "S"}, ends_at=NOW))
    assert judge(already, {"alertname": "T"}) is None


def test_reposted_source_replaces_cached_copy() -> None:
    """A re-post (resolving, then firing again) replaces the cached source by fingerprint."""
    inh = inhibitor_with(ZONE_RULE, alert({"alertname": "S"}))
    inh.ingest(alert({"alertname": "S"}, ends_at=NOW - S))
    assert judge(inh, {"alertname": "T"}) is None
    assert inh.source_count() == 1
    refiring = alert({"alertname": "S"}, ends_at=NOW + 300 * S)
    inh.ingest(refiring)
    assert judge(inh, {"alertname": "T"}) == refiring.fingerprint_hex
    assert inh.source_count() == 1


def test_silenced_source_still_inhibits() -> None:
    """The inhibitor knows nothing of silences: every stored source counts."""
    # The pipeline-level version (a silence stage dropping the source) is in
    # tests/notify/test_stages.py; here: nothing but ingest decides.
    source = alert({"alertname": "S", "silenced": "yes"})
    inh = inhibitor_with(ZONE_RULE, source)
    assert judge(inh, {"alertname": "T"}) == source.fingerprint_hex


def test_target_matchers_must_match() -> None:
    """A source never inhibits alerts that the rule's target side does not match."""
    inh = inhibitor_with(ZONE_RULE, alert({"alertname": "S"}))
    assert judge(inh, {"alertname": "U"}) is None
    assert judge(inh, {"alertname": "S"}) is None


def test_only_alerts_matching_source_side_are_cached() -> None:
    """Ingesting non-source alerts caches nothing, so they inhibit nothing."""
    inh = inhibitor_with(ZONE_RULE, alert({"alertname": "T"}), alert({"alertname": "s"}))
    assert inh.source_count() == 0
    assert judge(inh, {"alertname": "T"}) is None


def test_regex_source_matchers_are_anchored() -> None:
    """source_match_re matches whole values only."""
    inh_yaml = """\
  - source_match_re: {alertname: "Node.*"}
    target_match: {alertname: T}
"""
    inh = inhibitor_with(inh_yaml, alert({"alertname": "MyNodeDown"}))
    assert judge(inh, {"alertname": "T"}) is None
    down = alert({"alertname": "NodeDown"})
    inh.ingest(down)
    assert judge(inh, {"alertname": "T"}) == down.fingerprint_hex


def test_first_rule_with_inhibiting_source_wins() -> None:
    """Rules are tried in config order; a rule without a live source falls through."""
    inh_yaml = """\
  - source_matchers: [alertname="A"]
    target_matchers: [alertname="T"]
  - source_matchers: [alertname="B"]
    target_matchers: [alertname="T"]
"""
    a = alert({"alertname": "A"}, ends_at=NOW - S)
    b = alert({"alertname": "B"})
    inh = inhibitor_with(inh_yaml, a, b)
    assert judge(inh, {"alertname": "T"}) == b.fingerprint_hex
    a_live = alert({"alertname": "A"})
    inh.ingest(a_live)
    assert judge(inh, {"alertname": "T"}) == a_live.fingerprint_hex


def test_gc_drops_resolved_sources_only() -> None:
    """gc removes sources resolved at ``now`` and keeps the firing ones inhibiting."""
    gone = alert({"alertname": "S", "n": "1"}, ends_at=NOW - S)
    later = alert({"alertname": "S", "n": "2"}, ends_at=NOW + 10 * S)
    inh = inhibitor_with(ZONE_RULE, gone, later)
    assert inh.gc(NOW) == 1
    assert inh.source_count() == 1
    assert judge(inh, {"alertname": "T"}) == later.fingerprint_hex
    assert inh.gc(NOW + 10 * S) == 1
    assert inh.source_count() == 0
    assert judge(inh, {"alertname": "T"}) is None


def test_marks_follow_the_last_judgement() -> None:
    """inhibited_by records the answer per fingerprint; a later clean answer clears it."""
    source = alert({"alertname": "S"}, ends_at=NOW + 10 * S)
    target = alert({"alertname": "T"})
    inh = inhibitor_with(ZONE_RULE, source)
    assert inh.inhibited_by(target.labels, target.fingerprint, NOW) == source.fingerprint_hex
    assert inh.marked(target.fingerprint) == source.fingerprint_hex
    assert inh.inhibited_by(target.labels, target.fingerprint, NOW + 10 * S) is None
    assert inh.marked(target.fingerprint) is None
    inh.inhibited_by(target.labels, target.fingerprint, NOW)
    inh.forget(target.fingerprint)
    assert inh.marked(target.fingerprint) is None


def test_no_rules_inhibit_nothing() -> None:
    """An inhibitor without rules caches nothing and never inhibits."""
    inh = Inhibitor(())
    inh.ingest(alert({"alertname": "S"}))
    assert inh.source_count() == 0
    assert inh.inhibited_by({"alertname": "T"}, 1, NOW) is None


# --- the index against a brute-force reference ------------------------------------------

NAMES = ["a", "b", "c"]
VALUES = ["", "1", "2"]
FIRING = NOW + S
RESOLVED = NOW - S


def reference(
    rule_list: Sequence[InhibitRule], cached: Mapping[int, Alert], labels: Mapping[str, str]
) -> str | None:
    """Upstream's linear scan over every source, in first-cached order."""
    for rule in rule_list:
        if not matches_all(rule.target_matchers, labels):
            continue
        two_sided = matches_all(rule.source_matchers, labels)
        for source in cached.values():
            if not matches_all(rule.source_matchers, source.labels):
                continue
            if source.resolved(NOW):
                continue
            if any(source.labels.get(n, "") != labels.get(n, "") for n in rule.equal):
                continue
            if two_sided and matches_all(rule.target_matchers, source.labels):
                continue
            return format_fingerprint(source.fingerprint)
    return None


labelsets = st.dictionaries(st.sampled_from(NAMES), st.sampled_from(VALUES[1:]), max_size=3)
matcher_lists = st.lists(
    st.builds(
        Matcher.create,
        st.sampled_from([MatchType.EQUAL, MatchType.NOT_EQUAL, MatchType.REGEXP]),
        st.sampled_from(NAMES),
        st.sampled_from(["", "1", "2", "1|2"]),
    ),
    max_size=2,
)
inhibit_rules = st.builds(
    InhibitRule,
    matcher_lists,
    matcher_lists,
    st.lists(st.sampled_from(NAMES), max_size=3).map(tuple),
)
# Each step ingests an alert (firing or resolved at NOW) or runs gc at NOW.
steps = st.lists(
    st.one_of(
        st.tuples(labelsets, st.sampled_from([FIRING, RESOLVED])),
        st.just(None),
    ),
    max_size=25,
)


@settings(max_examples=300, deadline=None)
@given(st.lists(inhibit_rules, max_size=3), steps, st.lists(labelsets, min_size=1, max_size=8))
def test_index_agrees_with_linear_scan(
    rule_list: list[InhibitRule],
    step_list: list[tuple[dict[str, str], int] | None],
    targets: list[dict[str, str]],
) -> None:
    """The per-rule equal-value index returns exactly what a linear scan over sources would."""
    inh = Inhibitor(rule_list)
    # fingerprint -> latest copy, in first-cached order (dict keeps first insertion).
    cached: dict[int, Alert] = {}
    for step in step_list:
        if step is None:
            inh.gc(NOW)
            for fp in [fp for fp, a in cached.items() if a.resolved(NOW)]:
                del cached[fp]
            continue
        labels, ends_at = step
        stored = alert(labels, ends_at=ends_at)
        inh.ingest(stored)
        if any(matches_all(r.source_matchers, labels) for r in rule_list):
            cached[stored.fingerprint] = stored
    for target in targets:
        fp = alert(target).fingerprint
        assert inh.inhibited_by(target, fp, NOW) == reference(rule_list, cached, target)
