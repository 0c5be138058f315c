"""Discord end to end against a mock transport."""

from __future__ import annotations

import json

import pytest

from tests.notify.receivers.conftest import (
    Recorder,
    chat_config,
    chat_failure,
    chat_integration,
    chat_notify,
    make_ctx,
    sample_alerts,
)

DISCORD = "  discord_configs:\n  - webhook_url: http://discord.example/api/webhooks/1/x\n"


async def test_default_body_exact() -> None:
    """Content is empty, one embed with the subject, the firing/resolved lists and red colour."""
    rec = Recorder()
    integ = chat_integration(chat_config(DISCORD), rec)
    assert integ.send_resolved
    await integ.notify(make_ctx(), sample_alerts())
    (req,) = rec.requests
    assert req.headers["content-type"] == "application/json"
    description = (
        "\n\nAlerts Firing:\nLabels:\n - alertname = Disk\n - instance = a:9100\n"
        " - severity = page\nAnnotations:\n - runbook = http://r/x\n"
        " - summary = disk <full> & slow\nSource: http://prom/graph?g0=1&x=<y>\n\n\n\n"
        "Alerts Resolved:\nLabels:\n - alertname = Disk\n - instance = b:9100\n"
        " - severity = page\nAnnotations:\n - summary = disk full\n"
        "Source: http://prom/graph?g0=2\n\n\n"
    )
    expected = {
        "content": "",
        "embeds": [
            {"title": "[FIRING:1] Disk (page)", "description": description, "color": 0x992D22}
        ],
    }
    escaped = json.dumps(expected, separators=(",", ":"), ensure_ascii=False)
    for raw, esc in (("&", "\\u0026"), ("<", "\\u003c"), (">", "\\u003e")):
        escaped = escaped.replace(raw, esc)
    assert req.content == (escaped + "\n").encode()


async def test_resolved_colour_and_long_description_split() -> None:
    """An all-resolved group is green; a description over 4096 runes goes out in parts."""
    rec = Recorder()
    cfg = chat_config(
        DISCORD
        + "    message: '{{ range $i, $_ := .Alerts }}"
        + "x" * 3000
        + '{{ "\\n" }}{{ end }}\'\n'
    )
    integ = chat_integration(cfg, rec)
    alerts = [a.copy(ends_at=a.starts_at + 1) for a in sample_alerts()]
    await integ.notify(make_ctx(), alerts)
    bodies = [json.loads(r.content) for r in rec.requests]
    assert [b["embeds"][0]["color"] for b in bodies] == [0x2ECC71, 0x2ECC71]
    assert "".join(b["embeds"][0]["description"] for b in bodies) == ("x" * 3000 + "\n") * 2


async def test_split_disabled_sends_whole_message() -> None:
    """With split_long_messages off the long description is sent whole, as Alertmanager 0.25."""
    rec = Recorder()
    cfg = chat_config(DISCORD + "    message: '" + "y" * 5000 + "'\n")
    integ = chat_integration(cfg, rec)
    integ.fields["split_long_messages"] = False  # type: ignore[attr-defined]
    await integ.notify(make_ctx(), sample_alerts())
    (req,) = rec.requests
    assert json.loads(req.content)["embeds"][0]["description"] == "y" * 5000


@pytest.mark.parametrize(("status", "retryable"), [(500, True), (429, False), (400, False)])
async def test_status_classification(status: int, retryable: bool) -> None:
    """5xx retries; 4xx is permanent."""
    err = await chat_failure(chat_config(DISCORD), Recorder([status]))
    assert err.retryable is retryable
    assert str(err).startswith(f"unexpected status code {status}")


async def test_any_2xx_is_success() -> None:
    """Discord answers 204; every 2xx counts as delivered."""
    await chat_notify(chat_config(DISCORD), Recorder([204]))
