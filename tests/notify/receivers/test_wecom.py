"""WeCom group bot end to end against a mock transport."""

from __future__ import annotations

import json

from tests.notify.receivers.conftest import (
    Recorder,
    chat_failure,
    chat_notify,
    extra_config,
)


async def test_text_with_mentions() -> None:
    """Text messages carry the mention lists next to the content."""
    rec = Recorder(body=b'{"errcode":0,"errmsg":"ok"}')
    cfg = extra_config(
        "wecom",
        webhook_url="https://qyapi.weixin.qq.com/cgi-bin/webhook/send?key=K",
        message="{{ .Status }}",
        mentioned_list=["@all"],
        mentioned_mobile_list=["139"],
    )
    await chat_notify(cfg, rec)
    (req,) = rec.requests
    assert str(req.url) == "https://qyapi.weixin.qq.com/cgi-bin/webhook/send?key=K"
    assert json.loads(req.content) == {
        "msgtype": "text",
        "text": {"content": "firing", "mentioned_list": ["@all"], "mentioned_mobile_list": ["139"]},
    }


async def test_markdown_mentions_inline_and_split_at_4096_bytes() -> None:
    """Markdown appends <@user> mentions and splits messages to fit 4096 bytes."""
    rec = Recorder(body=b'{"errcode":0}')
    cfg = extra_config(
        "wecom",
        webhook_url="http://w/hook",
        message_type="markdown",
        mentioned_list=["u1"],
        message="{{ range .Alerts }}" + "字" * 1000 + '{{ "\\n" }}{{ end }}',
    )
    await chat_notify(cfg, rec)
    contents = [json.loads(r.content)["markdown"]["content"] for r in rec.requests]
    assert contents == ["字" * 1000 + "\n" + "\n<@u1>"] * 2
    assert all(len(c.encode()) <= 4096 for c in contents)


async def test_rate_limit_retries() -> None:
    """errcode 45009 (rate limit) is retryable; an HTTP 400 is not."""
    cfg = extra_config("wecom", webhook_url="http://w/hook", message="m")
    err = await chat_failure(cfg, Recorder(body=b'{"errcode":45009}'))
    assert err.retryable
    err = await chat_failure(cfg, Recorder([400]))
    assert not err.retryable
