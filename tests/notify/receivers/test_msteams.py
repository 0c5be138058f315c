"""Microsoft Teams (Alertmanager 0.26 MessageCard) end to end against a mock transport."""

from __future__ import annotations

import json

from tests.notify.receivers.conftest import (
    Recorder,
    chat_config,
    chat_failure,
    chat_integration,
    make_ctx,
    sample_alerts,
)

TEAMS = "  msteams_configs:\n  - webhook_url: http://teams.example/webhook\n"


async def test_default_card_exact() -> None:
    """The 0.26 card: context, type, title, markdown text and red theme colour, in that order."""
    rec = Recorder()
    integ = chat_integration(chat_config(TEAMS), rec)
    assert integ.send_resolved
    await integ.notify(make_ctx(), sample_alerts())
    (req,) = rec.requests
    body = json.loads(req.content)
    assert list(body) == ["@context", "type", "title", "text", "themeColor"]
    assert body["@context"] == "http://schema.org/extensions"
    assert body["type"] == "MessageCard"
    assert body["title"] == "[FIRING:1] Disk (page)"
    assert body["themeColor"] == "8C1A1A"
    assert body["text"].startswith("\n\n# Alerts Firing:\n\nLabels:\n  - alertname = Disk\n")
    assert "\n# Alerts Resolved:\n" in body["text"]


async def test_explicit_summary_and_resolved_colour() -> None:
    """A configured summary is sent after themeColor; all-resolved groups are green."""
    rec = Recorder()
    cfg = chat_config(TEAMS + "    summary: 'S {{ .Status }}'\n")
    integ = chat_integration(cfg, rec)
    alerts = [a.copy(ends_at=a.starts_at + 1) for a in sample_alerts()]
    await integ.notify(make_ctx(), alerts)
    body = json.loads(rec.requests[0].content)
    assert body["themeColor"] == "2DC72D"
    assert body["summary"] == "S resolved"


async def test_server_error_retryable() -> None:
    """A 503 is retried."""
    err = await chat_failure(chat_config(TEAMS), Recorder([503]))
    assert err.retryable
