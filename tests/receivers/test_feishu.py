"""Feishu bot end to end against a mock transport."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json

import pytest

from daemon.notify.receivers import registry
from daemon.notify.retry import NotifyError
from tests.receivers.test_dingtalk import extra_config
from tests.receivers.test_slack import NOW, Recorder, make_ctx, make_env, sample_alerts


async def test_signed_text_body() -> None:
    """timestamp (seconds, string) and sign (HMAC keyed by "ts\\nsecret" over nothing) lead the body."""
    rec = Recorder(body=b'{"code":0,"msg":"success"}')
    cfg = extra_config(
        "feishu",
        webhook_url="https://open.feishu.cn/hook/x",
        secret="s3",
        message="hi {{ .Status }}",
        keywords=["k"],
    )
    integ = registry.build_integration(cfg, 0, make_env(rec))
    assert integ is not None
    await integ.notify(make_ctx(), sample_alerts())
    ts = NOW // 10**9
    expected_sign = base64.b64encode(
        hmac.new(f"{ts}\ns3".encode(), b"", hashlib.sha256).digest()
    ).decode()
    (req,) = rec.requests
    assert json.loads(req.content) == {
        "timestamp": str(ts),
        "sign": expected_sign,
        "msg_type": "text",
        "content": {"text": "hi firing\n[Keywords] k"},
    }


async def test_unsigned_and_error_codes() -> None:
    """Without a secret no signature is sent; code 9499 retries, other codes are permanent."""
    rec = Recorder(body=b'{"StatusCode":0}')
    cfg = extra_config("feishu", webhook_url="http://f/hook", message="m")
    integ = registry.build_integration(cfg, 0, make_env(rec))
    assert integ is not None
    await integ.notify(make_ctx(), sample_alerts())
    assert json.loads(rec.requests[0].content) == {"msg_type": "text", "content": {"text": "m"}}
    for payload, retryable in (
        (b'{"code":9499,"msg":"too many"}', True),
        (b'{"code":19021,"msg":"sign"}', False),
    ):
        integ = registry.build_integration(cfg, 0, make_env(Recorder(body=payload)))
        assert integ is not None
        with pytest.raises(NotifyError) as info:
            await integ.notify(make_ctx(), sample_alerts())
        assert info.value.retryable is retryable
