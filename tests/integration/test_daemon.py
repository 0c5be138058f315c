"""The real tocsin process end to end: ingest, routing, grouping, webhook, reload, signals."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

import jsonschema
import pytest
import yaml

from tests.integration.processes import ROOT, WebhookSink, run_tocsin, tocsin_argv, wait_for

CONFIG = """
route:
  receiver: team
  group_by: [alertname]
  group_wait: 1s
  group_interval: 2s
  repeat_interval: 1h
  routes:
    - matchers: ['team="db"']
      receiver: db
receivers:
  - name: team
    webhook_configs:
      - url: '{team}'
  - name: db
    webhook_configs:
      - url: '{db}'
        send_resolved: false
"""


def _spec() -> dict[str, object]:
    spec = yaml.safe_load((ROOT / "daemon/api/openapi-v2.yaml").read_text())
    assert isinstance(spec, dict)
    return spec


def _validate(instance: object, definition: str) -> None:
    spec = _spec()
    schema = {"$ref": f"#/definitions/{definition}", "definitions": spec["definitions"]}
    jsonschema.validate(instance, schema)


def test_alert_is_routed_grouped_and_sent(tmp_path: Path) -> None:
    """Two alerts of one group arrive in one version-4 webhook after group_wait."""
    with WebhookSink() as team, WebhookSink() as db:
        config = CONFIG.format(team=team.url, db=db.url)
        with run_tocsin(tmp_path, config) as d:
            r = d.post_alerts(
                [
                    {"labels": {"alertname": "DiskFull", "instance": "a"}},
                    {"labels": {"alertname": "DiskFull", "instance": "b"}},
                    {"labels": {"alertname": "Slow", "team": "db"}},
                ]
            )
            assert (r.status_code, r.content) == (200, b"")
            disk, slow = team.next().json(), db.next().json()
            assert disk["groupKey"] == '{}:{alertname="DiskFull"}'
            assert [a["labels"]["instance"] for a in disk["alerts"]] == ["a", "b"]
            assert slow["groupKey"] == '{}/{team="db"}:{alertname="Slow"}'
            assert team.quiet_for(1.0)
            with d.api() as c:
                alerts = c.get("/api/v2/alerts").json()
                groups = c.get("/api/v2/alerts/groups").json()
                status = c.get("/api/v2/status").json()
            for a in alerts:
                _validate(a, "gettableAlert")
            for g in groups:
                _validate(g, "alertGroup")
            _validate(status, "alertmanagerStatus")
            assert [a["receivers"] for a in alerts if a["labels"].get("team")] == [[{"name": "db"}]]
            assert status["cluster"] == {"peers": [], "status": "disabled"}


def test_payload_and_resolution(tmp_path: Path) -> None:
    """The payload has Alertmanager's shape; a resolve goes out with send_resolved."""
    with WebhookSink() as team, WebhookSink() as db:
        with run_tocsin(tmp_path, CONFIG.format(team=team.url, db=db.url)) as d:
            d.post_alerts([{"labels": {"alertname": "A", "i": "1"}, "annotations": {"s": "<b>"}}])
            first = team.next()
            body = first.json()
            assert first.headers["Content-Type"] == "application/json"
            assert first.headers["User-Agent"].startswith("Alertmanager/")
            assert first.body.endswith(b"}\n")
            assert b"\\u003cb\\u003e" in first.body
            assert list(body) == [
                "receiver", "status", "alerts", "groupLabels", "commonLabels",
                "commonAnnotations", "externalURL", "version", "groupKey", "truncatedAlerts",
            ]  # fmt: skip
            assert body["status"] == "firing"
            assert body["alerts"][0]["endsAt"] == "0001-01-01T00:00:00Z"
            assert body["externalURL"].endswith(":" + d.url.rsplit(":", 1)[1])
            starts = body["alerts"][0]["startsAt"]
            d.post_alerts([{"labels": {"alertname": "A", "i": "1"}, "endsAt": starts}])
            resolved = team.next().json()
            assert resolved["status"] == "resolved"
            assert resolved["alerts"][0]["startsAt"] == starts


