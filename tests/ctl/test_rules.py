"""``tocsinctl rules check`` and ``rules test`` over kube-events and kube-auditing files."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from daemon.ctl import main
from tests.integration.processes import run_tocsin, wait_for

EVENT_RULES = """\
apiVersion: events.kubesphere.io/v1alpha1
kind: Rule
metadata:
  name: cluster-rules
  namespace: kubesphere-logging-system
  labels: {kubesphere.io/rule-scope: cluster}
spec:
  rules:
  - name: ContainerBackoff
    condition: type="Warning" and reason="BackOff" and count>3
    labels: {severity: warning}
    annotations: {message: "%message"}
    enable: true
    type: alert
    resolve_after: 1h
  - name: Mixed
    condition: reason="A" or reason="B" and count > 1
    enable: true
    type: alert
  - name: PodEvents
    condition: involvedObject.kind="Pod"
    enable: true
    type: notification
"""

AUDIT_RULES = """\
apiVersion: auditing.kubesphere.io/v1alpha1
kind: Rule
metadata: {name: audit}
spec:
  rules:
  - {name: writes, type: list, list: [create, delete]}
  - {name: spare, type: list, list: [get]}
  - {name: exec, type: macro, macro: 'ObjectRef.Subresource in ("exec", "attach")'}
  - name: attachorexec-pod
    type: rule
    condition: ${exec} or Verb in ${writes} and ObjectRef.Resource = "pods"
    priority: WARNING
    enable: true
"""

BROKEN = """\
apiVersion: events.kubesphere.io/v1alpha1
kind: Rule
metadata: {name: broken, namespace: kubesphere-logging-system, labels: {kubesphere.io/rule-scope: cluster}}
spec:
  rules:
  - {name: One, condition: 'reason = ', enable: true, type: alert}
  - {name: Two, condition: 'reason regex "["', enable: true, type: alert}
"""

EVENT = {
    "apiVersion": "v1",
    "kind": "Event",
    "type": "Warning",
    "reason": "BackOff",
    "count": 7,
    "message": "Back-off restarting failed container",
    "involvedObject": {
        "kind": "Pod",
        "name": "web-0",
        "namespace": "shop",
        "fieldPath": "spec.containers{app}",
    },
}

AUDIT_EVENT = {
    "apiVersion": "audit.k8s.io/v1",
    "kind": "Event",
    "auditID": "1",
    "verb": "create",
    "user": {"username": "admin", "groups": ["system:masters"]},
    "objectRef": {"resource": "pods", "subresource": "exec", "name": "web-0", "namespace": "shop"},
    "requestReceivedTimestamp": "2024-03-01T10:20:30Z",
}


@pytest.fixture
def files(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "events.yaml").write_text(EVENT_RULES)
    (tmp_path / "audit.yaml").write_text(AUDIT_RULES)
    (tmp_path / "broken.yaml").write_text(BROKEN)
    (tmp_path / "event.json").write_text(json.dumps(EVENT))
    (tmp_path / "audit.json").write_text(json.dumps(AUDIT_EVENT))
    return tmp_path


def test_check_warns_about_and_or_and_unused(
    files: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A valid set passes, with a warning per and/or mix and per unused list or macro."""
    assert main(["rules", "check", "events.yaml", "audit.yaml"]) == 0
    out = capsys.readouterr().out
    assert (
        "events.yaml:16: rule kubesphere-logging-system/cluster-rules/Mixed: condition mixes 'and' and 'or'"
        in out
    )
    assert "at position 25" in out
    assert "audit.yaml:9: rule audit/attachorexec-pod: condition mixes" in out
    assert "(expanded from '${exec} or Verb in ${writes} and ObjectRef.Resource = \"pods\"')" in out
    assert "warning: audit.yaml:7: list audit/spare is never used" in out
    assert "kube-events rules: 3 (3 enabled)" in out
    assert out.rstrip().endswith("SUCCESS: 3 warning(s)")


