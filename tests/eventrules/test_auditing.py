"""kube-auditing Rule files: references, priorities, every-match, and audit alerts."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from daemon.eventrules.auditing import audit_alert, load_audit_rules
from daemon.eventrules.files import RuleFileError

RULES = """\
apiVersion: auditing.kubesphere.io/v1alpha1
kind: Rule
metadata:
  name: kube-auditing-rules
  labels: {type: alerting}
spec:
  rules:
  - {name: writes, type: list, list: [create, delete]}
  - {name: more-writes, type: list, list: ['${writes}', update, patch]}
  - {name: user, type: alias, alias: User.username}
  - {name: pod, type: macro, macro: 'ObjectRef.Resource="pods" or ObjectRef.Resource="pods/exec"'}
  - {name: unused-macro, type: macro, macro: 'Verb="get"'}
  - {name: unused-list, type: list, list: [a]}
  - name: create-hostnetwork-pod
    type: rule
    condition: ${pod} and Verb in ${more-writes} and RequestObject.spec.hostNetwork = true
    output: "${user} created pod ${shared.where} with host network"
    priority: WARNING
    enable: true
  - name: ResourceChange
    type: rule
    condition: Verb in ${more-writes}
    priority: INFO
    enable: true
  - name: Disabled
    type: rule
    condition: Verb = "create"
    priority: WARNING
---
apiVersion: auditing.kubesphere.io/v1alpha1
kind: Rule
metadata: {name: shared}
spec:
  rules:
  - {name: where, type: alias, alias: objectRef.name}
"""

K8S_EVENT: dict[str, Any] = {
    "kind": "Event",
    "apiVersion": "audit.k8s.io/v1",
    "level": "RequestResponse",
    "auditID": "4d5f6b8e-6a43-4d67-9a4b-0a1c2d3e4f50",
    "stage": "ResponseComplete",
    "requestURI": "/api/v1/namespaces/shop/pods",
    "verb": "create",
    "user": {"username": "admin", "groups": ["system:masters", "system:authenticated"]},
    "objectRef": {"resource": "pods", "namespace": "shop", "name": "web-0", "apiVersion": "v1"},
    "requestObject": {"kind": "Pod", "spec": {"hostNetwork": True}},
    "requestReceivedTimestamp": "2024-03-01T10:20:30.123456Z",
}

KS_EVENT: dict[str, Any] = {
    "Verb": "update",
    "User": {"Username": "alice", "Groups": ["system:authenticated"]},
    "ObjectRef": {"Resource": "configs", "Name": "default-email-config"},
    "Workspace": "retail",
    "RequestReceivedTimestamp": "2022-11-03T15:11:56.676195+08:00",
}


@pytest.fixture
def rules_path(tmp_path: Path) -> str:
    path = tmp_path / "audit.yaml"
    path.write_text(RULES)
    return str(path)


def test_every_match_at_or_above_priority(rules_path: str) -> None:
    """All enabled matching rules alert (not first-match), filtered by priority."""
    rules = load_audit_rules([rules_path])
    assert [r.name for r in rules.match(K8S_EVENT)] == ["create-hostnetwork-pod"]
    assert [r.name for r in rules.match(K8S_EVENT, "INFO")] == [
        "create-hostnetwork-pod",
        "ResourceChange",
    ]
    assert [r.name for r in rules.match(KS_EVENT, "DEBUG")] == ["ResourceChange"]
    assert rules.match({**K8S_EVENT, "verb": "get"}, "DEBUG") == []


def test_references_expand(rules_path: str) -> None:
    """Macros expand in parentheses, lists splice and quote, aliases give the path."""
    rules = load_audit_rules([rules_path])
    assert rules.rules[0].condition.text == (
        '(ObjectRef.Resource="pods" or ObjectRef.Resource="pods/exec") and '
        'Verb in ("create", "delete", "update", "patch") and RequestObject.spec.hostNetwork = true'
    )
    assert sorted(u.name for u in rules.unused) == ["unused-list", "unused-macro"]


def test_kubernetes_audit_alert(rules_path: str) -> None:
    """An audit.k8s.io/v1 event gives KubeSphere's labels and the rendered output."""
    rule = load_audit_rules([rules_path]).rules[0]
    labels, annotations = audit_alert(rule, K8S_EVENT)
    assert labels == {
        "alertname": "create-hostnetwork-pod",
        "alerttype": "auditing",
        "user": "admin",
        "verb": "create",
        "group": '["system:masters","system:authenticated"]',
        "resource": "pods",
        "name": "web-0",
        "namespace": "shop",
        "requestReceivedTimestamp": "2024-03-01 10:20:30.123456 +0000 UTC",
    }
    assert annotations == {"message": "admin created pod web-0 with host network"}


def test_kubesphere_audit_alert_default_message(rules_path: str) -> None:
    """KubeSphere's Go-cased event matches too; without output the message is the default."""
    rule = load_audit_rules([rules_path]).rules[1]
    labels, annotations = audit_alert(rule, KS_EVENT)
    assert labels["user"] == "alice"
    assert labels["group"] == '["system:authenticated"]'
    assert labels["workspace"] == "retail"
    assert labels["requestReceivedTimestamp"] == "2022-11-03 07:11:56.676195 +0000 UTC"
    assert annotations == {"message": "alice update configs 'default-email-config'"}


