"""tocsinctl history: parameters, paging, formats and errors, and against a real daemon."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from daemon.ctl import main
from tests.ctl.test_cli import Server
from tests.integration.processes import ROOT, WebhookSink, run_tocsin

ITEM = {
    "time": "2026-12-06T01:46:40.697870233Z",
    "tenant": "",
    "receiver": "default",
    "integration": {"name": "webhook", "index": 0},
    "groupKey": '{}:{alertname="DiskFull"}',
    "groupLabels": {"alertname": "DiskFull"},
    "status": "firing",
    "reason": "NOTIFY_REASON_FIRST_NOTIFICATION",
    "outcome": "sent",
    "error": None,
    "attempts": 1,
    "durationSeconds": 0.0016,
    "alerts": [{"fingerprint": "3d8fc23df68d2038", "labels": {"alertname": "DiskFull"}}],
}


def test_flags_become_query_parameters(tmp_path: Path) -> None:
    """Receiver, outcome, times, limit and matchers go to GET /api/v1/history as given."""
    server = Server(lambda request: httpx.Response(200, json={"items": [], "next_cursor": None}))
    argv = ["history", "-r", "default", "--outcome=failed", "--from=2026-12-06T00:00:00Z"]
    assert main([*argv, "alertname=DiskFull"], home=str(tmp_path), transport=server.transport) == 0
    (request,) = server.requests
    assert request.url.path == "/api/v1/history"
    assert list(request.url.params.multi_items()) == [
        ("receiver", "default"),
        ("outcome", "failed"),
        ("from", "2026-12-06T00:00:00Z"),
        ("limit", "100"),
        ("filter", "alertname=DiskFull"),
    ]


def test_all_follows_the_cursor(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """--all asks for each next page until the cursor is null; the table lists every row."""
    pages = {
        None: {"items": [ITEM], "next_cursor": "c1"},
        "c1": {"items": [{**ITEM, "outcome": "suppressed", "reason": None}], "next_cursor": None},
    }
    server = Server(lambda r: httpx.Response(200, json=pages[r.url.params.get("cursor")]))
    assert main(["history", "--all"], home=str(tmp_path), transport=server.transport) == 0
    assert [r.url.params.get("cursor") for r in server.requests] == [None, "c1"]
    out = capsys.readouterr().out.splitlines()
    assert out[0].split() == [
        "Time",
        "Receiver",
        "Integration",
        "Group",
        "Status",
        "Outcome",
        "Reason",
    ]
    assert "webhook[0]" in out[1] and "first notification" in out[1]
    assert "suppressed" in out[2]


def test_one_page_hints_at_more(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Without --all, one page is shown and stderr says how to see the rest."""
    server = Server(lambda r: httpx.Response(200, json={"items": [ITEM], "next_cursor": "c1"}))
    assert main(["history"], home=str(tmp_path), transport=server.transport) == 0
    assert len(server.requests) == 1
    assert "--all" in capsys.readouterr().err


def test_json_is_the_records_as_given(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """-o json prints the server's records."""
    server = Server(lambda r: httpx.Response(200, json={"items": [ITEM], "next_cursor": None}))
    assert main(["-o", "json", "history"], home=str(tmp_path), transport=server.transport) == 0
    assert json.loads(capsys.readouterr().out) == [ITEM]


def test_refused_query_and_no_history(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A 400 shows the server's reason; a server without history says so and why."""
    bad = Server(lambda r: httpx.Response(400, json={"error": "outcome must be one of ..."}))
    assert main(["history", "--limit=5"], home=str(tmp_path), transport=bad.transport) == 1
    assert "outcome must be one of" in capsys.readouterr().err
    none = Server(lambda r: httpx.Response(404, text="not found"))
    assert main(["history"], home=str(tmp_path), transport=none.transport) == 1
    err = capsys.readouterr().err
    assert "keeps no notification history" in err and "--history.retention=0" in err


def test_history_of_a_real_daemon(tmp_path: Path) -> None:
    """A sent notification shows in tocsinctl history -o extended of the running daemon."""
    config = "route: {receiver: r, group_wait: 0s}\nreceivers: [{name: r, webhook_configs: [{url: '%s'}]}]\n"
    with WebhookSink() as sink, run_tocsin(tmp_path, config % sink.url) as d:
        d.post_alerts([{"labels": {"alertname": "FromCtl"}}])
        sink.next()
        deadline = time.monotonic() + 20
        while True:
            done = subprocess.run(
                [sys.executable, "-m", "daemon.ctl", "history", "-o", "extended",
                 f"--alertmanager.url={d.url}", "alertname=FromCtl"],
                cwd=ROOT, capture_output=True, text=True, timeout=60,
            )  # fmt: skip
            if len(done.stdout.splitlines()) > 1 or time.monotonic() > deadline:
                break
            time.sleep(0.2)
    assert done.returncode == 0, done.stderr
    head, row = done.stdout.splitlines()  # the filter matched the one notification
    assert head.split()[-4:] == ["Attempts", "Seconds", "Alerts", "Error"]
    assert "webhook[0]" in row and " sent " in row and "first notification" in row
