"""Feishu bot end to end against a mock transport."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json

from tests.notify.receivers.conftest import (
    CHAT_NOW,
    Recorder,
    chat_failure,
    chat_notify,
    extra_config,
)


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
    await chat_notify(cfg, rec)
    ts = CHAT_NOW // 10**9
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
    await chat_notify(cfg, rec)
    assert json.loads(rec.requests[0].content) == {"msg_type": "text", "content": {"text": "m"}}
    for payload, retryable in (
        (b'{"code":9499,"msg":"too many"}', True),
        (b'{"code":19021,"msg":"sign"}', False),
    ):
        err = await chat_failure(cfg, Recorder(body=payload))
        assert err.retryable is retryable