@pytest.mark.parametrize(
    ("entries", "fragment"),
    [
        (
            "- {name: r, type: rule, condition: '${nope}', enable: true}",
            "${nope} names no macro, list or alias",
        ),
        (
            "- {name: a, type: macro, macro: '${b}'}\n  - {name: b, type: macro, macro: '${a}'}\n"
            "  - {name: r, type: rule, condition: '${a}'}",
            "refers to itself",
        ),
        (
            "- {name: r, type: rule, condition: 'Verb = '}",
            "condition at position 7: expected a string or a number",
        ),
        (
            "- {name: m, type: macro, macro: 'Verb = '}\n  - {name: r, type: rule, condition: '${m} and a = 1'}",
            "(expanded from '${m} and a = 1')",
        ),
        (
            "- {name: r, type: rule, condition: 'a = 1', priority: CRITICAL}",
            "priority is 'CRITICAL'",
        ),
        ("- {name: r, type: regla, condition: 'a = 1'}", "type is 'regla'"),
        ("- {name: l, type: list, list: {a: 1}}", "list must be a list"),
        (
            "- {name: r, type: rule, condition: 'a = 1', output: '${zzz}'}",
            "output: ${zzz} names no",
        ),
    ],
)
def test_errors_name_the_rule(tmp_path: Path, entries: str, fragment: str) -> None:
    """Broken audit rules are refused with the file, the rule and the problem."""
    path = tmp_path / "bad.yaml"
    path.write_text(
        "apiVersion: auditing.kubesphere.io/v1alpha1\nkind: Rule\nmetadata: {name: cr}\nspec:\n  rules:\n  "
        + entries
        + "\n"
    )
    with pytest.raises(RuleFileError) as caught:
        load_audit_rules([str(path)])
    assert fragment in str(caught.value)
    assert f"{path}:" in str(caught.value) and "rule cr/" in str(caught.value)


def test_event_rule_file_is_not_an_audit_file(tmp_path: Path) -> None:
    """A kube-events Rule given as an audit rule file is refused."""
    path = tmp_path / "ev.yaml"
    path.write_text(
        "apiVersion: events.kubesphere.io/v1alpha1\nkind: Rule\nmetadata: {name: x}\nspec: {rules: []}\n"
    )
    with pytest.raises(RuleFileError, match=r"expected kind Rule of auditing\.kubesphere\.io"):
        load_audit_rules([str(path)])


HOSTPORT_POD: dict[str, Any] = {
    "kind": "Event",
    "apiVersion": "audit.k8s.io/v1",
    "level": "RequestResponse",
    "auditID": "8c3a2f4e-1b7d-4e8a-9f3c-2d1e0a9b8c7d",
    "stage": "ResponseComplete",
    "requestURI": "/api/v1/namespaces/shop/pods?fieldManager=kubectl-client-side-apply",
    "verb": "create",
    "user": {"username": "kubernetes-admin", "groups": ["system:masters", "system:authenticated"]},
    "sourceIPs": ["10.0.0.5"],
    "userAgent": "kubectl/v1.27.3 (linux/amd64) kubernetes/25b4e43",
    "objectRef": {"resource": "pods", "namespace": "shop", "name": "edge", "apiVersion": "v1"},
    "responseStatus": {"metadata": {}, "code": 201},
    "requestObject": {
        "kind": "Pod",
        "apiVersion": "v1",
        "metadata": {"name": "edge", "namespace": "shop"},
        "spec": {
            "containers": [
                {
                    "name": "sidecar",
                    "image": "envoy",
                    "ports": [{"containerPort": 9901, "protocol": "TCP"}],
                },
                {
                    "name": "web",
                    "image": "nginx",
                    "ports": [{"containerPort": 80, "hostPort": 8080, "protocol": "TCP"}],
                },
            ]
        },
    },
    "requestReceivedTimestamp": "2024-05-02T08:15:30.412345Z",
    "stageTimestamp": "2024-05-02T08:15:30.498765Z",
    "annotations": {"authorization.k8s.io/decision": "allow", "authorization.k8s.io/reason": ""},
}


def test_array_paths_fold_case_in_kubernetes_audit_events(tmp_path: Path) -> None:
    """KubeSphere's RequestObject.spec.containers[*].ports[*].hostPort finds the API server's lower-case JSON."""
    path = tmp_path / "hostport.yaml"
    path.write_text(
        "apiVersion: auditing.kubesphere.io/v1alpha1\nkind: Rule\nmetadata: {name: hp}\nspec:\n  rules:\n"
        "  - name: create-hostport-pod\n    type: rule\n    priority: WARNING\n    enable: true\n"
        '    condition: ObjectRef.Resource="pods" and Verb="create" and '
        "RequestObject.spec.containers[*].ports[*].hostPort > 0\n"
        "    output: '${hp.who} created pod ${hp.pod} with a host port'\n"
        "  - {name: who, type: alias, alias: User.Username}\n"
        "  - {name: pod, type: alias, alias: ObjectRef.Name}\n"
    )
    rules = load_audit_rules([str(path)])
    (rule,) = rules.match(HOSTPORT_POD)
    assert audit_alert(rule, HOSTPORT_POD)[1] == {
        "message": "kubernetes-admin created pod edge with a host port"
    }
    no_host_port = json.loads(json.dumps(HOSTPORT_POD))
    del no_host_port["requestObject"]["spec"]["containers"][1]["ports"][0]["hostPort"]
    assert rules.match(no_host_port) == []
