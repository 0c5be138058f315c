"""Telegram end to end against a mock transport."""

from __future__ import annotations

import json

from daemon.notify.receivers import registry
from tests.notify.receivers.conftest import (
    Recorder,
    chat_config,
    chat_failure,
    chat_notify,
    make_ctx,
    make_env,
    sample_alerts,
)

TELEGRAM = (
    "  telegram_configs:\n  - {bot_token: 'T:k', chat_id: -1001, api_url: 'http://tg.example/'}\n"
)
OK = b'{"ok":true,"result":{"message_id":1}}'


async def test_default_message_html_escaped_and_sorted_string_params() -> None:
    """Params are sorted strings; with parse_mode HTML the message is HTML-escaped."""
    rec = Recorder(body=OK)
    await chat_notify(chat_config(TELEGRAM), rec)
    (req,) = rec.requests
    assert str(req.url) == "http://tg.example/botT:k/sendMessage"
    assert req.headers["user-agent"] == "Go-http-client/1.1"
    params = json.loads(req.content)
    assert list(params) == ["chat_id", "disable_web_page_preview", "parse_mode", "text"]
    assert params["chat_id"] == "-1001" and params["parse_mode"] == "HTML"
    assert " - summary = disk &lt;full&gt; &amp; slow\n" in params["text"]
    assert b"\\u0026lt;full\\u0026gt;" in req.content


async def test_topic_and_silent_options() -> None:
    """message_thread_id and disable_notifications add their string params in key order."""
    rec = Recorder(body=OK)
    integ = registry.build_integration(
        chat_config(
            "  telegram_configs:\n  - {bot_token: t, chat_id: 5, disable_notifications: true,"
            " parse_mode: '', message: 'hi <b>'}\n"
        ),
        0,
        make_env(rec),
    )
    assert integ is not None
    integ.fields["message_thread_id"] = 42  # type: ignore[attr-defined]
    await integ.notify(make_ctx(), sample_alerts())
    assert rec.requests[0].content == (
        b'{"chat_id":"5","disable_notification":"true","disable_web_page_preview":"true",'
        b'"message_thread_id":"42","text":"hi \\u003cb\\u003e"}\n'
    )


async def test_long_message_split_into_messages() -> None:
    """A message over 4096 runes is sent as several messages, none longer than the limit."""
    rec = Recorder(body=OK)
    cfg = chat_config(
        "  telegram_configs:\n  - bot_token: t\n    chat_id: 5\n    parse_mode: ''\n"
        "    message: '{{ range $i, $_ := .Alerts }}" + "ж" * 3000 + '{{ "\\n" }}{{ end }}\'\n'
    )
    await chat_notify(cfg, rec)
    texts = [json.loads(r.content)["text"] for r in rec.requests]
    assert texts == ["ж" * 3000 + "\n"] * 2


async def test_ok_false_is_permanent_and_5xx_retryable() -> None:
    """A 2xx reply with ok=false fails permanently; a 502 is retried."""
    bad = Recorder(body=b'{"ok":false,"description":"Bad Request: chat not found"}')
    err = await chat_failure(chat_config(TELEGRAM), bad)
    assert not err.retryable and "chat not found" in str(err)
    err = await chat_failure(chat_config(TELEGRAM), Recorder([502]))
    assert err.retryable
