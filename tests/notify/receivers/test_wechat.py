"""The WeChat integration: token fetch and caching, message body, reply codes."""

from __future__ import annotations

import json
import pathlib

import httpx
import pytest
import trio

from daemon.clock import FixedClock
from daemon.notify.receivers import wechat
from daemon.notify.receivers.base import IntegrationEnv
from tests.integration.processes import Recorded
from tests.notify.receivers.conftest import (
    AM_CONFIG,
    ctx,
    env_with,
    failure_of,
    firing,
    integration_config,
    ours,
    real_templates,
    run_alertmanager,
    start_sink,
)


class WeChatServer:
    """Answers gettoken with ``token`` and message/send with ``reply`` (status 200)."""

    def __init__(self, token: str = "tok1", reply: str = '{"code":0}', status: int = 200) -> None:
        self.token = token
        self.reply = reply
        self.status = status
        self.requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        if request.url.path.endswith("/gettoken"):
            return httpx.Response(200, content=json.dumps({"access_token": self.token}).encode())
        return httpx.Response(self.status, content=self.reply.encode())


def make(
    server: WeChatServer,
    entry: str = "{message: m, to_user: u, to_party: '', to_tag: '', agent_id: '1'}",
) -> tuple[wechat.WeChatIntegration, IntegrationEnv]:
    env = env_with(server)
    return wechat.build(integration_config("wechat", entry), 0, env), env


async def test_token_then_message_exact() -> None:
    """A token is fetched first, then the message is posted with it; body bytes are Go's."""
    server = WeChatServer()
    integ, _ = make(server)
    await integ.notify(ctx(), [firing()])
    token_req, send_req = server.requests
    assert token_req.method == "GET"
    assert str(token_req.url) == (
        "https://qyapi.weixin.qq.com/cgi-bin/gettoken?corpid=wc-corp&corpsecret=wc-secret"
    )
    assert str(send_req.url) == (
        "https://qyapi.weixin.qq.com/cgi-bin/message/send?access_token=tok1"
    )
    assert send_req.content == (
        b'{"text":{"content":"m"},"touser":"u","agentid":"1","safe":"0","msgtype":"text",'
        b'"markdown":{"content":""}}\n'
    )


async def test_markdown_type_fills_markdown_content() -> None:
    """message_type markdown puts the message in the markdown struct."""
    server = WeChatServer()
    integ, _ = make(
        server,
        "{message: '<m>', message_type: markdown, to_user: '', to_party: '', to_tag: '', agent_id: ''}",
    )
    await integ.notify(ctx(), [firing()])
    assert server.requests[1].content == (
        b'{"text":{"content":""},"safe":"0","msgtype":"markdown",'
        b'"markdown":{"content":"\\u003cm\\u003e"}}\n'
    )


async def test_token_cached_for_two_hours() -> None:
    """The token is reused within two hours and refetched after."""
    server = WeChatServer()
    integ, env = make(server)
    clock = env.clock
    assert isinstance(clock, FixedClock)
    await integ.notify(ctx(), [firing()])
    clock.advance(7199)
    await integ.notify(ctx(), [firing()])
    clock.advance(2)
    await integ.notify(ctx(), [firing()])
    paths = [r.url.path.rsplit("/", 1)[-1] for r in server.requests]
    assert paths == ["gettoken", "send", "send", "gettoken", "send"]


async def test_expired_token_code_drops_cache_and_retries() -> None:
    """Reply code 42001 is retryable and forces a new token next time."""
    server = WeChatServer(reply='{"code":42001,"error":"expired"}')
    integ, _ = make(server)
    err = await failure_of(integ, [firing()])
    assert (str(err), err.retryable) == ("expired", True)
    server.reply = '{"code":0}'
    await integ.notify(ctx(), [firing()])
    assert [r.url.path.rsplit("/", 1)[-1] for r in server.requests] == [
        "gettoken",
        "send",
        "gettoken",
        "send",
    ]


@pytest.mark.parametrize(
    ("status", "reply", "retryable"),
    [
        (200, '{"code":1,"error":"bad"}', False),
        (200, "not json", True),
        (400, "{}", True),
        (503, "{}", True),
    ],
)
async def test_reply_classification(status: int, reply: str, retryable: bool) -> None:
    """Non-200 and unparsable replies retry; other non-zero codes are permanent."""
    integ, _ = make(WeChatServer(reply=reply, status=status))
    assert (await failure_of(integ, [firing()])).retryable is retryable


async def test_missing_token_is_permanent() -> None:
    """A token reply without access_token is a permanent error naming the corp ID."""
    integ, _ = make(WeChatServer(token=""))
    err = await failure_of(integ, [firing()])
    assert (str(err), err.retryable) == ("invalid APISecret for CorpID: wc-corp", False)


async def test_default_templates() -> None:
    """Built-in templates render the default message and omit the empty recipients."""
    server = WeChatServer()
    integ = wechat.build(integration_config("wechat", "{}"), 0, env_with(server, real_templates()))
    await integ.notify(ctx(), [firing()])
    body = json.loads(server.requests[1].content)
    assert [k for k in body if k.startswith("to") or k == "agentid"] == []
    assert body["text"]["content"].startswith("[FIRING:1] Q ")


def wechat_responder(request: Recorded) -> tuple[int, bytes]:
    """A WeChat API stand-in: a token for gettoken, success for message/send."""
    if "/gettoken" in request.target:
        return 200, b'{"access_token":"tok-9"}'
    return 200, b'{"code":0}'


@pytest.mark.alertmanager
@pytest.mark.parametrize("message_type", ["text", "markdown"])
async def test_same_requests_as_alertmanager(
    message_type: str, tmp_path: pathlib.Path, nursery: trio.Nursery
) -> None:
    """Alertmanager 0.25 and tocsin fetch the token and send the same message."""
    sink = await start_sink(nursery, tmp_path, wechat_responder)
    config_text = (
        AM_CONFIG
        + "  wechat_configs:\n  - api_secret: 's&c'\n    corp_id: corp\n"
        + f"    api_url: {sink.url}/cgi-bin/\n    to_party: '2'\n    agent_id: '1000002'\n"
        + f"    message_type: {message_type}\n"
    )
    await run_alertmanager(tmp_path, config_text, sink, 2)
    mine = await ours(config_text, wechat_responder)
    assert [(r.method, r.target, r.body.decode()) for r in mine] == [
        (r.method, r.target, r.body.decode()) for r in sink.requests
    ]