def test_bad_alerts_get_400_and_store_is_unchanged(tmp_path: Path) -> None:
    """Invalid alerts are rejected with Alertmanager's message; valid ones in the batch stay."""
    with WebhookSink() as team, WebhookSink() as db:
        with run_tocsin(tmp_path, CONFIG.format(team=team.url, db=db.url)) as d:
            r = d.post_alerts([{"labels": {"a-b": "x"}}, {"labels": {"alertname": "Ok"}}])
            assert r.status_code == 400
            assert r.json() == 'invalid label set: invalid name "a-b"'
            with d.api() as c:
                bad = c.post(
                    "/api/v2/alerts",
                    content=b"[{",
                    headers={"Content-Type": "application/json"},
                )
                assert bad.status_code == 400
                assert "parsing alerts body" in bad.json()["message"]
                names = [a["labels"]["alertname"] for a in c.get("/api/v2/alerts").json()]
            assert names == ["Ok"]


def test_reload_swaps_good_config_and_keeps_old_on_bad(tmp_path: Path) -> None:
    """SIGHUP and /-/reload apply a good config; a bad one is refused and the old one runs."""
    with WebhookSink() as team, WebhookSink() as db:
        config = CONFIG.format(team=team.url, db=db.url)
        with run_tocsin(tmp_path, config) as d, d.api() as c:
            d.post_alerts([{"labels": {"alertname": "Before"}}])
            assert team.next().json()["groupKey"] == '{}:{alertname="Before"}'
            d.config_path.write_text(
                config.replace("name: db", "name: dba").replace("receiver: db", "receiver: dba")
            )
            d.proc.send_signal(signal.SIGHUP)
            wait_for(
                lambda: [r["name"] for r in c.get("/api/v2/receivers").json()] == ["team", "dba"]
            )
            d.config_path.write_text("route: {receiver: nope}\nreceivers: []\n")
            r = c.post("/-/reload")
            assert r.status_code == 500
            assert r.text.startswith("failed to reload config: ")
            assert 'undefined receiver "nope" used in route' in r.text
            metrics = c.get("/metrics").text
            assert "alertmanager_config_last_reload_successful 0.0" in metrics
            assert [r["name"] for r in c.get("/api/v2/receivers").json()] == ["team", "dba"]
            # The old config still routes and notifies; the nflog keeps "Before" from re-sending.
            d.post_alerts([{"labels": {"alertname": "After"}}])
            assert team.next().json()["groupKey"] == '{}:{alertname="After"}'
            assert team.quiet_for(2.5)


