"""The flags' rule files as the intakes use them: kube-events outcomes, per-rule
resolve_after, the workspace map, and errors that say where."""

from __future__ import annotations

from pathlib import Path

import pytest

from daemon.clock import NS_PER_SECOND
from daemon.sources.rulesets import RuleFiles, RulesError

RULE = """
apiVersion: events.kubesphere.io/v1alpha1
kind: Rule
metadata:
  name: {name}
  namespace: kubesphere-logging-system
  labels:
    kubesphere.io/rule-scope: {scope}
    kubesphere.io/workspace: shop-ws
spec:
  rules:
    - name: {name}-backoff
      type: alert
      enable: true
      condition: reason = "BackOff"
      resolve_after: 30m
    - name: {name}-notice
      type: notification
      enable: true
      condition: reason = "BackOff"
"""

EVENT = {
    "involvedObject": {"kind": "Pod", "name": "web-0", "namespace": "shop-prod"},
    "reason": "BackOff",
}


def write(tmp: Path, name: str, scope: str) -> Path:
    path = tmp / f"{name}.yaml"
    path.write_text(RULE.format(name=name, scope=scope))
    return path


def test_event_rules_give_an_alert_and_a_notification_outcome(tmp_path: Path) -> None:
    """One event: the alert outcome with kube-events' labels and the rule's own
    resolve_after in nanoseconds, then the notification outcome."""
    write(tmp_path, "c", "cluster")
    rules = RuleFiles(events=[f"{tmp_path}/*.yaml"]).load()
    alert, notice = rules.events.outcomes(EVENT)
    assert (alert.rule, alert.type, notice.rule, notice.type) == (
        "c-backoff",
        "alert",
        "c-notice",
        "notification",
    )
    assert alert.labels == {
        "alertname": "c-backoff",
        "alerttype": "event",
        "pod": "web-0",
        "namespace": "shop-prod",
    }
    assert alert.resolve_after == 30 * 60 * NS_PER_SECOND
    assert len(rules.events) == 2 and len(rules.audit) == 0


def test_workspace_rules_apply_to_the_namespaces_of_their_workspace(tmp_path: Path) -> None:
    """--events.workspaces-file maps shop-ws to shop-*: its rule matches shop-prod only."""
    rules_dir = tmp_path / "rules"
    rules_dir.mkdir()
    write(rules_dir, "w", "workspace")
    workspaces = tmp_path / "workspaces.yaml"
    workspaces.write_text("shop-ws: ['shop-*']\nother: [default]\n")
    rules = RuleFiles(events=[f"{rules_dir}/*.yaml"], workspaces_file=str(workspaces)).load()
    assert [o.rule for o in rules.events.outcomes(EVENT)] == ["w-backoff", "w-notice"]
    elsewhere = {**EVENT, "involvedObject": {"kind": "Pod", "name": "a", "namespace": "default"}}
    assert rules.events.outcomes(elsewhere) == []


def test_workspace_rules_without_the_map_are_refused(tmp_path: Path) -> None:
    """A workspace-scoped rule with no --events.workspaces-file is a clear error."""
    path = write(tmp_path, "w", "workspace")
    with pytest.raises(RulesError, match=r"--events\.workspaces-file") as caught:
        RuleFiles(events=[str(path)]).load()
    assert str(path) in str(caught.value)


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("shop: default\n", "want a list of namespace globs"),
        ("- a\n", "want a map"),
        ("shop: [1]\n", "is not a glob"),
        ("shop: [\n", ":2: bad YAML"),
    ],
)
def test_bad_workspace_files_name_the_file(tmp_path: Path, text: str, problem: str) -> None:
    """A malformed workspace map is refused, naming the file and the problem."""
    path = tmp_path / "ws.yaml"
    path.write_text(text)
    with pytest.raises(RulesError) as caught:
        RuleFiles(workspaces_file=str(path)).load()
    assert str(path) in str(caught.value) and problem in str(caught.value)
