"""The OpsGenie integration: create/close/update requests, responders, tags, errors."""

from __future__ import annotations

import json
import pathlib

import httpx
import pytest
import trio

from daemon.notify.receivers import opsgenie
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

OPSGENIE = Kind("opsgenie", opsgenie.build)


async def test_create_body_is_exact() -> None:
    """A firing group creates an alert with Go's field order and omitted empties."""
    seen = await OPSGENIE.sent(
        "{message: m, description: '', source: s, details: {d: '{{ v }}'},"
        " tags: ' a,,b ', priority: P1, actions: 'x,y', entity: e, note: ''}",
        [firing(instance="i")],
    )
    (request,) = seen
    assert request.method == "POST"
    assert request.url == "https://api.opsgenie.com/v2/alerts"
    assert request.headers["Authorization"] == "GenieKey og-key"
    assert request.headers["Content-Type"] == "application/json"
    assert request.content == (
        b'{"alias":"' + DEDUP.encode() + b'","message":"m",'
        b'"details":{"alertname":"Q","d":"\\u003cv\\u003e","instance":"i"},"source":"s",'
        b'"tags":["a","b"],"priority":"P1","entity":"e","actions":["x","y"]}\n'
    )


async def test_resolved_group_closes_by_alias() -> None:
    """A resolved group closes the alert by alias with only the source in the body."""
    seen = await OPSGENIE.sent("{source: src, api_url: 'http://og.local/base/?x=1'}", [resolved()])
    (request,) = seen
    assert str(request.url) == (
        f"http://og.local/base/v2/alerts/{DEDUP}/close?identifierType=alias&x=1"
    )
    assert request.content == b'{"source":"src"}\n'


async def test_update_alerts_sends_message_and_description() -> None:
    """update_alerts adds PUTs of message and description after the create."""
    seen = await OPSGENIE.sent("{message: m, description: desc, update_alerts: true}")
    assert [(r.method, r.url.path, r.url.query) for r in seen] == [
        ("POST", "/v2/alerts", b""),
        ("PUT", f"/v2/alerts/{DEDUP}/message", b"identifierType=alias"),
        ("PUT", f"/v2/alerts/{DEDUP}/description", b"identifierType=alias"),
    ]
    assert seen[1].content == b'{"message":"m"}\n'
    assert seen[2].content == b'{"description":"desc"}\n'


async def test_responders_expand_teams_and_drop_empty() -> None:
    """A teams responder becomes one team per name; an all-empty one is dropped."""
    seen = await OPSGENIE.sent(
        "{responders: [{name: 'a, b,', type: teams}, {id: '{{ \"\" }}', type: '{{ \"\" }}'},"
        " {username: u, type: user}, {id: i1, type: team}]}",
        templater=real_templates(),
    )
    assert json.loads(seen[0].content)["responders"] == [
        {"name": "a", "type": "team"},
        {"name": " b", "type": "team"},
        {"username": "u", "type": "user"},
        {"id": "i1", "type": "team"},
    ]


async def test_message_truncated_to_130_runes() -> None:
    """The message is cut to 130 runes ending in an ellipsis."""
    seen = await OPSGENIE.sent("{message: '" + "ü" * 200 + "'}")
    assert json.loads(seen[0].content)["message"] == "ü" * 129 + "…"


@pytest.mark.parametrize(("status", "retryable"), [(429, True), (500, True), (422, False)])
async def test_status_classification(status: int, retryable: bool) -> None:
    """429 and 5xx retry; other failures are permanent; later requests are not sent."""
    seen, handler = recorder([status])
    err = await OPSGENIE.failure("{update_alerts: true}", handler)
    assert err.retryable is retryable
    assert len(seen) == 1


async def test_transport_error_retryable() -> None:
    """A connection failure is retryable."""
    assert (await OPSGENIE.failure("{}", failing(httpx.ConnectError("refused")))).retryable


async def test_template_error_permanent() -> None:
    """A failing template is a permanent error and sends nothing."""
    seen, handler = recorder()
    assert not (await OPSGENIE.failure("{note: '{{ FAIL }}'}", handler)).retryable
    assert seen == []


async def test_default_templates() -> None:
    """With built-in templates the message is the subject and the source the alerts page."""
    seen = await OPSGENIE.sent("{}", templater=real_templates())
    body = json.loads(seen[0].content)
    assert body["message"] == "[FIRING:1] Q "
    assert body["source"] == "http://am.example:9093/#/alerts?receiver=team"


def test_safe_split() -> None:
    """safeSplit trims the whole string and drops empty parts only."""
    assert opsgenie.safe_split("  a, b,,c ", ",") == ["a", " b", "c"]
    assert opsgenie.safe_split("   ", ",") == []


@pytest.mark.alertmanager
async def test_same_requests_as_alertmanager(tmp_path: pathlib.Path, nursery: trio.Nursery) -> None:
    """Alertmanager 0.25 and tocsin send the same create and update requests."""
    mine, theirs = await side_by_side(
        tmp_path,
        nursery,
        lambda url: (
            "  opsgenie_configs:\n  - api_key: k\n"
            + f"    api_url: {url}/og/\n"
            + "    update_alerts: true\n    tags: 'a,{{ .CommonLabels.severity }}'\n"
            + "    priority: P2\n    entity: e\n    actions: x\n    note: n\n"
            + "    details: {extra: '{{ .Status }}'}\n"
            + "    responders: [{name: 't1,t2', type: teams}, {username: u, type: user}]\n"
        ),
        count=3,
    )
    assert len(mine) == len(theirs) == 3
    for a, b in zip(mine, theirs, strict=True):
        assert (a.method, a.target, a.body.decode()) == (b.method, b.target, b.body.decode())
        assert a.headers["authorization"] == b.headers["authorization"] == "GenieKey k"
