"""The event and audit intakes of a real tocsin process, end to end over HTTP: each body
shape in, alerts out at a webhook receiver, notification events out at the
notification webhook, refusals that change nothing, and rules that reload."""

from __future__ import annotations

import datetime
import json
import os
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

from daemon.clock import NS_PER_SECOND
from daemon.gocompat.timestamp import parse_rfc3339
from tests.integration.processes import ROOT, WebhookSink, run_tocsin, tocsin_argv, wait_for

FIXTURES = ROOT / "tests/sources/fixtures"

CONFIG = """
route:
  receiver: events
  group_by: [alertname]
  group_wait: 1s
  group_interval: 1s
  repeat_interval: 1h
receivers:
  - name: events
    webhook_configs:
      - url: '{url}'
"""

RULES = """
apiVersion: events.kubesphere.io/v1alpha1
kind: Rule
metadata:
  name: e2e
  namespace: kubesphere-logging-system
  labels:
    kubesphere.io/rule-scope: cluster
spec:
  rules:
    - name: PodBackOff
      type: alert
      enable: true
      condition: type = "Warning" and reason = "BackOff"
      labels: {severity: warning}
      annotations: {message: "%message", summary: "back-off, count %count"}
    - name: NodeNotReady
      type: alert
      enable: true
      condition: reason = "NodeNotReady"
      labels: {severity: critical}
    - name: VolumeProvisioning
      type: alert
      enable: true
      condition: reason = "ProvisioningFailed"
    - name: JobFailed
      type: alert
      enable: true
      condition: reason = "BackoffLimitExceeded"
    - name: SchedulingNotice
      type: notification
      enable: true
      condition: reason = "FailedScheduling"
"""


def start(tmp: Path, sink: WebhookSink, notify: WebhookSink, *extra: str) -> Any:
    rules = tmp / "rules"
    rules.mkdir(exist_ok=True)
    (rules / "e2e.yaml").write_text(RULES)
    return run_tocsin(
        tmp,
        CONFIG.format(url=sink.url),
        f"--events.rules-file={rules}/*.yaml",
        f"--events.notification-webhook={notify.url}",
        *extra,
    )


def alert_labels(sink: WebhookSink, count: int) -> dict[str, dict[str, str]]:
    """alertname → labels of its first firing alert, once ``count`` notifications came."""
    out: dict[str, dict[str, str]] = {}
    for request in sink.wait_count(count):
        for alert in request.json()["alerts"]:
            if alert["status"] == "firing":
                out.setdefault(alert["labels"]["alertname"], alert["labels"])
    return out


