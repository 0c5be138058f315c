"""Routing tree: matching, inheritance as resolved, route keys, ids, group keys (spec §3.1, §3.2)."""

import subprocess
from pathlib import Path

import pytest

from daemon.config.model import Route
from daemon.dispatch.route import RouteNode, labels_string
from daemon.gocompat.strconv import go_quote
from daemon.matcher import Matcher, parse_matchers, sort_matchers


def _m(text: str) -> tuple[Matcher, ...]:
    return tuple(sort_matchers(parse_matchers(text)))


def _tree() -> RouteNode:
    return RouteNode.build(
        Route(
            receiver="default",
            group_by=("alertname",),
            routes=(
                Route(receiver="team-a", matchers=_m('{team="a"}'), group_by=("alertname",)),
                Route(
                    receiver="team-b",
                    matchers=_m('{team="b"}'),
                    continue_=True,
                    group_by=("alertname",),
                    routes=(
                        Route(
                            receiver="b-crit",
                            matchers=_m('{severity="critical"}'),
                            group_by=("alertname",),
                        ),
                    ),
                ),
                Route(receiver="audit", matchers=_m('{team=~"a|b"}'), group_by=("alertname",)),
                Route(receiver="never", matchers=_m('{team="b"}'), group_by=("alertname",)),
            ),
        )
    )


def _receivers(nodes: list[RouteNode]) -> list[str]:
    return [n.receiver for n in nodes]


def test_parent_is_used_only_when_no_child_matches() -> None:
    """An alert no child matches goes to the root, and only there."""
    assert _receivers(_tree().match({"alertname": "X", "team": "z"})) == ["default"]


def test_first_matching_child_without_continue_stops_the_walk() -> None:
    """team=a matches child 0 (no continue), so the later audit route is not visited."""
    assert _receivers(_tree().match({"team": "a"})) == ["team-a"]


def test_continue_lets_later_siblings_match() -> None:
    """team=b matches a continue route, then audit; the walk stops after audit."""
    assert _receivers(_tree().match({"team": "b"})) == ["team-b", "audit"]


def test_deepest_match_replaces_its_parent() -> None:
    """A matching grandchild is the result instead of its parent, and continue still applies."""
    got = _receivers(_tree().match({"team": "b", "severity": "critical"}))
    assert got == ["b-crit", "audit"]


def test_missing_label_reads_as_empty_string() -> None:
    """foo="" matches absence and foo!="" requires presence."""
    root = RouteNode.build(
        Route(
            receiver="r",
            routes=(
                Route(receiver="absent", matchers=_m('{foo=""}')),
                Route(receiver="present", matchers=_m('{foo!=""}')),
            ),
        )
    )
    assert _receivers(root.match({})) == ["absent"]
    assert _receivers(root.match({"foo": "x"})) == ["present"]


def test_route_keys_and_ids() -> None:
    """Keys are matcher-set paths; ids add per-level child indexes and are unique."""
    root = _tree()
    nodes = list(root.walk())
    assert [n.key for n in nodes] == [
        "{}",
        '{}/{team="a"}',
        '{}/{team="b"}',
        '{}/{team="b"}/{severity="critical"}',
        '{}/{team=~"a|b"}',
        '{}/{team="b"}',
    ]
    assert [n.id for n in nodes] == [
        "{}",
        '{}/{team="a"}/0',
        '{}/{team="b"}/1',
        '{}/{team="b"}/{severity="critical"}/1/0',
        '{}/{team=~"a|b"}/2',
        '{}/{team="b"}/3',
    ]
    assert len({n.id for n in nodes}) == len(nodes)


def test_route_key_sorts_matchers_and_joins_without_space() -> None:
    """Several matchers are sorted (name, value, type) and joined by a bare comma."""
    root = RouteNode.build(
        Route(receiver="r", routes=(Route(receiver="c", matchers=_m('{b=~"x", a!="1", a="1"}')),))
    )
    assert root.children[0].key == '{}/{a="1",a!="1",b=~"x"}'


