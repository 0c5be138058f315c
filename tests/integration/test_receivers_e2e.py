"""Every HTTP integration end to end: the real daemon notifies a local HTTP sink."""

from __future__ import annotations

import http.server
import json
import queue
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.integration.processes import run_tocsin

#: A reply every integration takes as success (each reads the fields it knows).
SUCCESS = json.dumps(
    {
        "ok": True,
        "errcode": 0,
        "code": 0,
        "StatusCode": 0,
        "access_token": "tok",
        "expires_in": 7200,
    }
).encode()

ENTRIES = {
    "slack": "slack_configs: [{{api_url: '{u}/slack', channel: '#ops'}}]",
    "pagerduty": "pagerduty_configs: [{{routing_key: rk, url: '{u}/pagerduty'}}]",
    "opsgenie": "opsgenie_configs: [{{api_key: k, api_url: '{u}/opsgenie/'}}]",
    "victorops": "victorops_configs: [{{api_key: k, routing_key: r, api_url: '{u}/victorops/'}}]",
    "wechat": "wechat_configs: [{{api_secret: s, corp_id: c, api_url: '{u}/wechat/', to_user: u, agent_id: '1'}}]",
    "telegram": "telegram_configs: [{{bot_token: t, chat_id: 1, api_url: '{u}/telegram'}}]",
    "discord": "discord_configs: [{{webhook_url: '{u}/discord'}}]",
    "webex": "webex_configs: [{{room_id: r, api_url: '{u}/webex', http_config: {{authorization: {{credentials: tok}}}}}}]",
    "sns": "sns_configs: [{{api_url: '{u}/sns', topic_arn: 'arn:aws:sns:us-east-1:123456789012:t', sigv4: {{region: us-east-1, access_key: AK, secret_key: SK}}}}]",
    "msteams": "msteams_configs: [{{webhook_url: '{u}/msteams'}}]",
    "dingtalk": "dingtalk_configs: [{{webhook_url: '{u}/dingtalk?access_token=x', secret: SEC}}]",
    "feishu": "feishu_configs: [{{webhook_url: '{u}/feishu'}}]",
    "wecom": "wecom_configs: [{{webhook_url: '{u}/wecom'}}]",
    "sms": "sms_configs: [{{url: '{u}/sms', send_resolved: false}}]",
}


class Sink:
    """Answers GET and POST with :data:`SUCCESS` and records (method, path, body)."""

    def __init__(self) -> None:
        self.requests: queue.Queue[tuple[str, str, bytes]] = queue.Queue()
        sink = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def _answer(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                sink.requests.put((self.command, self.path, self.rfile.read(length)))
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(SUCCESS)))
                self.end_headers()
                self.wfile.write(SUCCESS)

            do_GET = _answer
            do_POST = _answer
            do_PUT = _answer

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)


@pytest.fixture
def sink() -> Iterator[Sink]:
    s = Sink()
    s.thread.start()
    yield s
    s.server.shutdown()
    s.server.server_close()
    s.thread.join(5)


def test_every_http_integration_reaches_its_endpoint(tmp_path: Path, sink: Sink) -> None:
    """One alert per integration type arrives at that integration's endpoint, once each."""
    routes = "\n".join(
        f"    - {{matchers: ['kind=\"{kind}\"'], receiver: {kind}}}" for kind in ENTRIES
    )
    receivers = "\n".join(
        f"  - name: {kind}\n    {entry.format(u=sink.url)}" for kind, entry in ENTRIES.items()
    )
    config = (
        "route:\n  receiver: " + next(iter(ENTRIES)) + "\n  group_by: [kind]\n"
        "  group_wait: 0s\n  group_interval: 1m\n  routes:\n"
        + routes
        + "\nreceivers:\n"
        + receivers
        + "\n"
    )
    with run_tocsin(tmp_path, config) as d:
        alerts = [
            {"labels": {"alertname": "E2E", "kind": kind}, "annotations": {"summary": "hello"}}
            for kind in ENTRIES
        ]
        assert d.post_alerts(alerts).status_code == 200
        seen: dict[str, list[str]] = {}
        while set(seen) != set(ENTRIES) or "wechat" not in {
            k for k, methods in seen.items() if "POST" in methods
        }:
            method, path, body = sink.requests.get(timeout=20)
            kind = path.lstrip("/").split("/")[0].split("?")[0]
            seen.setdefault(kind, []).append(method)
            if method == "POST":
                assert body, f"{kind} sent an empty body"
        failures = [e for e in d.log_lines if e.get("event") == "notify.failed"]
        assert failures == []
    assert sorted(seen) == sorted(ENTRIES)
    # WeChat fetches its token first, then sends; everything else is one POST.
    assert seen["wechat"] == ["GET", "POST"]
    assert all(methods == ["POST"] for kind, methods in seen.items() if kind != "wechat")
