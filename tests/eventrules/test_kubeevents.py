"""kube-events Rule files: loading, errors, scopes, first-match per type, and alerts."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from daemon.eventrules.files import RuleFileError
from daemon.eventrules.kubeevents import (
    event_alert,
    format_fields,
    load_event_rules,
    load_workspaces,
)

CLUSTER_RULES = """\
apiVersion: events.kubesphere.io/v1alpha1
kind: Rule
metadata:
  name: b-cluster
  namespace: kubesphere-logging-system
  labels:
    kubesphere.io/rule-scope: cluster
spec:
  rules:
  - name: ContainerBackoff
    condition: type="Warning" and reason="BackOff" and count>3
    labels: {severity: warning}
    annotations:
      message: "%message"
      summary: "Container %involvedObject.name back-off: %reason."
    enable: true
    type: alert
  - name: NeverEnabled
    condition: reason="BackOff"
    type: alert
  - name: PodNotification
    condition: involvedObject.kind="Pod"
    enable: true
    type: notification
"""

SECOND_CLUSTER = """\
apiVersion: events.kubesphere.io/v1alpha1
kind: Rule
metadata:
  name: a-cluster
  namespace: kubesphere-logging-system
  labels: {kubesphere.io/rule-scope: cluster}
spec:
  rules:
  - {name: AnyBackoff, condition: 'reason="BackOff"', enable: true, type: alert, resolve_after: 30m}
"""

NAMESPACE_RULES = """\
apiVersion: v1
kind: List
items:
- apiVersion: events.kubesphere.io/v1alpha1
  kind: Rule
  metadata: {name: shop-rules, namespace: shop}
  spec:
    rules:
    - {name: ShopAll, condition: 'type = "Warning"', enable: true, type: alert}
- apiVersion: events.kubesphere.io/v1alpha1
  kind: Rule
  metadata:
    name: ws-rules
    namespace: kubesphere-logging-system
    labels: {kubesphere.io/rule-scope: workspace, kubesphere.io/workspace: retail}
  spec:
    rules:
    - {name: RetailWarnings, condition: 'type = "Warning"', enable: true, type: alert}
"""


def backoff(namespace: str = "shop", count: int = 5) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Event",
        "metadata": {"name": "web-0.17a", "namespace": namespace},
        "type": "Warning",
        "reason": "BackOff",
        "message": "Back-off restarting failed container",
        "count": count,
        "involvedObject": {
            "kind": "Pod",
            "name": "web-0",
            "namespace": namespace,
            "fieldPath": "spec.containers{app}",
        },
    }


def write(tmp_path: Path, name: str, text: str) -> str:
    path = tmp_path / name
    path.write_text(text)
    return str(path)


def test_first_enabled_match_per_type(tmp_path: Path) -> None:
    """Per type, the first enabled matching rule wins; a rule without enable is off."""
    rules = load_event_rules([write(tmp_path, "r.yaml", CLUSTER_RULES)])
    matches = rules.match(backoff())
    assert [(m.type, m.rule.name) for m in matches] == [
        ("alert", "ContainerBackoff"),
        ("notification", "PodNotification"),
    ]
    assert [(m.type, m.rule.name) for m in rules.match(backoff(count=2))] == [
        ("notification", "PodNotification")
    ]
    assert [r.name for r in rules.all_rules if not r.enable] == ["NeverEnabled"]


def test_order_is_deterministic_by_object_name(tmp_path: Path) -> None:
    """Within a scope, Rule objects go by (namespace, name), whatever the file order."""
    paths = [write(tmp_path, "1.yaml", CLUSTER_RULES), write(tmp_path, "2.yaml", SECOND_CLUSTER)]
    for order in (paths, paths[::-1]):
        rules = load_event_rules(order)
        alert = rules.match(backoff())[0]
        assert alert.rule.name == "AnyBackoff"
        assert alert.rule.resolve_after == 1800.0
        assert alert.rule.cr_name == "a-cluster"


def test_scopes(tmp_path: Path) -> None:
    """Namespace rules apply to their namespace, workspace rules through the map; cluster first."""
    path = write(tmp_path, "ns.yaml", NAMESPACE_RULES)
    rules = load_event_rules([path], {"retail": ["shop*", "store"]})
    assert rules.match(backoff("shop"))[0].rule.name == "RetailWarnings"
    assert rules.match(backoff("store"))[0].rule.name == "RetailWarnings"
    assert rules.match(backoff("other")) == []
    rules = load_event_rules([path], {"retail": ["store"]})
    assert rules.match(backoff("shop"))[0].rule.name == "ShopAll"
    both = load_event_rules([path, write(tmp_path, "c.yaml", SECOND_CLUSTER)], {"retail": ["shop"]})
    assert [m.rule.scope for m in both.match(backoff("shop"))] == ["cluster"]


def test_workspace_rules_need_the_map(tmp_path: Path) -> None:
    """Without the workspace map, a workspace-scoped Rule is refused with a clear error."""
    with pytest.raises(RuleFileError, match=r"need the workspace map \(--events.workspaces-file\)"):
        load_event_rules([write(tmp_path, "ns.yaml", NAMESPACE_RULES)])


def test_broken_files_list_every_problem(tmp_path: Path) -> None:
    """Every problem is reported at once, naming the file, line, rule and position."""
    text = """\
apiVersion: events.kubesphere.io/v1alpha1
kind: Rule
metadata: {name: bad, namespace: kubesphere-logging-system, labels: {kubesphere.io/rule-scope: cluster}}
spec:
  rules:
  - name: Broken
    condition: reason = "x" and
    enable: true
    type: alert
  - name: BadType
    condition: reason = "x"
    type: alarm
  - condition: reason = "x"
    type: alert
  - name: BadRegex
    condition: message regex "("
    type: alert
    resolve_after: soon