def test_bad_config_at_start_exits_nonzero(tmp_path: Path) -> None:
    """A broken config file stops start-up with status 1 and names the file and problem."""
    config = tmp_path / "bad.yml"
    config.write_text("route:\n  receiver: a\n  group_by: ['a-b']\nreceivers: [{name: a}]\n")
    done = subprocess.run(
        tocsin_argv(config, tmp_path / "data"), cwd=ROOT, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 1
    assert str(config) in done.stdout
    assert 'invalid label name \\"a-b\\" in group_by list' in done.stdout


def test_sigterm_stops_cleanly(tmp_path: Path) -> None:
    """SIGTERM ends the daemon with status 0 after a daemon.stopping event."""
    with WebhookSink() as team, WebhookSink() as db:
        with run_tocsin(tmp_path, CONFIG.format(team=team.url, db=db.url)) as d:
            d.proc.send_signal(signal.SIGTERM)
            assert d.proc.wait(15) == 0
            assert any(e.get("event") == "daemon.stopping" for e in d.log_lines)


@pytest.mark.parametrize("flag", ["--version", "--help"])
def test_informational_flags(flag: str) -> None:
    """--version and --help answer without starting anything."""
    done = subprocess.run(
        [sys.executable, "-m", "daemon", flag], cwd=ROOT, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0
    assert "tocsin" in done.stdout


INHIBIT_CONFIG = """
route:
  receiver: hook
  group_by: [alertname]
  group_wait: 1s
  group_interval: 2s
receivers:
  - name: hook
    webhook_configs:
      - url: '{url}'
inhibit_rules:
  - source_matchers: [severity="critical"]
    target_matchers: [severity="warning"]
    equal: [instance]
"""


def test_inhibited_alert_is_not_sent_and_marked(tmp_path: Path) -> None:
    """A critical alert inhibits the warning on the same instance, in notifications and API."""
    with WebhookSink() as sink, run_tocsin(tmp_path, INHIBIT_CONFIG.format(url=sink.url)) as d:
        d.post_alerts(
            [
                {"labels": {"alertname": "Down", "severity": "critical", "instance": "a"}},
                {"labels": {"alertname": "Slow", "severity": "warning", "instance": "a"}},
                {"labels": {"alertname": "Slow", "severity": "warning", "instance": "b"}},
            ]
        )
        sent = [sink.next().json(), sink.next().json()]
        assert sink.quiet_for(2.5)
        by_group = {b["groupKey"]: [a["labels"]["instance"] for a in b["alerts"]] for b in sent}
        assert by_group == {'{}:{alertname="Down"}': ["a"], '{}:{alertname="Slow"}': ["b"]}
        with d.api() as c:
            alerts = c.get("/api/v2/alerts").json()
            unmuted = c.get("/api/v2/alerts", params={"inhibited": "false"}).json()
        down = next(a for a in alerts if a["labels"]["alertname"] == "Down")
        slow_a = next(
            a
            for a in alerts
            if a["labels"] == {"alertname": "Slow", "severity": "warning", "instance": "a"}
        )
        assert slow_a["status"] == {
            "inhibitedBy": [down["fingerprint"]],
            "silencedBy": [],
            "state": "suppressed",
        }
        assert len(unmuted) == 2


def test_silence_survives_sigkill_right_after_response(tmp_path: Path) -> None:
    """A silence acknowledged by the API is there after kill -9 and a restart."""
    silence = {
        "matchers": [{"name": "alertname", "value": "Boom", "isRegex": False}],
        "startsAt": "2020-01-01T00:00:00Z",
        "endsAt": "2099-01-01T00:00:00Z",
        "createdBy": "test",
        "comment": "durable",
    }
    with WebhookSink() as team, WebhookSink() as db:
        config = CONFIG.format(team=team.url, db=db.url)
        with run_tocsin(tmp_path, config) as d, d.api() as c:
            r = c.post("/api/v2/silences", json=silence)
            assert r.status_code == 200
            sid = r.json()["silenceID"]
            d.proc.send_signal(signal.SIGKILL)
            d.proc.wait(10)
        with run_tocsin(tmp_path, config) as d, d.api() as c:
            got = c.get(f"/api/v2/silence/{sid}")
            assert got.status_code == 200
            assert got.json()["comment"] == "durable"
            assert got.json()["status"] == {"state": "active"}


def test_restart_does_not_resend_notified_groups(tmp_path: Path) -> None:
    """The notification log persists: after a restart an unchanged group is not re-sent."""
    with WebhookSink() as team, WebhookSink() as db:
        config = CONFIG.format(team=team.url, db=db.url)
        alert = [{"labels": {"alertname": "Once"}, "startsAt": "2020-01-01T00:00:00Z",
                  "endsAt": "2099-01-01T00:00:00Z"}]  # fmt: skip
        with run_tocsin(tmp_path, config) as d, d.api() as c:
            d.post_alerts(alert)
            assert team.next().json()["groupKey"] == '{}:{alertname="Once"}'
            # The sink has the request before the daemon has its answer: stopping the
            # daemon in between would cancel the send before it is logged, and the
            # restart would rightly send again. The history's record comes after the log.
            wait_for(
                lambda: c.get("/api/v1/history", params={"outcome": "sent"}).json()["items"],
                timeout=20,
            )
        with run_tocsin(tmp_path, config) as d:
            d.post_alerts(alert)
            assert team.quiet_for(3.0)


def test_receiver_test_endpoint_and_ctl(tmp_path: Path) -> None:
    """tocsinctl receiver test sends through each integration and reports per integration."""
    with WebhookSink() as team, WebhookSink(status=500) as db:
        with run_tocsin(tmp_path, CONFIG.format(team=team.url, db=db.url)) as d:
            ok = subprocess.run(
                [sys.executable, "-m", "daemon.ctl", "receiver", "test", "team",
                 f"--alertmanager.url={d.url}"],
                cwd=ROOT, capture_output=True, text=True, timeout=60,
            )  # fmt: skip
            assert ok.returncode == 0, ok.stdout + ok.stderr
            assert "webhook[0]: OK" in ok.stdout
            sent = team.next().json()
            assert sent["alerts"][0]["labels"]["alertname"] == "TestAlert"
            bad = subprocess.run(
                [sys.executable, "-m", "daemon.ctl", "receiver", "test", "db",
                 f"--alertmanager.url={d.url}"],
                cwd=ROOT, capture_output=True, text=True, timeout=60,
            )  # fmt: skip
            assert bad.returncode == 1
            assert "webhook[0]: FAILED: unexpected status code 500" in bad.stdout
            with d.api() as c:
                missing = c.post("/api/v1/receivers/nope/test", json={})
            assert (missing.status_code, missing.json()) == (404, {"error": "receiver not found"})


def test_bad_template_at_start_is_a_config_error(tmp_path: Path) -> None:
    """A template that does not parse stops start-up, naming the file and line."""
    (tmp_path / "bad.tmpl").write_text('{{ define "x" }}\n{{ if }}\n{{ end }}\n')
    config = tmp_path / "tocsin.yml"
    config.write_text(
        "templates: ['*.tmpl']\nroute: {receiver: a}\n"
        "receivers: [{name: a, webhook_configs: [{url: 'http://127.0.0.1:9/'}]}]\n"
    )
    done = subprocess.run(
        tocsin_argv(config, tmp_path / "data"), cwd=ROOT, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 1
    assert "bad.tmpl:2" in done.stdout


def test_notification_history_is_recorded_and_queried(tmp_path: Path) -> None:
    """Each notification attempt lands in the history, which GET /api/v1/history pages."""
    export = tmp_path / "events.jsonl"
    with WebhookSink() as team, WebhookSink(status=500) as db:
        config = CONFIG.format(team=team.url, db=db.url)
        with run_tocsin(tmp_path, config, f"--history.export-file={export}") as d:
            d.post_alerts(
                [
                    {"labels": {"alertname": "DiskFull", "instance": "a"}},
                    {"labels": {"alertname": "Slow", "team": "db"}},
                ]
            )
            team.next()
            with d.api() as c:
                deadline = time.monotonic() + 20
                while True:
                    page = c.get("/api/v1/history", params={"outcome": "failed"}).json()
                    # later flushes of the unchanged group are deduped, and recorded too
                    deduped = c.get("/api/v1/history", params={"outcome": "suppressed"}).json()
                    if (page["items"] and deduped["items"]) or time.monotonic() > deadline:
                        break
                    time.sleep(0.2)
                query = {"receiver": "team", "outcome": "sent", "filter": 'instance="a"'}
                sent = c.get("/api/v1/history", params=query).json()
                bad = c.get("/api/v1/history", params={"outcome": "nope"})
    (item,) = sent["items"]
    assert (item["receiver"], item["outcome"], item["reason"]) == (
        "team",
        "sent",
        "NOTIFY_REASON_FIRST_NOTIFICATION",
    )
    assert item["groupKey"] == '{}:{alertname="DiskFull"}'
    assert [a["labels"]["instance"] for a in item["alerts"]] == ["a"]
    failed = page["items"][0]
    assert failed["receiver"] == "db" and "500" in failed["error"]
    assert bad.status_code == 400
    assert {i["receiver"] for i in deduped["items"]} == {"team"}
    # the export file has the sent notification as an event-recorder JSON line
    assert any('"team"' in line for line in export.read_text().splitlines())
