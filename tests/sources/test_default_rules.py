"""The default rule sets shipped in configs/rules/ load with the rules loader and raise
the alerts KubeSphere's shipped rules raise for the same events."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from daemon.sources.kubeevents import decode_audit_events
from daemon.sources.rulesets import LoadedEventRules, RuleFiles

ROOT = Path(__file__).resolve().parents[2]
EVENT_RULES = ROOT / "configs/rules/kube-events.yaml"
FIXTURES = Path(__file__).parent / "fixtures"


def event(kind: str, reason: str, type_: str = "Warning", **extra: Any) -> dict[str, Any]:
    involved = {"kind": kind, "name": "x", "namespace": "ns", **extra.pop("involved", {})}
    return {"involvedObject": involved, "reason": reason, "type": type_, **extra}


def outcomes(ev: dict[str, Any]) -> list[tuple[str, str]]:
    rules = RuleFiles(events=[str(EVENT_RULES)]).load()
    return [(o.type, o.rule) for o in rules.events.outcomes(ev)]


def test_default_event_rules_load_and_every_alert_is_annotated() -> None:
    """Every rule loads; every alert rule carries severity, message and summary."""
    rules = RuleFiles(events=[str(EVENT_RULES)]).load()
    assert isinstance(rules.events, LoadedEventRules)
    loaded = rules.events.rules.all_rules
    assert len(loaded) >= 90 and all(r.enable for r in loaded)
    for rule in loaded:
        if rule.type == "alert":
            assert rule.labels == {"severity": "warning"}, rule.name
            assert set(rule.annotations) == {"message", "summary"}, rule.name


CONTAINER = {"fieldPath": "spec.containers{app}"}


@pytest.mark.parametrize(
    ("ev", "expected"),
    [
        (event("Pod", "BackOff", count=4, involved=CONTAINER), [("alert", "ContainerBackoff")]),
        (event("Pod", "BackOff", count=3, involved=CONTAINER), []),
        (event("Pod", "Failed", involved=CONTAINER), [("alert", "ContainerFailed")]),
        (event("Pod", "Failed"), [("alert", "PodFailed")]),
        (event("Pod", "Unhealthy", count=9), [("alert", "ContainerUnhealthy")]),
        (event("Pod", "FailedScheduling"), [("alert", "PodScheduleFailed")]),
        (event("Pod", "Scheduled", "Normal"), [("notification", "PodScheduled")]),
        (event("Node", "SystemOOM"), [("alert", "NodeSystemOOM")]),
        (event("Node", "NodeNotReady", "Normal"), [("notification", "NodeNotReady")]),
        (
            event("PersistentVolumeClaim", "ProvisioningFailed"),
            [("alert", "VolumeProvisionFailed")],
        ),
        (event("Pod", "FailedMount"), [("alert", "VolumeMountFailed")]),
        (event("ReplicaSet", "FailedCreate"), [("alert", "PodCreateFailed")]),
        (event("DaemonSet", "FailedPlacement"), [("alert", "DaemonPodFailed")]),
        (event("HorizontalPodAutoscaler", "FailedGetScale"), [("alert", "HPAGetScaleFailed")]),
        (event("Job", "BackoffLimitExceeded"), [("alert", "JobFailed")]),
        (event("CronJob", "FailedCreate"), [("alert", "JobCreateFailed")]),
        (event("CronJob", "SawCompletedJob", "Normal"), [("notification", "JobCompleted")]),
        (event("Service", "SyncLoadBalancerFailed"), [("alert", "LoadBalancerSyncFailed")]),
        (event("Pod", "Pulled", "Normal"), [("notification", "ImagePulled")]),
        (event("Pod", "SomethingElse"), []),
    ],
)
def test_default_event_rules_cover_kubesphere_reasons(
    ev: dict[str, Any], expected: list[tuple[str, str]]
) -> None:
    """Representative events of each area raise the alert or notification KubeSphere's do."""
    assert outcomes(ev) == expected


