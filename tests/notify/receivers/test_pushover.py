"""The Pushover integration: query parameters, limits, html, errors."""

from __future__ import annotations

import pathlib
import urllib.parse

import httpx
import pytest
import trio

from daemon.notify.receivers import pushover
from tests.notify.receivers.conftest import (
    FakeTemplater,
    Kind,
    ctx,
    failing,
    firing,
    real_templates,
    recorder,
    resolved,
    side_by_side,
)

PUSHOVER = Kind("pushover", pushover.build)


async def test_request_is_exact() -> None:
    """Every parameter goes sorted in the query string of an empty text/plain POST."""
    seen = await PUSHOVER.sent(
        "{user_key: u, token: 't k', title: '{{ t }}', message: ' m ', url: 'http://x?a=1',"
        " sound: s, retry: 90s, expire: 2h}"
    )
    (request,) = seen
    assert str(request.url) == (
        "https://api.pushover.net/1/messages.json?expire=7200&message=m"
        "&priority=%3Cif+eq+.Status+%22firing%22%3E2%3Celse%3E0%3Cend%3E"
        "&retry=90&sound=s&title=%3Ct%3E&token=t+k&url=http%3A%2F%2Fx%3Fa%3D1&url_title="
        "&user=u"
    )
    assert request.method == "POST"
    assert request.content == b""
    assert request.headers["Content-Type"] == "text/plain"


def params(request: httpx.Request) -> dict[str, str]:
    return dict(urllib.parse.parse_qsl(request.url.query.decode(), keep_blank_values=True))


async def test_limits_and_empty_message() -> None:
    """Title, message and URL are cut to 250, 1024 and 512 runes; empty becomes (no details)."""
    seen = await PUSHOVER.sent(
        "{user_key: u, token: t, title: '"
        + "a" * 300
        + "', message: '"
        + "b" * 2000
        + "', url: '"
        + "c" * 600
        + "'}"
    )
    got = params(seen[0])
    assert got["title"] == "a" * 249 + "…"
    assert got["message"] == "b" * 1023 + "…"
    assert got["url"] == "c" * 511 + "…"
    (empty,) = await PUSHOVER.sent("{user_key: u, token: t, message: '  '}")
    assert params(empty)["message"] == "(no details)"


async def test_html_renders_message_as_html() -> None:
    """html: true adds html=1 and renders the message in HTML mode."""
    templater = FakeTemplater()
    seen = await PUSHOVER.sent(
        "{user_key: u, token: t, html: true, message: '{{ m }}'}", templater=templater
    )
    assert params(seen[0])["html"] == "1"
    assert ("{{ m }}", True) in templater.calls


async def test_default_templates_priority() -> None:
    """With built-in templates priority is 2 when firing and 0 when resolved."""
    seen, handler = recorder()
    integ = PUSHOVER.integration("{user_key: u, token: t}", handler, real_templates())
    await integ.notify(ctx(), [firing()])
    await integ.notify(ctx(), [resolved()])
    assert [params(r)["priority"] for r in seen] == ["2", "0"]
    assert params(seen[0])["title"] == "[FIRING:1] Q "
    assert params(seen[0])["url"] == "http://am.example:9093/#/alerts?receiver=team"


@pytest.mark.parametrize(("status", "retryable"), [(500, True), (429, False), (400, False)])
async def test_status_classification(status: int, retryable: bool) -> None:
    """Only 5xx retries."""
    _, handler = recorder([status])
    assert (await PUSHOVER.failure("{user_key: u, token: t}", handler)).retryable is retryable


async def test_transport_error_hides_token() -> None:
    """A transport error retries without showing the URL holding the token."""
    err = await PUSHOVER.failure(
        "{user_key: u, token: secret-token}", failing(httpx.ConnectError("no"))
    )
    assert err.retryable and "secret-token" not in str(err)


@pytest.mark.alertmanager
@pytest.mark.parametrize("html", ["false", "true"])
async def test_same_request_as_alertmanager(
    html: str, tmp_path: pathlib.Path, nursery: trio.Nursery
) -> None:
    """Alertmanager 0.25 and tocsin send the same Pushover request (through a TLS proxy)."""
    mine_all, theirs_all = await side_by_side(
        tmp_path,
        nursery,
        lambda url: (
            "  pushover_configs:\n  - user_key: u\n    token: 't/k'\n    sound: siren\n"
            + f"    html: {html}\n    url_title: 'see {{{{ .Status }}}}'\n    retry: 90s\n"
            + f"    http_config:\n      proxy_url: {url}\n"
            + "      tls_config: {insecure_skip_verify: true}\n"
        ),
    )
    (mine,) = mine_all
    (theirs,) = theirs_all
    assert (mine.method, mine.target, mine.body) == (theirs.method, theirs.target, theirs.body)
    assert mine.headers["content-type"] == theirs.headers["content-type"]
