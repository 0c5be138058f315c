"""Webex end to end against a mock transport."""

from __future__ import annotations

import json

from tests.notify.receivers.conftest import (
    Recorder,
    chat_config,
    chat_failure,
    chat_integration,
    chat_notify,
    make_ctx,
    sample_alerts,
)

WEBEX = (
    "  webex_configs:\n  - room_id: r1\n    api_url: http://webex.example/v1/messages\n"
    "    http_config: {authorization: {credentials: tok}}\n"
)


async def test_body_and_bearer_auth() -> None:
    """Markdown then roomId, sent with the http_config bearer credentials."""
    rec = Recorder()
    await chat_notify(chat_config(WEBEX), rec)
    (req,) = rec.requests
    assert req.headers["authorization"] == "Bearer tok"
    body = json.loads(req.content)
    assert list(body) == ["markdown", "roomId"]
    assert body["markdown"].startswith("\n\nAlerts Firing:\nLabels:\n - alertname = Disk\n")


async def test_split_by_bytes_and_truncate_when_disabled() -> None:
    """Over 7439 bytes: split by default; truncated with an ellipsis when splitting is off."""
    message = "    message: '" + ("é" * 1000 + '{{ "\\n" }}') * 5 + "'\n"
    rec = Recorder()
    integ = chat_integration(chat_config(WEBEX + message), rec)
    await integ.notify(make_ctx(), sample_alerts())
    parts = [json.loads(r.content)["markdown"] for r in rec.requests]
    assert len(parts) == 2 and "".join(parts) == ("é" * 1000 + "\n") * 5
    assert all(len(p.encode()) <= 7439 for p in parts)
    rec = Recorder()
    integ = chat_integration(chat_config(WEBEX + message), rec)
    integ.fields["split_long_messages"] = False  # type: ignore[attr-defined]
    await integ.notify(make_ctx(), sample_alerts())
    (req,) = rec.requests
    markdown = json.loads(req.content)["markdown"]
    assert markdown.endswith("…") and len(markdown.encode()) <= 7439


async def test_client_error_not_retried() -> None:
    """A 401 is permanent."""
    err = await chat_failure(chat_config(WEBEX), Recorder([401]))
    assert not err.retryable