def test_recorded_fixtures_raise_the_expected_default_alerts() -> None:
    """The real-format kubectl List gives ContainerBackoff, NodeNotReady and PodScheduleFailed."""
    items = json.loads((FIXTURES / "core-v1-eventlist.json").read_text())["items"]
    assert [outcomes(e) for e in items] == [
        [("alert", "ContainerBackoff")],
        [("notification", "NodeNotReady")],
        [("alert", "PodScheduleFailed")],
    ]


AUDIT_RULES = ROOT / "configs/rules/kube-auditing.yaml"


def audit_event(resource: str, verb: str = "create", **extra: Any) -> dict[str, Any]:
    """An ``audit.k8s.io/v1`` event at ResponseComplete that succeeded."""
    ref = {"resource": resource, "namespace": "shop", "name": "web-0", **extra.pop("ref", {})}
    return {
        "auditID": "a",
        "stage": "ResponseComplete",
        "verb": verb,
        "user": {"username": "alice", "groups": ["dev"]},
        "objectRef": ref,
        "responseStatus": {"code": 201},
        "requestReceivedTimestamp": "2024-03-05T10:30:00.123456Z",
        **extra,
    }


@pytest.mark.parametrize(
    ("ev", "warning", "info"),
    [
        (
            audit_event("pods", requestObject={"spec": {"hostNetwork": True}}),
            ["create-hostnetwork-pod"],
            ["create-hostnetwork-pod", "ResourceChange"],
        ),
        (
            audit_event(
                "pods",
                requestObject={
                    "spec": {"containers": [{"ports": [{"containerPort": 80, "hostPort": 8080}]}]}
                },
            ),
            ["create-hostport-pod"],
            ["create-hostport-pod", "ResourceChange"],
        ),
        (
            audit_event(
                "pods", requestObject={"spec": {"containers": [{"ports": [{"containerPort": 80}]}]}}
            ),
            [],
            ["ResourceChange"],
        ),
        (
            audit_event("services", "patch", requestObject={"spec": {"type": "NodePort"}}),
            ["create-nodeport-service"],
            ["create-nodeport-service", "ResourceChange"],
        ),
        (
            audit_event("pods", "get", ref={"subresource": "exec"}),
            ["attachorexec-pod"],
            ["attachorexec-pod"],
        ),
        (
            audit_event("pods", ref={"subresource": "attach"}),
            ["attachorexec-pod"],
            ["attachorexec-pod"],
        ),
        (audit_event("configmaps", "delete"), [], ["ResourceChange"]),
        (audit_event("configmaps", "delete", responseStatus={"code": 403}), [], []),
        (audit_event("configmaps", "get"), [], []),
    ],
)
def test_default_audit_rules_raise_kubesphere_alerts(
    ev: dict[str, Any], warning: list[str], info: list[str]
) -> None:
    """Host network, host port, NodePort, exec/attach alert at WARNING; successful
    changes of watched resources also at INFO; reads and refused writes never."""
    for priority, expected in (("WARNING", warning), ("INFO", info)):
        rules = RuleFiles(audit=[str(AUDIT_RULES)], alerting_priority=priority).load()
        assert [o.rule for o in rules.audit.outcomes(ev)] == expected, priority


def test_default_audit_rules_read_kubesphere_go_cased_events() -> None:
    """KubeSphere's Go-cased event (User.username, ObjectRef.Resource) matches the same
    rules, with the message built from the output's aliases."""
    (ev,) = decode_audit_events((FIXTURES / "kubesphere-audit-items.json").read_bytes())
    rules = RuleFiles(audit=[str(AUDIT_RULES)], alerting_priority="INFO").load()
    (outcome,) = rules.audit.outcomes(ev)
    assert outcome.rule == "ResourceChange"
    assert outcome.annotations == {"message": "admin delete deployments shop/web"}
    assert outcome.labels["workspace"] == "system-workspace"


def test_default_rule_files_pass_tocsinctl_rules_check_without_warnings() -> None:
    """``tocsinctl rules check`` accepts both default files with no and/or or unused
    macro warnings: they are an example to copy."""
    done = subprocess.run(
        [sys.executable, "-m", "daemon.ctl", "rules", "check", str(EVENT_RULES), str(AUDIT_RULES)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "SUCCESS: 0 warning(s)" in done.stdout