def test_every_event_shape_becomes_alerts_and_notifications(tmp_path: Path) -> None:
    """core/v1 List, events.k8s.io/v1, the exporter's NDJSON and kubernetes-event-exporter's
    body all reach the receiver as kube-events alerts; the notification rule's event
    reaches the notification webhook as NDJSON."""
    with WebhookSink() as sink, WebhookSink() as notify, start(tmp_path, sink, notify) as d:
        with d.api() as c:
            r = c.post("/api/v1/events", content=(FIXTURES / "core-v1-eventlist.json").read_bytes())
            assert (r.status_code, r.json()) == (200, {"received": 3, "matched": 3, "alerts": 2})
            r = c.post("/api/v1/events", content=(FIXTURES / "events-k8s-io-v1.json").read_bytes())
            assert r.json() == {"received": 1, "matched": 1, "alerts": 1}
            r = c.post(
                "/api/v1/events",
                content=(FIXTURES / "kubernetes-event-exporter.json").read_bytes(),
                headers={"Content-Type": "application/json"},
            )
            assert r.json() == {"received": 1, "matched": 1, "alerts": 1}
            # The exporter's NDJSON repeats the List's events unchanged: no new occurrence.
            r = c.post(
                "/api/v1/events", content=(FIXTURES / "kube-events-exporter.ndjson").read_bytes()
            )
            assert r.json() == {"received": 2, "matched": 2, "alerts": 0}
            # The same lines about another pod: a new alert in the PodBackOff group.
            other = (FIXTURES / "kube-events-exporter.ndjson").read_text()
            other = other.replace("x2k4p", "other").replace('"uid":"6a0d', '"uid":"7a0d')
            r = c.post("/api/v1/events", content=other.encode())
            assert r.json() == {"received": 2, "matched": 2, "alerts": 1}
        wait_for(
            lambda: any(
                a["labels"].get("pod") == "web-7d9c8b6f5d-other"
                for req in sink.received
                for a in req.json()["alerts"]
            ),
            timeout=20,
        )
        labels = alert_labels(sink, 4)
        backoffs = [
            a["labels"]
            for req in sink.received
            for a in req.json()["alerts"]
            if a["labels"]["alertname"] == "PodBackOff"
        ]
        assert {
            "alertname": "PodBackOff",
            "alerttype": "event",
            "pod": "web-7d9c8b6f5d-x2k4p",
            "namespace": "shop",
            "container": "app",
            "severity": "warning",
        } in backoffs
        assert labels["NodeNotReady"] == {
            "alertname": "NodeNotReady",
            "alerttype": "event",
            "node": "node-2",
            "severity": "critical",
        }
        assert labels["VolumeProvisioning"]["persistentvolumeclaim"] == "data-db-0"
        assert labels["JobFailed"] == {
            "alertname": "JobFailed",
            "alerttype": "event",
            "job": "pi",
            "namespace": "batch",
        }
        backoff = next(
            a
            for req in sink.received
            for a in req.json()["alerts"]
            if a["labels"].get("pod") == "web-7d9c8b6f5d-x2k4p"
        )
        assert backoff["annotations"]["summary"] == "back-off, count 7"
        assert backoff["annotations"]["message"].startswith("Back-off restarting failed container")
        assert backoff["endsAt"] == "0001-01-01T00:00:00Z"
        (forwarded,) = notify.wait_count(1)
        lines = forwarded.body.splitlines()
        assert [json.loads(line)["reason"] for line in lines] == ["FailedScheduling"]


def test_a_refused_body_changes_nothing(tmp_path: Path) -> None:
    """A body with one bad line is a 400 naming that line; none of its events is applied."""
    good = json.loads((FIXTURES / "core-v1-eventlist.json").read_text())["items"]
    body = "\n".join(json.dumps(e) for e in good) + '\n{"kind": "Pod"}\n'
    with WebhookSink() as sink, WebhookSink() as notify, start(tmp_path, sink, notify) as d:
        with d.api() as c:
            r = c.post("/api/v1/events", content=body.encode())
            assert r.status_code == 400
            assert r.json() == {"error": "line 4: not a Kubernetes Event: kind 'Pod'"}
            r = c.post("/audit/webhook/event", content=b'{"items": [{"verb": "get"}]}')
            assert r.status_code == 400 and "no auditID" in r.json()["error"]
            assert c.get("/api/v2/alerts").json() == []
            metrics = c.get("/metrics").text
            assert 'tocsin_event_bodies_rejected_total{intake="events"} 1.0' in metrics
            assert 'tocsin_event_bodies_rejected_total{intake="audit"} 1.0' in metrics
        assert sink.quiet_for(2) and notify.quiet_for(0.1)


def test_metrics_count_bodies_events_matches_and_alerts(tmp_path: Path) -> None:
    """/metrics shows bodies received, events decoded, matches per rule and alerts."""
    with WebhookSink() as sink, WebhookSink() as notify, start(tmp_path, sink, notify) as d:
        with d.api() as c:
            c.post("/api/v1/events", content=(FIXTURES / "core-v1-eventlist.json").read_bytes())
            text = c.get("/metrics").text
    assert 'tocsin_event_bodies_received_total{intake="events"} 1.0' in text
    assert 'tocsin_events_decoded_total{intake="events"} 3.0' in text
    assert 'tocsin_events_matched_total{intake="events",rule="PodBackOff",type="alert"} 1.0' in text
    assert (
        'tocsin_events_matched_total{intake="events",rule="SchedulingNotice",type="notification"} 1.0'
        in text
    )
    assert "tocsin_event_alerts_produced_total 2.0" in text
    assert 'tocsin_event_rule_evaluation_seconds_count{intake="events"} 1.0' in text
    assert 'tocsin_event_rules{intake="events"} 5.0' in text