def test_group_keys_match_observed_alertmanager_keys() -> None:
    """Group keys equal those the real Alertmanager 0.25 produced (spec §3.2)."""
    root = RouteNode.build(
        Route(
            receiver="default",
            group_by=("alertname",),
            routes=(
                Route(receiver="b", matchers=_m('{team="b"}'), group_by=("alertname",)),
                Route(receiver="t", matchers=_m('{team="trunc"}'), group_by_all=True),
            ),
        )
    )
    cases = [
        ({"alertname": "A1", "instance": "x"}, '{}:{alertname="A1"}'),
        ({"alertname": "A3", "team": "b"}, '{}/{team="b"}:{alertname="A3"}'),
        (
            {"alertname": "T1", "i": "1", "team": "trunc"},
            '{}/{team="trunc"}:{alertname="T1", i="1", team="trunc"}',
        ),
    ]
    for labels, want in cases:
        [node] = root.match(labels)
        assert node.group_key(node.group_labels(labels)) == want


def test_group_labels_skip_absent_names_and_empty_group_by_groups_all_together() -> None:
    """Missing group_by labels are absent from the group labels; no group_by gives {}."""
    grouped = RouteNode.build(Route(receiver="r", group_by=("alertname", "cluster")))
    assert grouped.group_labels({"alertname": "A", "x": "1"}) == {"alertname": "A"}
    ungrouped = RouteNode.build(Route(receiver="r"))
    assert ungrouped.group_labels({"alertname": "A"}) == {}
    assert ungrouped.group_key({}) == "{}:{}"


def test_group_label_values_are_go_quoted() -> None:
    """Quotes, backslashes and control characters are escaped as Go's %q does."""
    assert go_quote('a"b\\c\nd\te') == '"a\\"b\\\\c\\nd\\te"'
    assert go_quote("\x01\x7f") == '"\\x01\\x7f"'
    assert go_quote("é ü") == '"é ü"'
    assert go_quote("\u00a0\u200b") == '"\\u00a0\\u200b"'
    assert labels_string({"b": "2", "a": 'x"y'}) == '{a="x\\"y", b="2"}'


def test_resolved_inheritance_is_used_as_given() -> None:
    """Each node uses its own (already inherited) receiver, group_by and timers."""
    root = RouteNode.build(
        Route(
            receiver="default",
            group_by=("alertname",),
            routes=(Route(receiver="default", matchers=_m('{x="1"}'), group_by=("alertname",)),),
        )
    )
    [node] = root.match({"x": "1", "alertname": "A", "other": "o"})
    assert node is root.children[0]
    assert node.receiver == "default"
    assert node.group_labels({"x": "1", "alertname": "A"}) == {"alertname": "A"}


_AMTOOL_CONFIG = """
route:
  receiver: default
  group_by: [alertname]
  routes:
    - receiver: team-a
      matchers: ['team="a"']
    - receiver: team-b
      matchers: ['team="b"']
      continue: true
      routes:
        - receiver: b-crit
          matchers: ['severity="critical"']
    - receiver: audit
      matchers: ['team=~"a|b"']
    - receiver: never
      matchers: ['team="b"']
receivers:
  - name: default
  - name: team-a
  - name: team-b
  - name: b-crit
  - name: audit
  - name: never
"""


@pytest.mark.alertmanager
def test_matching_agrees_with_amtool(tmp_path: Path) -> None:
    """For several label sets our tree routes to the receivers amtool 0.25 reports."""
    config = tmp_path / "am.yml"
    config.write_text(_AMTOOL_CONFIG)
    cases = [
        {"alertname": "X", "team": "z"},
        {"team": "a"},
        {"team": "b"},
        {"team": "b", "severity": "critical"},
        {"team": "a", "severity": "critical"},
        {},
    ]
    root = _tree()
    for labels in cases:
        args = [f"{k}={v}" for k, v in labels.items()]
        out = subprocess.run(
            ["amtool", "config", "routes", "test", f"--config.file={config}", *args],
            capture_output=True,
            text=True,
            check=True,
            timeout=30,
        ).stdout.strip()
        assert ",".join(_receivers(root.match(labels))) == out, labels
