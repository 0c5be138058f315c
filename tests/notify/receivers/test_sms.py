"""Generic SMS-over-HTTP receiver end to end against a mock transport."""

from __future__ import annotations

import pytest

from daemon.notify.retry import NotifyError
from tests.notify.receivers.conftest import (
    Recorder,
    chat_integration,
    extra_config,
    make_ctx,
    sample_alerts,
)


async def test_templated_url_headers_and_body() -> None:
    """URL, header values and body are templates; the default body is the subject line."""
    rec = Recorder()
    cfg = extra_config(
        "sms",
        url="http://sms.example/send?to=123&tag={{ .GroupLabels.alertname | urlquery }}",
        headers={"X-Api-Key": "k", "X-Count": "{{ len .Alerts }}"},
        content_type="application/json",
    )
    integ = chat_integration(cfg, rec)
    assert not integ.send_resolved
    await integ.notify(make_ctx(), sample_alerts())
    (req,) = rec.requests
    assert req.method == "POST"
    assert str(req.url) == "http://sms.example/send?to=123&tag=Disk"
    assert req.headers["x-api-key"] == "k" and req.headers["x-count"] == "2"
    assert req.headers["content-type"] == "application/json"
    assert req.content == b"[FIRING:1] Disk (page)"


async def test_get_sends_no_body_and_errors_classified() -> None:
    """GET carries no body; 5xx retries and 4xx does not."""
    rec = Recorder([200, 502, 403])
    cfg = extra_config("sms", url="http://sms/q?m={{ .Status }}", method="get")
    integ = chat_integration(cfg, rec)
    await integ.notify(make_ctx(), sample_alerts())
    assert rec.requests[0].method == "GET" and rec.requests[0].content == b""
    for retryable in (True, False):
        with pytest.raises(NotifyError) as info:
            await integ.notify(make_ctx(), sample_alerts())
        assert info.value.retryable is retryable