def test_rules_reload_with_the_config_and_a_bad_rule_keeps_the_old(tmp_path: Path) -> None:
    """SIGHUP picks up a changed rule file; on /-/reload a broken condition is refused
    naming file, rule and position, and the rules already loaded keep matching."""
    node = json.dumps(json.loads((FIXTURES / "core-v1-eventlist.json").read_text())["items"][1])
    with WebhookSink() as sink, WebhookSink() as notify, start(tmp_path, sink, notify) as d:
        rule_file = tmp_path / "rules/e2e.yaml"
        with d.api() as c:

            def reloaded_at() -> str:
                for line in c.get("/metrics").text.splitlines():
                    if line.startswith("alertmanager_config_last_reload_success_timestamp"):
                        return line
                raise AssertionError("no reload timestamp")

            before = reloaded_at()
            time.sleep(1.1)  # the timestamp has whole seconds
            rule_file.write_text(RULES.replace("name: NodeNotReady", "name: NodeDown"))
            d.proc.send_signal(signal.SIGHUP)
            wait_for(lambda: reloaded_at() != before, timeout=20)
            r = c.post("/api/v1/events", content=node.encode())
            assert r.json()["alerts"] == 1
            assert "NodeDown" in alert_labels(sink, 1)
            rule_file.write_text(RULES.replace('reason = "NodeNotReady"', 'reason = = "x"'))
            r = c.post("/-/reload")
            assert r.status_code == 500
            assert str(rule_file) in r.text and "e2e/NodeNotReady" in r.text
            assert "condition at position" in r.text
            assert "tocsin_event_rules_last_reload_successful 0.0" in c.get("/metrics").text
            changed = json.loads(node)
            changed["count"] = 2
            r = c.post("/api/v1/events", content=json.dumps(changed).encode())
            assert r.json() == {"received": 1, "matched": 1, "alerts": 1}


