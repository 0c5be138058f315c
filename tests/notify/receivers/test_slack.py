"""Slack end to end against a mock transport, and the chat integrations side by side with
Alertmanager 0.25 (slack, discord, telegram, webex share one real Alertmanager run)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from daemon.alert import Alert
from daemon.clock import ZERO_TIME
from daemon.config.load import load_config_text
from daemon.config.model import Config
from daemon.gocompat.timestamp import parse_rfc3339
from daemon.notify.receivers import registry
from daemon.notify.retry import NotifyError
from daemon.template.render import Templates
from tests.integration.processes import Request, WebhookSink, run_alertmanager, wait_for
from tests.notify.receivers.conftest import (
    CHAT_EXTERNAL_URL,
    Recorder,
    chat_config,
    chat_notify,
    make_ctx,
    make_env,
    sample_alerts,
)

SLACK = """  slack_configs:
  - api_url: http://slack.example/hook
    channel: '#ops'
    send_resolved: true
    fields: [{title: sev, value: '{{ .CommonLabels.severity }}'}]
    actions: [{type: button, text: Runbook, url: 'http://r/{{ .GroupLabels.alertname }}'}]
"""


async def test_slack_default_body_exact() -> None:
    """The default Slack body matches Alertmanager's keys, order, escaping and values."""
    rec = Recorder()
    env = make_env(rec)
    integ = registry.build_integration(chat_config(SLACK), 0, env)
    assert integ is not None and integ.name == "slack" and integ.send_resolved
    await integ.notify(make_ctx(), sample_alerts())
    (req,) = rec.requests
    assert str(req.url) == "http://slack.example/hook"
    assert req.headers["content-type"] == "application/json"
    assert req.headers["user-agent"] == "Alertmanager/0.25.0"
    link = "http://am.example/#/alerts?receiver=team"
    title = "[FIRING:1] Disk (page)"
    expected = {
        "channel": "#ops",
        "username": "Alertmanager",
        "attachments": [
            {
                "title": title,
                "title_link": link,
                "text": "",
                "fallback": f"{title} | {link}",
                "callback_id": "",
                "fields": [{"title": "sev", "value": "page", "short": False}],
                "actions": [{"type": "button", "text": "Runbook", "url": "http://r/Disk"}],
                "footer": "",
                "color": "danger",
                "mrkdwn_in": ["fallback", "pretext", "text"],
            }
        ],
    }
    assert req.content == (json.dumps(expected, separators=(",", ":")) + "\n").encode()


async def test_slack_errors_are_classified() -> None:
    """5xx is retryable and 4xx permanent; both name the channel, as upstream wraps them."""
    env = make_env(Recorder([503, 404]))
    integ = registry.build_integration(chat_config(SLACK), 0, env)
    assert integ is not None
    with pytest.raises(NotifyError) as first:
        await integ.notify(make_ctx(), sample_alerts())
    assert first.value.retryable
    assert str(first.value) == 'channel "#ops": unexpected status code 503: ok'
    with pytest.raises(NotifyError) as second:
        await integ.notify(make_ctx(), sample_alerts())
    assert not second.value.retryable


async def test_slack_long_title_truncated_and_long_text_split() -> None:
    """Titles over 1024 runes end in an ellipsis; text over 8000 runes is sent in parts."""
    rec = Recorder()
    cfg = chat_config(
        "  slack_configs:\n  - api_url: http://s/h\n"
        '    title: \'{{ range $i, $_ := (stringSlice "x") }}{{ end }}' + "é" * 1100 + "'\n"
        "    text: '" + ("line of text\n" * 700).replace("\n", '{{ "\\n" }}') + "'\n"
    )
    await chat_notify(cfg, rec)
    bodies = [json.loads(r.content) for r in rec.requests]
    assert len(bodies) == 2
    title = bodies[0]["attachments"][0]["title"]
    assert len(title) == 1024 and title.endswith("…")
    text = "".join(b["attachments"][0]["text"] for b in bodies)
    assert text == "line of text\n" * 700
    assert all(len(b["attachments"][0]["text"]) <= 8000 for b in bodies)


# --- side by side with Alertmanager 0.25 ---------------------------------------------------


CUSTOM_TEMPLATE = """{{ define "custom.body" -}}
{{ $n := len .Alerts }}{{ .Status | toUpper }} {{ printf "%d alert(s)" $n }} for {{ .GroupLabels.alertname }}
{{ range $i, $a := .Alerts -}}
{{ if eq $a.Status "firing" }}🔥{{ else }}✅{{ end }} #{{ $i }} {{ $a.Labels.instance }}
{{- with $a.Annotations.summary }} — {{ . | title }}{{ end }}
{{- if match "^a:" $a.Labels.instance }} (primary){{ end }}
 started {{ $a.StartsAt.Format "2006-01-02 15:04" }} {{ reReplaceAll "g0=([0-9]+)" "graph $1" $a.GeneratorURL }}
{{ end -}}
{{ template "custom.footer" . }}
{{- end }}
{{ define "custom.footer" }}labels: {{ join ", " (.CommonLabels.Remove (stringSlice "alertname")).Names }} <{{ .ExternalURL }}>{{ end }}
"""


