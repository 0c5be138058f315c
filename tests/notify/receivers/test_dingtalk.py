"""DingTalk robot end to end against a mock transport, plus the extra receivers' config schema."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import urllib.parse
from typing import Any

import pytest

from daemon.config.errors import ConfigError
from daemon.config.extra_receivers import EXTRA_RECEIVER_TYPES, validate_extra_receivers
from daemon.notify.receivers.dingtalk import sign
from tests.notify.receivers.conftest import (
    CHAT_NOW,
    Recorder,
    chat_failure,
    chat_integration,
    chat_notify,
    extra_config,
    make_ctx,
    make_env,
    sample_alerts,
)


def test_sign_matches_dingtalk_reference() -> None:
    """The signature is base64 HMAC-SHA256 keyed by the secret over "ts\\nsecret"."""
    expected = base64.b64encode(
        hmac.new(b"SEC", b"1700000000000\nSEC", hashlib.sha256).digest()
    ).decode()
    assert sign(1_700_000_000_000, "SEC") == expected


async def test_signed_text_message_with_mentions_and_keywords() -> None:
    """Text body with at-mentions and the keyword line; timestamp and sign encoded once."""
    rec = Recorder(body=b'{"errcode":0,"errmsg":"ok"}')
    cfg = extra_config(
        "dingtalk",
        webhook_url="https://oapi.dingtalk.com/robot/send?access_token=abc",
        secret="SEC+/=",
        message="{{ .Status }} {{ .GroupLabels.alertname }}",
        at_mobiles=["138"],
        keywords=["alert"],
    )
    integ = chat_integration(cfg, rec)
    assert integ.send_resolved
    await integ.notify(make_ctx(), sample_alerts())
    (req,) = rec.requests
    ts = CHAT_NOW // 1_000_000
    query = req.url.query.decode()
    assert query.startswith(f"access_token=abc&timestamp={ts}&sign=")
    raw_sign = query.rsplit("sign=", 1)[1]
    assert "%" in raw_sign and "%25" not in raw_sign
    assert urllib.parse.unquote(raw_sign) == sign(ts, "SEC+/=")
    assert json.loads(req.content) == {
        "msgtype": "text",
        "text": {"content": "firing Disk\n[Keywords] alert"},
        "at": {"atMobiles": ["138"], "atUserIds": [], "isAtAll": False},
    }


async def test_markdown_split_and_errcode_handling() -> None:
    """Markdown messages over the limit are split; errcode 130101 retries, others do not."""
    rec = Recorder(body=b'{"errcode":0}')
    cfg = extra_config(
        "dingtalk",
        webhook_url="http://d/robot",
        message_type="markdown",
        message="{{ range .Alerts }}" + "x" * 60 + '{{ "\\n" }}{{ end }}',
        max_message_bytes=100,
    )
    await chat_notify(cfg, rec)
    bodies = [json.loads(r.content) for r in rec.requests]
    assert [b["markdown"]["text"] for b in bodies] == ["x" * 60 + "\n"] * 2
    assert bodies[0]["markdown"]["title"] == "[FIRING:1] Disk (page)"
    for payload, retryable in (
        (b'{"errcode":130101,"errmsg":"busy"}', True),
        (b'{"errcode":310000}', False),
    ):
        err = await chat_failure(cfg, Recorder(body=payload))
        assert err.retryable is retryable


def test_default_message_renders_subject_and_lists() -> None:
    """The default DingTalk message is the subject then the firing/resolved lists."""
    fields = EXTRA_RECEIVER_TYPES["dingtalk"]({"webhook_url": "http://x"})
    env = make_env(Recorder())
    out = env.templater.render(fields["message"], make_ctx(), sample_alerts())
    assert out.startswith("[FIRING:1] Disk (page)\n\n\nAlerts Firing:\nLabels:\n")


@pytest.mark.parametrize(
    ("type_name", "raw", "message"),
    [
        (
            "dingtalk",
            {},
            "one of webhook_url or webhook_url_file must be configured in dingtalk_config",
        ),
        ("dingtalk", {"webhook_url": "u", "bogus": 1}, "dingtalk_configs: field bogus not found"),
        (
            "wecom",
            {"webhook_url": "u", "message_type": "card"},
            'wecom_configs: unknown message_type "card" (must be text or markdown)',
        ),
        (
            "feishu",
            {"webhook_url": "u", "keywords": "x"},
            "feishu_configs: keywords must be a []string",
        ),
        ("sms", {}, "missing url in sms_config"),
    ],
)
def test_config_errors(type_name: str, raw: dict[str, Any], message: str) -> None:
    """Invalid extra-receiver entries raise ConfigError with a clear message."""
    with pytest.raises(ConfigError) as info:
        EXTRA_RECEIVER_TYPES[type_name](raw)
    assert info.value.message == message


def test_validate_extra_receivers_reads_every_type_in_order() -> None:
    """A raw receiver's extra keys yield (type, fields) pairs with defaults filled in."""
    pairs = validate_extra_receivers(
        {
            "name": "r",
            "wecom_configs": [{"webhook_url": "w"}],
            "dingtalk_configs": [{"webhook_url": "a"}, None, {"webhook_url": "b"}],
            "sms_configs": [{"url": "http://sms"}],
        }
    )
    assert [(t, f.get("webhook_url", f.get("url"))) for t, f in pairs] == [
        ("dingtalk", "a"),
        ("dingtalk", "b"),
        ("wecom", "w"),
        ("sms", "http://sms"),
    ]
    sms = pairs[3][1]
    assert (sms["method"], sms["send_resolved"], sms["split_long_messages"]) == (
        "POST",
        False,
        False,
    )
    assert pairs[0][1]["split_long_messages"] is True