def test_check_shows_every_error(files: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Every broken condition in every file is shown at once, and the exit status is 1."""
    assert main(["rules", "check", "events.yaml", "broken.yaml", "audit.yaml"]) == 1
    out = capsys.readouterr().out
    assert (
        "error: broken.yaml:6: rule kubesphere-logging-system/broken/One: condition at position 9"
        in out
    )
    assert (
        "error: broken.yaml:7: rule kubesphere-logging-system/broken/Two: condition at position 13"
        in out
    )
    assert "FAILED: 2 error(s)" in out


def test_check_is_the_default_and_refuses_other_files(
    files: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """``rules FILE`` checks; a file that is neither kind of Rule is an error."""
    (files / "other.yaml").write_text("apiVersion: v1\nkind: ConfigMap\n")
    assert main(["rules", "other.yaml"]) == 1
    assert (
        "not a kube-events or kube-auditing Rule file (apiVersion 'v1')" in capsys.readouterr().out
    )


def test_check_workspace_rules_need_the_map(
    files: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Workspace-scoped rules are checked against --events.workspaces-file, as the daemon does."""
    (files / "ws.yaml").write_text(
        "apiVersion: events.kubesphere.io/v1alpha1\nkind: Rule\nmetadata:\n  name: ws\n"
        "  namespace: kubesphere-logging-system\n  labels: {kubesphere.io/rule-scope: workspace, "
        "kubesphere.io/workspace: retail}\nspec: {rules: []}\n"
    )
    assert main(["rules", "check", "ws.yaml"]) == 1
    assert "--events.workspaces-file" in capsys.readouterr().out
    (files / "ws-map.yaml").write_text("retail: [shop, 'store-*']\n")
    assert main(["rules", "check", "--events.workspaces-file=ws-map.yaml", "ws.yaml"]) == 0


def test_test_prints_matches_and_alerts(files: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """``rules test`` prints the winning rule per type and its alert, as JSON."""
    assert main(["rules", "test", "--rules=events.yaml", "--event=event.json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["kind"] == "event"
    alert, notification = result["matches"]
    assert alert["rule"] == "ContainerBackoff" and alert["line"] == 9
    assert alert["resolve_after_seconds"] == 3600.0
    assert alert["alert"] == {
        "labels": {
            "alertname": "ContainerBackoff",
            "alerttype": "event",
            "pod": "web-0",
            "namespace": "shop",
            "container": "app",
            "severity": "warning",
        },
        "annotations": {"message": "Back-off restarting failed container"},
    }
    assert notification == {
        "rule": "PodEvents",
        "type": "notification",
        "object": "kubesphere-logging-system/cluster-rules",
        "scope": "cluster",
        "file": "events.yaml",
        "line": 20,
    }


def test_test_audit_event_and_priority(files: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """An audit event goes to the audit rules; the priority floor is the daemon's flag."""
    args = ["rules", "test", "--rules=events.yaml", "--rules=audit.yaml", "--event=audit.json"]
    assert main(args) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["kind"] == "audit"
    assert [m["rule"] for m in result["matches"]] == ["attachorexec-pod"]
    assert (
        result["matches"][0]["alert"]["labels"]["requestReceivedTimestamp"]
        == "2024-03-01 10:20:30 +0000 UTC"
    )
    (files / "info.yaml").write_text(AUDIT_RULES.replace("WARNING", "INFO"))
    assert main(["rules", "test", "--rules=info.yaml", "--event=audit.json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["matches"] == [] and result["below_priority"] == ["attachorexec-pod"]
    assert (
        main(
            [
                *args[:2],
                "--rules=info.yaml",
                "--event=audit.json",
                "--auditing.alerting-priority=INFO",
            ]
        )
        == 0
    )
    assert [m["rule"] for m in json.loads(capsys.readouterr().out)["matches"]] == [
        "attachorexec-pod"
    ]


def test_test_reports_evaluation_errors(files: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A rule whose evaluation fails on this event (a number against text) is listed."""
    (files / "text-count.json").write_text(json.dumps({**EVENT, "count": "many"}))
    assert main(["rules", "test", "--rules=events.yaml", "--event=text-count.json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert [m["rule"] for m in result["matches"]] == ["PodEvents"]
    assert result["errors"][0]["rule"] == "ContainerBackoff"
    assert "'many' is not a number" in result["errors"][0]["error"]


def test_test_refuses_broken_rules_and_bad_json(
    files: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Rules that do not load, or an event that is not JSON, end in an error and status 1."""
    assert main(["rules", "test", "--rules=broken.yaml", "--event=event.json"]) == 1
    assert "the rule files do not load" in capsys.readouterr().err
    (files / "bad.json").write_text("{nope")
    assert main(["rules", "test", "--rules=events.yaml", "--event=bad.json"]) == 1
    assert "bad.json: not JSON" in capsys.readouterr().err


def test_test_reads_one_event_a_line(files: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Newline-delimited events are each tested, in order, and printed as a JSON array."""
    quiet = {
        **EVENT,
        "type": "Normal",
        "reason": "Pulled",
        "involvedObject": {"kind": "Node", "name": "n1"},
    }
    (files / "events.ndjson").write_text(json.dumps(EVENT) + "\n" + json.dumps(quiet) + "\n")
    assert main(["rules", "test", "--rules=events.yaml", "--event=events.ndjson"]) == 0
    first, second = json.loads(capsys.readouterr().out)
    assert [m["rule"] for m in first["matches"]] == ["ContainerBackoff", "PodEvents"]
    assert second["matches"] == []


def test_test_answers_an_array_with_an_array(
    files: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """An array of one event gets an array of one result; a lone object gets an object."""
    (files / "one.json").write_text(json.dumps([EVENT]))
    assert main(["rules", "test", "--rules=events.yaml", "--event=one.json"]) == 0
    (result,) = json.loads(capsys.readouterr().out)
    assert result["kind"] == "event"


def test_test_predicts_what_the_daemon_alerts(
    files: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """``rules test`` says, for an event and an audit event, the alert a real tocsin
    loaded with the same files raises when both are posted to it: same labels and
    annotations, and no other alert."""
    predicted = []
    for event in ("event.json", "audit.json"):
        args = ["rules", "test", "--rules=events.yaml", "--rules=audit.yaml", f"--event={event}"]
        assert main(args) == 0
        matches = json.loads(capsys.readouterr().out)["matches"]
        predicted += [m["alert"] for m in matches if m.get("alert")]
    assert len(predicted) == 2
    config = "route: {receiver: r, group_wait: 1h}\nreceivers: [{name: r}]\n"
    with (
        run_tocsin(
            files,
            config,
            f"--events.rules-file={files / 'events.yaml'}",
            f"--auditing.rules-file={files / 'audit.yaml'}",
        ) as proc,
        proc.api() as api,
    ):
        events = {"apiVersion": "v1", "kind": "EventList", "items": [EVENT]}
        assert api.post("/api/v1/events", json=events).status_code == 200
        audits = {"apiVersion": "audit.k8s.io/v1", "kind": "EventList", "items": [AUDIT_EVENT]}
        assert api.post("/audit/webhook/event", json=audits).status_code == 200
        stored = wait_for(
            lambda: (alerts := api.get("/api/v2/alerts").json()) and len(alerts) >= 2 and alerts
        )
    got = [{"labels": a["labels"], "annotations": a["annotations"]} for a in stored]
    assert sorted(map(_canonical, got)) == sorted(map(_canonical, predicted))


def _canonical(alert: object) -> str:
    return json.dumps(alert, sort_keys=True)