def test_a_bad_rule_file_stops_start_up(tmp_path: Path) -> None:
    """A rule file that does not load stops tocsin with status 1, naming file and rule."""
    (tmp_path / "tocsin.yml").write_text("route: {receiver: a}\nreceivers: [{name: a}]\n")
    rules = tmp_path / "bad.yaml"
    rules.write_text(RULES.replace('reason = "BackOff"', 'reason = "BackOff" and ('))
    argv = tocsin_argv(tmp_path / "tocsin.yml", tmp_path / "data", f"--events.rules-file={rules}")
    done = subprocess.run(argv, cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert done.returncode == 1
    assert str(rules) in done.stdout and "e2e/PodBackOff" in done.stdout


def test_resolve_after_flag_resolves_when_the_event_stops(tmp_path: Path) -> None:
    """With --events.resolve-after=2s the alert is sent firing, then resolved about 2 s
    after its one occurrence (endsAt set by tocsin, not resolve_timeout)."""
    node = (FIXTURES / "core-v1-eventlist.json").read_text()
    with (
        WebhookSink() as sink,
        WebhookSink() as notify,
        start(tmp_path, sink, notify, "--events.resolve-after=2s") as d,
        d.api() as c,
    ):
        c.post("/api/v1/events", content=node.encode())
        resolved = wait_for(
            lambda: [
                a
                for req in sink.received
                for a in req.json()["alerts"]
                if a["status"] == "resolved" and a["labels"]["alertname"] == "NodeNotReady"
            ],
            timeout=20,
        )
        alert = resolved[0]
        lasted = parse_rfc3339(alert["endsAt"]) - parse_rfc3339(alert["startsAt"])
        assert lasted == 2 * NS_PER_SECOND


def test_audit_webhook_shapes_become_kube_auditing_alerts(tmp_path: Path) -> None:
    """The API server's audit EventList and KubeSphere's Go-cased Items reach the
    receiver as kube-auditing alerts from the default rules, at the priority asked for."""
    with (
        WebhookSink() as sink,
        WebhookSink() as notify,
        start(
            tmp_path,
            sink,
            notify,
            f"--auditing.rules-file={ROOT}/configs/rules/kube-auditing.yaml",
            "--auditing.alerting-priority=INFO",
        ) as d,
        d.api() as c,
    ):
        r = c.post("/audit/webhook/event", content=(FIXTURES / "audit-eventlist.json").read_bytes())
        assert r.json() == {"received": 2, "matched": 2, "alerts": 3}
        r = c.post(
            "/audit/webhook/event", content=(FIXTURES / "kubesphere-audit-items.json").read_bytes()
        )
        assert r.json() == {"received": 1, "matched": 1, "alerts": 1}
        labels = alert_labels(sink, 3)
        assert set(labels) == {"attachorexec-pod", "create-nodeport-service", "ResourceChange"}
        assert labels["attachorexec-pod"] == {
            "alertname": "attachorexec-pod",
            "alerttype": "auditing",
            "user": "alice",
            "verb": "create",
            "resource": "pods",
            "name": "web-7d9c8b6f5d-x2k4p",
            "namespace": "shop",
            "group": '["dev","system:authenticated"]',
            "requestReceivedTimestamp": "2024-03-05 10:30:00.123456 +0000 UTC",
        }
        text = c.get("/metrics").text
        assert 'tocsin_events_decoded_total{intake="audit"} 3.0' in text
        assert 'tocsin_event_rules{intake="audit"} 5.0' in text


def test_watch_intake_against_a_stand_in_api_server(tmp_path: Path) -> None:
    """--events.kubeconfig: tocsin lists and watches the stand-in API server (no real one
    can run here); a listed and a watched BackOff both reach the receiver, and a
    compaction (410) makes it list again, finding the missed event without re-firing
    the others."""
    from tests.sources.kube_apiserver import TOKEN, FakeApiServer

    def backoff(uid: str, pod: str) -> dict[str, Any]:
        now = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        return {
            "metadata": {"name": f"{pod}.1", "namespace": "shop", "uid": uid},
            "involvedObject": {"kind": "Pod", "name": pod, "namespace": "shop"},
            "reason": "BackOff",
            "type": "Warning",
            "count": 5,
            "lastTimestamp": now,
        }

    with FakeApiServer() as api, WebhookSink() as sink, WebhookSink() as notify:
        kubeconfig = tmp_path / "kubeconfig"
        kubeconfig.write_text(
            "apiVersion: v1\nkind: Config\ncurrent-context: c\n"
            "contexts: [{name: c, context: {cluster: c, user: u}}]\n"
            f"clusters: [{{name: c, cluster: {{server: '{api.url}'}}}}]\n"
            f"users: [{{name: u, user: {{token: {TOKEN}}}}}]\n"
        )
        api.put(backoff("u1", "listed-0"))
        with start(tmp_path, sink, notify, f"--events.kubeconfig={kubeconfig}") as d:
            wait_for(lambda: len(api.watches()) == 1, timeout=30)
            api.put(backoff("u2", "watched-0"))
            wait_for(
                lambda: (
                    {a["labels"].get("pod") for req in sink.received for a in req.json()["alerts"]}
                    >= {"listed-0", "watched-0"}
                ),
                timeout=30,
            )
            # An event the watch misses (history compacted past it): found by the re-list.
            api.put(backoff("u3", "gap-0"))
            api.compact()
            api.end_watches()
            wait_for(lambda: len(api.lists()) == 2 and len(api.watches()) >= 3, timeout=30)
            with d.api() as c:
                wait_for(lambda: "gap-0" in c.get("/api/v2/alerts").text, timeout=30)
                text = c.get("/metrics").text
            assert 'tocsin_event_watch_restarts_total{reason="gone"} 1.0' in text
            # listed-0 and watched-0 came again in the re-list, and did not fire again.
            assert "tocsin_event_alerts_produced_total 3.0" in text


def test_events_watch_outside_a_pod_stops_start_up(tmp_path: Path) -> None:
    """--events.watch uses the pod's service account; outside a pod tocsin refuses to
    start, saying so, rather than run without the watch asked for."""
    (tmp_path / "tocsin.yml").write_text("route: {receiver: a}\nreceivers: [{name: a}]\n")
    argv = tocsin_argv(tmp_path / "tocsin.yml", tmp_path / "data", "--events.watch")
    env = {k: v for k, v in os.environ.items() if not k.startswith("KUBERNETES_")}
    done = subprocess.run(argv, cwd=ROOT, capture_output=True, text=True, timeout=60, env=env)
    assert done.returncode == 1
    assert "KUBERNETES_SERVICE_HOST" in done.stdout
