"""Side by side with the real Alertmanager 0.25 and its amtool."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path
from typing import Any

import pytest

from tests.integration.processes import AMTOOL, WebhookSink, run_alertmanager, run_tocsin

pytestmark = pytest.mark.alertmanager

CONFIG = """
route:
  receiver: hook
  group_by: [alertname, team]
  group_wait: 1s
  group_interval: 2s
  repeat_interval: 1h
  routes:
    - matchers: ['team="trunc"']
      receiver: trunc
      group_by: [team]
receivers:
  - name: hook
    webhook_configs:
      - url: '{url}'
  - name: trunc
    webhook_configs:
      - url: '{url}'
        max_alerts: 2
"""

ALERTS: list[dict[str, Any]] = [
    {"labels": {"alertname": "Disk", "team": "a", "instance": "b", "job": "node"}},
    {"labels": {"alertname": "Disk", "team": "a", "instance": "a", "job": "node"},
     "annotations": {"summary": "<b>full</b> & \"quoted\" é"}, "generatorURL": "http://g/x?a=1&b=2"},
    {"labels": {"alertname": "Disk", "team": "a"}},
    {"labels": {"alertname": "Load", "team": "b", "job": "j2"}},
    {"labels": {"alertname": "T", "team": "trunc", "i": "1"}},
    {"labels": {"alertname": "T", "team": "trunc", "i": "2"}},
    {"labels": {"alertname": "T", "team": "trunc", "i": "3"}},
]  # fmt: skip

_TIME = re.compile(rb'"(startsAt|endsAt)":"[^"]*"')


def _normalise(body: bytes) -> bytes:
    out = _TIME.sub(rb'"\1":"T"', body)
    return re.sub(rb'"externalURL":"[^"]*"', b'"externalURL":"X"', out)


def _collect(sink: WebhookSink, count: int) -> dict[str, bytes]:
    bodies = {}
    for _ in range(count):
        raw = sink.next().body
        bodies[json.loads(raw)["groupKey"]] = _normalise(raw)
    return bodies


def test_webhook_bodies_match_alertmanager(tmp_path: Path) -> None:
    """For the same config and alerts, every webhook body equals Alertmanager's bytes."""
    got: dict[str, dict[str, bytes]] = {}
    for kind, runner in (("am", run_alertmanager), ("tocsin", run_tocsin)):
        work = tmp_path / kind
        work.mkdir()
        with WebhookSink() as sink, runner(work, CONFIG.format(url=sink.url)) as d:
            assert d.post_alerts(ALERTS).status_code == 200
            got[kind] = _collect(sink, 3)
            assert sink.quiet_for(1.0)
    assert got["tocsin"] == got["am"]
    assert len(got["am"]) == 3
    assert b'"truncatedAlerts":1' in got["am"]['{}/{team="trunc"}:{team="trunc"}']


def _amtool(url: str, *args: str) -> str:
    done = subprocess.run(
        [AMTOOL, f"--alertmanager.url={url}", *args],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_amtool_adds_and_queries_alerts(tmp_path: Path) -> None:
    """amtool alert add posts to tocsin and amtool alert query reads the alerts back."""
    with WebhookSink() as sink, run_tocsin(tmp_path, CONFIG.format(url=sink.url)) as d:
        _amtool(d.url, "alert", "add", "alertname=FromAmtool", "team=x", "severity=page",
                "--annotation=summary=hello")  # fmt: skip
        _amtool(d.url, "alert", "add", "alertname=Other", "team=y")
        out = json.loads(_amtool(d.url, "alert", "query", "-o", "json", "alertname=FromAmtool"))
        assert [a["labels"] for a in out] == [
            {"alertname": "FromAmtool", "severity": "page", "team": "x"}
        ]
        assert out[0]["annotations"] == {"summary": "hello"}
        assert out[0]["status"]["state"] == "active"
        simple = _amtool(d.url, "alert", "query")
        assert "FromAmtool" in simple and "Other" in simple
        groups = json.loads(_amtool(d.url, "alert", "query", "-o", "json", "team=~x|y"))
        assert {a["labels"]["alertname"] for a in groups} == {"FromAmtool", "Other"}


def test_amtool_reads_status_and_receivers(tmp_path: Path) -> None:
    """amtool config show and config routes read tocsin's /api/v2/status."""
    with WebhookSink() as sink, run_tocsin(tmp_path, CONFIG.format(url=sink.url)) as d:
        shown = _amtool(d.url, "config", "show")
        assert "receiver: hook" in shown and "max_alerts: 2" in shown
        routes = _amtool(d.url, "config", "routes")
        assert "hook" in routes and "trunc" in routes


def test_amtool_silences_mute_alerts(tmp_path: Path) -> None:
    """amtool silence add/query/update/expire work against tocsin and silences mute."""
    with WebhookSink() as sink, run_tocsin(tmp_path, CONFIG.format(url=sink.url)) as d:
        sid = _amtool(d.url, "silence", "add", "alertname=Muted", "--comment=maintenance",
                      "--author=ops", "--duration=1h").strip()  # fmt: skip
        assert re.fullmatch(r"[0-9a-f-]{36}", sid)
        d.post_alerts(
            [
                {"labels": {"alertname": "Muted", "team": "a"}},
                {"labels": {"alertname": "Loud", "team": "a"}},
            ]
        )
        sent = sink.next().json()
        assert [a["labels"]["alertname"] for a in sent["alerts"]] == ["Loud"]
        assert sink.quiet_for(2.5)
        queried = json.loads(_amtool(d.url, "silence", "query", "-o", "json"))
        assert [(s["id"], s["createdBy"], s["status"]["state"]) for s in queried] == [
            (sid, "ops", "active")
        ]
        muted = json.loads(_amtool(d.url, "alert", "query", "-s", "-o", "json", "alertname=Muted"))
        assert muted[0]["status"]["silencedBy"] == [sid]
        updated = _amtool(d.url, "silence", "update", sid, "--comment=longer").splitlines()
        assert updated[1].split()[0] == sid and updated[1].split()[-1] == "longer"
        _amtool(d.url, "silence", "expire", sid)
        after = json.loads(_amtool(d.url, "silence", "query", "--expired", "-o", "json"))
        assert [s["status"]["state"] for s in after] == ["expired"]
        # Once the silence ends the alert is new to dedup and goes out at the next tick.
        assert [a["labels"]["alertname"] for a in sink.next().json()["alerts"]] == ["Muted"]
