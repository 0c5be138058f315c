"""WeCom group bot end to end against a mock transport."""

from __future__ import annotations

import json

import pytest

from daemon.notify.receivers import registry
from daemon.notify.retry import NotifyError
from tests.receivers.test_dingtalk import extra_config
from tests.receivers.test_slack import Recorder, make_ctx, make_env, sample_alerts


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
    integ = registry.build_integration(cfg, 0, make_env(rec))
    assert integ is not None
    await integ.notify(make_ctx(), sample_alerts())
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
    integ = registry.build_integration(cfg, 0, make_env(rec))
    assert integ is not None
    await integ.notify(make_ctx(), sample_alerts())
    contents = [json.loads(r.content)["markdown"]["content"] for r in rec.requests]
    assert contents == ["字" * 1000 + "\n" + "\n<@u1>"] * 2
    assert all(len(c.encode()) <= 4096 for c in contents)


async def test_rate_limit_retries() -> None:
    """errcode 45009 (rate limit) is retryable; an HTTP 400 is not."""
    cfg = extra_config("wecom", webhook_url="http://w/hook", message="m")
    integ = registry.build_integration(cfg, 0, make_env(Recorder(body=b'{"errcode":45009}')))
    assert integ is not None
    with pytest.raises(NotifyError) as info:
        await integ.notify(make_ctx(), sample_alerts())
    assert info.value.retryable
    integ = registry.build_integration(cfg, 0, make_env(Recorder([400])))
    assert integ is not None
    with pytest.raises(NotifyError) as info:
        await integ.notify(make_ctx(), sample_alerts())
    assert not info.value.retryable
