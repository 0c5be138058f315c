"""The VictorOps integration: URL, flat sorted body, message types, errors."""

from __future__ import annotations

import json
import pathlib

import httpx
import pytest
import trio

from daemon.notify.receivers import victorops
from tests.notify.receivers.conftest import (
    DEDUP,
    Kind,
    failing,
    firing,
    real_templates,
    recorder,
    resolved,
    side_by_side,
)

VICTOROPS = Kind("victorops", victorops.build)


async def test_body_and_url_are_exact() -> None:
    """The event posts to <api_url><key>/<routing key> with a key-sorted flat body."""
    seen = await VICTOROPS.sent(
        "{routing_key: 'rk {{ x }}', state_message: sm, entity_display_name: e,"
        " monitoring_tool: mt, custom_fields: {zz: '{{ c }}', aa: a}}"
    )
    (request,) = seen
    assert str(request.url) == (
        "https://alert.victorops.com/integrations/generic/20131114/alert/vo-key/rk%20%3Cx%3E"
    )
    assert request.headers["Content-Type"] == "application/json"
    assert request.content == (
        b'{"aa":"a","entity_display_name":"e","entity_id":"' + DEDUP.encode() + b'",'
        b'"message_type":"CRITICAL","monitoring_tool":"mt","state_message":"sm",'
        b'"zz":"\\u003cc\\u003e"}\n'
    )


@pytest.mark.parametrize(
    ("configured", "alert_resolved", "expected"),
    [
        ("WARNING", False, "WARNING"),
        ("INFO", False, "INFO"),
        ("bogus", False, "CRITICAL"),
        ("WARNING", True, "RECOVERY"),
    ],
)
async def test_message_type(configured: str, alert_resolved: bool, expected: str) -> None:
    """Firing keeps an allowed type or falls back to CRITICAL; resolved is RECOVERY."""
    alert = resolved() if alert_resolved else firing()
    seen = await VICTOROPS.sent(f"{{routing_key: r, message_type: {configured}}}", [alert])
    assert json.loads(seen[0].content)["message_type"] == expected


async def test_state_message_truncated() -> None:
    """state_message is cut to 20480 runes ending in an ellipsis."""
    seen = await VICTOROPS.sent("{routing_key: r, state_message: '" + "x" * 30000 + "'}")
    assert json.loads(seen[0].content)["state_message"] == "x" * 20479 + "…"


@pytest.mark.parametrize(("status", "retryable"), [(500, True), (429, False), (400, False)])
async def test_status_classification(status: int, retryable: bool) -> None:
    """Only 5xx retries."""
    _, handler = recorder([status])
    assert (await VICTOROPS.failure("{routing_key: r}", handler)).retryable is retryable


async def test_transport_error_is_retryable_and_hides_key() -> None:
    """Connection errors retry and do not reveal the URL with the API key."""
    err = await VICTOROPS.failure("{routing_key: r}", failing(httpx.ConnectTimeout("slow")))
    assert err.retryable and "vo-key" not in str(err)


async def test_template_errors() -> None:
    """A bad routing key template is permanent; a bad body template retries, as upstream."""
    _, handler = recorder()
    assert not (await VICTOROPS.failure("{routing_key: '{{ FAIL }}'}", handler)).retryable
    err = await VICTOROPS.failure("{routing_key: r, monitoring_tool: '{{ FAIL }}'}", handler)
    assert err.retryable and str(err).startswith("templating error: ")


async def test_default_templates() -> None:
    """Built-in templates give the subject as display name and Prometheus as tool."""
    seen = await VICTOROPS.sent("{routing_key: r}", templater=real_templates())
    body = json.loads(seen[0].content)
    assert body["entity_display_name"] == "[FIRING:1] Q "
    assert body["monitoring_tool"] == "Alertmanager"


@pytest.mark.alertmanager
async def test_same_request_as_alertmanager(tmp_path: pathlib.Path, nursery: trio.Nursery) -> None:
    """Alertmanager 0.25 and tocsin send the same VictorOps event."""
    mine_all, theirs_all = await side_by_side(
        tmp_path,
        nursery,
        lambda url: (
            "  victorops_configs:\n  - api_key: key\n    routing_key: 'rk-{{ .CommonLabels.severity }}'\n"
            + f"    api_url: {url}/vo/\n"
            + "    message_type: WARNING\n    custom_fields: {team: '{{ .Receiver }}'}\n"
        ),
    )
    (mine,) = mine_all
    (theirs,) = theirs_all
    assert (mine.method, mine.target, mine.body.decode()) == (
        theirs.method,
        theirs.target,
        theirs.body.decode(),
    )