def side_by_side_config(sink: str, template_path: Path) -> str:
    """One receiver with slack, discord, telegram and webex entries, defaults and custom.

    Its webhook entry shows which of Alertmanager's flushes held the whole group.
    """
    custom = "'{{ template \"custom.body\" . }}'"
    return f"""
templates: ['{template_path}']
route: {{receiver: 'chat.team', group_wait: 0s, group_interval: 1s, group_by: [alertname]}}
receivers:
- name: 'chat.team'
  webhook_configs:
  - {{url: '{sink}/webhook', send_resolved: true}}
  slack_configs:
  - {{api_url: '{sink}/slack/default', send_resolved: true, channel: '#ops'}}
  - api_url: '{sink}/slack/custom'
    send_resolved: true
    text: {custom}
    fields: [{{title: sev, value: '{{{{ .CommonLabels.severity }}}}', short: true}}]
  discord_configs:
  - {{webhook_url: '{sink}/discord/default'}}
  - {{webhook_url: '{sink}/discord/custom', message: {custom}}}
  telegram_configs:
  - {{api_url: '{sink}/telegram/default', bot_token: tok, chat_id: -100}}
  - {{api_url: '{sink}/telegram/custom', bot_token: tok, chat_id: -100, message: {custom}, parse_mode: ''}}
  webex_configs:
  - {{api_url: '{sink}/webex/default', room_id: room1, http_config: {{authorization: {{credentials: sekrit}}}}}}
  - {{api_url: '{sink}/webex/custom', room_id: room1, message: {custom}, http_config: {{authorization: {{credentials: sekrit}}}}}}
"""


POSTED = [
    {
        "labels": {"alertname": "Disk", "instance": "a:9100", "severity": "page"},
        "annotations": {"summary": "disk <full> & slow", "runbook": "http://r/x"},
        "startsAt": "2024-05-01T11:50:00Z",
        "generatorURL": "http://prom/graph?g0=1&x=<y>",
    },
    {
        "labels": {"alertname": "Disk", "instance": "b:9100", "severity": "page"},
        "annotations": {"summary": "disk full"},
        "startsAt": "2024-05-01T11:45:00Z",
        "endsAt": "2024-05-01T11:59:00Z",
        "generatorURL": "http://prom/graph?g0=2",
    },
]


@pytest.fixture
def alertmanager_run(
    tmp_path: Path,
) -> Iterator[tuple[Config, list[tuple[str, dict[str, str], bytes]]]]:
    """Runs Alertmanager 0.25 against a local sink; yields our config and its requests."""
    template_path = tmp_path / "custom.tmpl"
    template_path.write_text(CUSTOM_TEMPLATE)
    reply = b'{"ok":true,"result":{"message_id":1,"chat":{"id":-100}}}'
    with WebhookSink(reply=reply, content_type="application/json") as sink:
        text = side_by_side_config(f"http://127.0.0.1:{sink.port}", template_path)
        with run_alertmanager(
            tmp_path,
            text,
            f"--web.external-url={CHAT_EXTERNAL_URL}",
            storage=tmp_path / "data",
            env={"TZ": "UTC"},
        ) as am:
            am.post_alerts(POSTED)
            # Both alerts are old, so Alertmanager flushes the group as soon as the first
            # is in, and sometimes before the second is; the next tick (group_interval
            # 1s) then sends the whole group. Wait for that flush's webhook, then for the
            # eight other entries' requests of every flush so far.
            wait_for(lambda: any(whole_group(r) for r in sink.received), timeout=20)
            flushes = sum(r.path == "/webhook" for r in sink.received)
            sink.wait_count(9 * flushes)
        received = [(r.path, r.headers, r.body) for r in sink.received if r.path != "/webhook"]
    # Alertmanager runs a group's flushes one after another, so the last request on each
    # path is the whole group's; across paths, a partial flush's request can arrive after
    # the whole group's (seen once in a full suite run), so the test picks by path.
    yield load_config_text(text), received


def whole_group(request: Request) -> bool:
    """Whether ``request`` is a webhook notification holding every posted alert."""
    return request.path == "/webhook" and len(request.json()["alerts"]) == len(POSTED)


def _our_alerts() -> list[Alert]:
    alerts = []
    for posted in POSTED:
        ends = posted.get("endsAt")
        alerts.append(
            Alert(
                dict(posted["labels"]),  # type: ignore[arg-type]
                dict(posted["annotations"]),  # type: ignore[arg-type]
                parse_rfc3339(str(posted["startsAt"])),
                parse_rfc3339(str(ends)) if ends else ZERO_TIME,
                str(posted["generatorURL"]),
            )
        )
    # Alertmanager sorts a group's alerts by labels; instance a sorts first.
    return alerts


@pytest.mark.alertmanager
async def test_chat_bodies_equal_alertmanager(
    alertmanager_run: tuple[Config, list[tuple[str, dict[str, str], bytes]]],
    tmp_path: Path,
) -> None:
    """Slack, Discord, Telegram and Webex bodies (default and custom template) equal Alertmanager's."""
    config, theirs = alertmanager_run
    # The last request on each of the eight paths (see alertmanager_run).
    by_path = {path: (headers, body) for path, headers, body in theirs}
    assert len(by_path) == 8
    templates = Templates.load([str(tmp_path / "custom.tmpl")])
    receiver = config.receivers[0]
    ctx = make_ctx(receiver="chat.team")
    seen: dict[str, int] = {}
    for entry in receiver.other_configs:
        idx = seen.get(entry.type, 0)
        seen[entry.type] = idx + 1
        rec = Recorder(body=b'{"ok":true}')
        integ = registry.build_integration(entry, idx, make_env(rec, templates, "chat.team"))
        assert integ is not None
        await integ.notify(ctx, _our_alerts())
        (ours,) = rec.requests
        path = ours.url.raw_path.decode()
        headers, body = by_path[path]
        assert ours.content == body, path
        assert ours.headers["user-agent"] == headers["User-Agent"], path
        if entry.type == "webex":
            assert ours.headers["authorization"] == headers["Authorization"] == "Bearer sekrit"