---
kind: Rule
apiVersion: events.kubesphere.io/v1alpha1
metadata: {name: noscope, namespace: kubesphere-logging-system}
spec: {rules: []}
"""
    path = write(tmp_path, "bad.yaml", text)
    with pytest.raises(RuleFileError) as caught:
        load_event_rules([path])
    lines = str(caught.value).splitlines()
    assert lines[0] == (
        f"{path}:6: rule kubesphere-logging-system/bad/Broken: condition at position 16: "
        "expected a field name, found the end in 'reason = \"x\" and'"
    )
    assert f"{path}:10: rule kubesphere-logging-system/bad/BadType: type is 'alarm'" in lines[1]
    assert f"{path}:13: rule kubesphere-logging-system/bad/rules[2]: name is missing" == lines[2]
    assert "BadRegex: condition at position 14: bad regular expression" in lines[3]
    assert "BadRegex: resolve_after" in lines[4]
    assert "kubesphere.io/rule-scope is missing" in lines[5]
    assert len(lines) == 6


def test_bad_yaml_names_the_line(tmp_path: Path) -> None:
    """A YAML syntax error names the file and line."""
    path = write(tmp_path, "y.yaml", "kind: Rule\nspec: [\n")
    with pytest.raises(RuleFileError, match=r"y.yaml:3: bad YAML"):
        load_event_rules([path])


def test_globs_and_missing_files(tmp_path: Path) -> None:
    """Globs expand; a named file that is missing is an error."""
    write(tmp_path, "a.yaml", CLUSTER_RULES)
    assert len(load_event_rules([str(tmp_path / "*.yaml")]).rules) == 2
    with pytest.raises(RuleFileError, match="cannot read"):
        load_event_rules([str(tmp_path / "nope.yaml")])


def test_event_alert_labels_and_annotations(tmp_path: Path) -> None:
    """Labels as kube-events builds them, rule labels last; annotations get %field."""
    rule = load_event_rules([write(tmp_path, "r.yaml", CLUSTER_RULES)]).rules[0]
    labels, annotations = event_alert(rule, backoff())
    assert labels == {
        "alertname": "ContainerBackoff",
        "alerttype": "event",
        "pod": "web-0",
        "namespace": "shop",
        "container": "app",
        "severity": "warning",
    }
    assert annotations == {
        "message": "Back-off restarting failed container",
        "summary": "Container web-0 back-off: BackOff.",
    }
    node_event = {
        "involvedObject": {"kind": "Node", "name": "n1", "fieldPath": "spec.initContainers{init}"}
    }
    labels, _ = event_alert(rule, node_event)
    assert labels["node"] == "n1" and labels["container"] == "init" and "namespace" not in labels


@pytest.mark.parametrize(
    ("template", "text"),
    [
        ("%reason", "BackOff"),
        ("count=%count!", "count=5!"),
        ("%involvedObject.name/%involvedObject.kind", "web-0/Pod"),
        ("100% sure", "100 sure"),  # a lone % disappears, as upstream
        ("%nosuch", "<nil>"),
        ("%source.host", ""),  # a core/v1 field Go always has
        ("failed: %reason.", "failed: BackOff."),
        ("%%reason", "BackOff"),
    ],
)
def test_format_fields(template: str, text: str) -> None:
    """Annotation %field substitution follows kube-events' FormatMap."""
    assert format_fields(template, backoff()) == text


def test_index_keeps_the_winner(tmp_path: Path) -> None:
    """With many indexed rules, the winner is still the first in rule order."""
    entries = []
    for i in range(300):
        entries.append(
            f"  - {{name: R{i}, condition: 'reason = \"R{i % 50}\" and count > {i % 7}', enable: true, type: alert}}"
        )
    entries.append("  - {name: Fallback, condition: 'count > 0', enable: true, type: alert}")
    text = (
        "apiVersion: events.kubesphere.io/v1alpha1\nkind: Rule\nmetadata: {name: m, namespace: kubesphere-logging-system, "
        "labels: {kubesphere.io/rule-scope: cluster}}\nspec:\n  rules:\n"
        + "\n".join(entries)
        + "\n"
    )
    rules = load_event_rules([write(tmp_path, "m.yaml", text)])
    for reason in ("R3", "R49", "R7", "other"):
        for count in range(8):
            event = {**backoff(count=count), "reason": reason}
            expected = next((r.name for r in rules.rules if r.condition(event)), None)
            got = [m.rule.name for m in rules.match(event)]
            assert got == ([expected] if expected else [])
    assert len(rules.candidates({**backoff(), "reason": "R3"})) < 20


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("[a]", "want a map of workspace names"),
        ("retail: shop", "workspace 'retail': want a list of namespace globs"),
        ("retail: ['']", "workspace 'retail': '' is not a glob"),
        ("retail: [", "bad YAML"),
    ],
)
def test_workspace_map_errors(tmp_path: Path, text: str, fragment: str) -> None:
    """A malformed workspaces file is refused, naming the file and the problem."""
    path = write(tmp_path, "ws.yaml", text)
    with pytest.raises(RuleFileError, match=r"ws\.yaml") as caught:
        load_workspaces(path)
    assert fragment in str(caught.value)


def test_workspace_map_loads(tmp_path: Path) -> None:
    """``workspace: [globs]`` loads as given; an empty file is an empty map."""
    assert load_workspaces(write(tmp_path, "ws.yaml", "retail: [shop, 'store-*']\n")) == {
        "retail": ["shop", "store-*"]
    }
    assert load_workspaces(write(tmp_path, "empty.yaml", "")) == {}
