"""tocsinctl why: parameters, text and JSON output, errors, and against a real daemon."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from daemon.ctl import main
from tests.ctl.test_cli import Server
from tests.integration.processes import ROOT, WebhookSink, run_tocsin, wait_for

NODE = {
    "id": "{}",
    "matchers": [],
    "receiver": "default",
    "groupBy": ["alertname"],
    "continue": False,
    "groupWait": "30s",
    "groupInterval": "5m",
    "repeatInterval": "4h",
    "muteTimeIntervals": [],
    "activeTimeIntervals": [],
}
WHY = {
    "alert": {
        "labels": {"alertname": "DiskFull", "instance": "db1"},
        "fingerprint": "3d8fc23df68d2038",
        "startsAt": "2026-12-06T01:00:00.000Z",
        "status": {"state": "suppressed", "silencedBy": ["s1"], "inhibitedBy": ["aa"]},
    },
    "routes": [
        {
            "receiver": "db",
            "groupKey": '{}/{team="db"}:{alertname="DiskFull"}',
            "path": [NODE, {**NODE, "matchers": ['team="db"'], "receiver": "db"}],
            "group": {
                "key": "k",
                "labels": {"alertname": "DiskFull"},
                "alerts": 2,
                "nextFlush": "2026-12-06T01:05:00.000Z",
            },
        }
    ],
    "silences": [
        {
            "id": "s1",
            "comment": "disk swap",
            "createdBy": "alice",
            "endsAt": "2026-12-06T03:00:00.000Z",
            "matchers": [
                {"name": "instance", "value": "db.*", "isRegex": True, "isEqual": True},
                {"name": "env", "value": "dev", "isRegex": False, "isEqual": False},
            ],
        }
    ],
    "inhibitions": [
        {
            "fingerprint": "aa",
            "labels": {"alertname": "DiskFull", "severity": "critical"},
            "rules": [
                {
                    "sourceMatchers": ['severity="critical"'],
                    "targetMatchers": ['severity="warning"'],
                    "equal": ["alertname"],
                }
            ],
        }
    ],
    "history": [
        {
            "time": "2026-12-06T01:00:30.000Z",
            "receiver": "db",
            "integration": {"name": "webhook", "index": 0},
            "outcome": "failed",
            "reason": "NOTIFY_REASON_FIRST_NOTIFICATION",
            "error": "connection refused",
        }
    ],
    "historyAvailable": True,
}


def test_matchers_and_fingerprint_become_query_parameters(tmp_path: Path) -> None:
    """Matchers go as one filter each; --fingerprint goes alone."""
    server = Server(lambda request: httpx.Response(200, json=WHY))
    home = str(tmp_path)
    assert (
        main(["why", "alertname=DiskFull", "instance=db1"], home=home, transport=server.transport)
        == 0
    )
    assert (
        main(["why", "--fingerprint=3d8fc23df68d2038"], home=home, transport=server.transport) == 0
    )
    first, second = server.requests
    assert first.url.path == "/api/v1/why"
    assert list(first.url.params.multi_items()) == [
        ("filter", "alertname=DiskFull"),
        ("filter", "instance=db1"),
    ]
    assert list(second.url.params.multi_items()) == [("fingerprint", "3d8fc23df68d2038")]


def test_text_answer_names_path_group_mutes_and_history(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The text walks the route path, the group and its next flush, the silence (with its
    matchers as written), the inhibiting alert and rule, and the failed attempt."""
    server = Server(lambda request: httpx.Response(200, json=WHY))
    assert main(["why", "alertname=DiskFull"], home=str(tmp_path), transport=server.transport) == 0
    out = capsys.readouterr().out
    assert 'db: default-route -> {team="db"}' in out
    assert 'group {alertname="DiskFull"} (2 alerts), next flush' in out
    assert 'Silenced by s1 {instance=~"db.*", env!="dev"} by alice: disk swap' in out
    assert 'Inhibited by {alertname="DiskFull", severity="critical"}' in out
    assert 'rule: source {severity="critical"} target {severity="warning"} equal [alertname]' in out
    [row] = [line for line in out.splitlines() if "webhook[0]" in line]
    assert "failed" in row and "first notification" in row and "connection refused" in row


def test_json_is_the_answer_as_given(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """-o json prints the server's answer."""
    server = Server(lambda request: httpx.Response(200, json=WHY))
    assert main(["-o", "json", "why", "a=b"], home=str(tmp_path), transport=server.transport) == 0
    assert json.loads(capsys.readouterr().out) == WHY


def test_errors_say_what_is_wrong(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """No alert named, both ways at once, an unknown alert and a server without the endpoint
    each end with a message saying so."""
    home = str(tmp_path)
    unknown = Server(lambda r: httpx.Response(404, json={"error": "no alert matches the filter"}))
    assert main(["why"], home=home, transport=unknown.transport) == 1
    assert "name the alert" in capsys.readouterr().err
    assert main(["why", "--fingerprint=1", "a=b"], home=home, transport=unknown.transport) == 1
    assert "not both" in capsys.readouterr().err
    assert main(["why", "a=b"], home=home, transport=unknown.transport) == 1
    assert "no alert matches the filter" in capsys.readouterr().err
    plain = Server(lambda r: httpx.Response(404, text="404 page not found\n"))
    assert main(["why", "a=b"], home=home, transport=plain.transport) == 1
    assert "cannot explain alerts" in capsys.readouterr().err


def test_why_of_a_real_daemon(tmp_path: Path) -> None:
    """Against a running tocsin, why names the route and the sent notification."""
    config = (
        "route: {receiver: r, group_wait: 0s, group_by: [alertname]}\n"
        "receivers: [{name: r, webhook_configs: [{url: '%s'}]}]\n"
    )
    with WebhookSink() as sink, run_tocsin(tmp_path, config % sink.url) as d:
        d.post_alerts([{"labels": {"alertname": "FromCtl"}}])
        sink.next()

        def explained() -> subprocess.CompletedProcess[str] | None:
            done = subprocess.run(
                [sys.executable, "-m", "daemon.ctl", "why", f"--alertmanager.url={d.url}",
                 "alertname=FromCtl"],
                cwd=ROOT, capture_output=True, text=True, timeout=60,
            )  # fmt: skip
            return done if " sent " in done.stdout else None

        done = wait_for(explained, timeout=30)
    assert done.returncode == 0, done.stderr
    assert 'Alert {alertname="FromCtl"}' in done.stdout
    assert "r: default-route" in done.stdout
    assert "Not muted" in done.stdout
