"""The PagerDuty integration: exact v2/v1 bodies, truncation, size limit, error classes.

The small helpers at the top (fake templater, env, alerts, config loading) are shared by
the other integration tests of this package.
"""

from __future__ import annotations

import hashlib
import json
import pathlib
from collections.abc import Awaitable, Callable, Sequence
from functools import partial
from typing import Any

import httpx
import pytest
import trio

from daemon.alert import Alert
from daemon.clock import ZERO_TIME, FixedClock
from daemon.config.load import load_config_text
from daemon.config.model import IntegrationConfig
from daemon.notify.context import NotifyContext
from daemon.notify.receivers import _http, pagerduty
from daemon.notify.receivers.base import IntegrationEnv, Templater
from daemon.notify.retry import NotifyError
from daemon.template.errors import TemplateExecError
from daemon.template.render import Templates
from daemon.timestamp import parse_rfc3339
from tests.integration.processes import Recorded as Recorded  # re-exported for wechat
from tests.integration.processes import RecordingSink, Responder, alertmanager_until
from tests.integration.processes import start_sink as start_sink  # re-exported for wechat
from tests.integration.processes import write_self_signed as write_self_signed  # for email

NOW = parse_rfc3339("2026-11-23T19:31:00Z")
GROUP_KEY = '{}:{alertname="Q"}'
GLOBALS = """
global:
  smtp_smarthost: 127.0.0.1:25
  smtp_from: am@example.com
  opsgenie_api_key: og-key
  wechat_api_secret: wc-secret
  wechat_api_corp_id: wc-corp
  victorops_api_key: vo-key
"""


class FakeTemplater:
    """Renders ``{{ x }}`` as ``<x>``; fails on ``{{ FAIL }}``; records html flags."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, bool]] = []

    def render(
        self, text: str, ctx: NotifyContext, alerts: Sequence[Alert], *, html: bool = False
    ) -> str:
        self.calls.append((text, html))
        if "FAIL" in text:
            raise TemplateExecError('template: :1:3: executing "" at <FAIL>: boom')
        return text.replace("{{ ", "<").replace(" }}", ">")


Handler = Callable[[httpx.Request], httpx.Response]


def env_with(
    handler: Handler, templater: Templater | None = None, now: int = NOW
) -> IntegrationEnv:
    """An env whose HTTP client answers through ``handler``."""
    return IntegrationEnv(
        http=httpx.AsyncClient(transport=httpx.MockTransport(handler)),
        templater=templater or FakeTemplater(),
        external_url="http://am.example:9093",
        clock=FixedClock(now),
        receiver="team",
    )


def recorder(
    statuses: Sequence[int] = (200,), body: bytes = b""
) -> tuple[list[httpx.Request], Handler]:
    """A handler answering with ``statuses`` in turn (the last repeats) and the requests seen."""
    seen: list[httpx.Request] = []

    def handle(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        status = statuses[min(len(seen), len(statuses)) - 1]
        return httpx.Response(status, content=body)

    return seen, handle


def failing(exc: Exception) -> Handler:
    """A handler that raises a transport error."""

    def handle(request: httpx.Request) -> httpx.Response:
        raise exc

    return handle


def integration_config(kind: str, entry: str) -> IntegrationConfig:
    """The loaded (defaulted) config of one ``<kind>_configs`` entry written as YAML flow."""
    text = f"{GLOBALS}\nroute: {{receiver: team}}\nreceivers:\n- name: team\n  {kind}_configs: [{entry}]\n"
    return load_config_text(text).receivers[0].other_configs[0]


def firing(name: str = "Q", **labels: str) -> Alert:
    return Alert(
        {"alertname": name, **labels},
        {"summary": "it broke"},
        parse_rfc3339("2026-11-23T19:30:00Z"),
        ZERO_TIME,
        generator_url="http://prom/graph",
    )


def resolved(name: str = "Q", **labels: str) -> Alert:
    return Alert(
        {"alertname": name, **labels},
        {},
        parse_rfc3339("2026-11-23T19:00:00Z"),
        parse_rfc3339("2026-11-23T19:30:00Z"),
    )


def ctx(group_key: str = GROUP_KEY, receiver: str = "team") -> NotifyContext:
    return NotifyContext(
        group_key=group_key,
        group_labels={"alertname": "Q"},
        receiver=receiver,
        repeat_interval=3600 * 10**9,
        route_id="{}",
        now=NOW,
    )


def real_templates() -> Templates:
    """The built-in default templates, as the daemon loads them."""
    return Templates.load((), "http://am.example:9093")


async def failure_of(integration: Any, alerts: Sequence[Alert]) -> NotifyError:
    """The error ``notify`` raises."""
    with pytest.raises(NotifyError) as info:
        await integration.notify(ctx(), alerts)
    return info.value


DEDUP = hashlib.sha256(GROUP_KEY.encode()).hexdigest()


def test_key_hash_is_sha256_of_group_key() -> None:
    """The dedup key is the SHA-256 hex digest of the group key."""
    assert _http.key_hash(GROUP_KEY) == (
        "20f05103daaa538437128377aa3982ce38179cc5c6430f401eeba122f3f787c6"
    )


def test_truncate_in_runes_matches_go() -> None:
    """Rune truncation keeps n-1 runes plus the ellipsis, or n runes when n <= 3."""
    assert _http.truncate_in_runes("héllo", 5) == ("héllo", False)
    assert _http.truncate_in_runes("héllo!", 5) == ("héll…", True)
    assert _http.truncate_in_runes("héllo", 3) == ("hél", True)


def test_truncate_in_bytes_matches_go() -> None:
    """Byte truncation never splits a character and ends in the 3-byte ellipsis."""
    assert _http.truncate_in_bytes("abc", 3) == ("abc", False)
    assert _http.truncate_in_bytes("aéééé", 6) == ("aé…", True)
    assert _http.truncate_in_bytes("aéééé", 5) == ("a…", True)
    assert _http.truncate_in_bytes("abcdef", 3) == ("…", True)
    assert _http.truncate_in_bytes("abcdef", 2) == ("..", True)


async def test_v2_trigger_body_is_exact() -> None:
    """A firing group sends Go's v2 event bytes with rendered fields and default severity."""
    seen, handler = recorder()
    conf = integration_config(
        "pagerduty",
        "{routing_key: '{{ rk }}', class: c, images: [{src: '{{ s }}', alt: a}, {src: ''}],"
        " links: [{href: 'http://l', text: t}], details: {extra: '{{ e }}'}}",
    )
    integ = pagerduty.build(conf, 0, env_with(handler))
    await integ.notify(ctx(), [firing()])
    (request,) = seen
    assert request.url == "https://events.pagerduty.com/v2/enqueue"
    assert request.headers["Content-Type"] == "application/json"
    assert request.headers["User-Agent"] == "Alertmanager/0.25.0"
    body = request.content.decode()
    assert body == (
        '{"routing_key":"\\u003crk\\u003e","dedup_key":"' + DEDUP + '","event_action":"trigger",'
        '"payload":{"summary":"\\u003ctemplate \\"pagerduty.default.description\\" .}}",'
        '"source":"\\u003ctemplate \\"pagerduty.default.client\\" .\\u003e","severity":"error",'
        '"class":"c","custom_details":{"extra":"\\u003ce\\u003e",'
        '"firing":"\\u003ctemplate \\"pagerduty.default.instances\\" .Alerts.Firing\\u003e",'
        '"num_firing":"\\u003c.Alerts.Firing | len\\u003e",'
        '"num_resolved":"\\u003c.Alerts.Resolved | len\\u003e",'
        '"resolved":"\\u003ctemplate \\"pagerduty.default.instances\\" .Alerts.Resolved\\u003e"}},'
        '"client":"\\u003ctemplate \\"pagerduty.default.client\\" .\\u003e",'
        '"client_url":"\\u003ctemplate \\"pagerduty.default.clientURL\\" .\\u003e",'
        '"images":[{"src":"\\u003cs\\u003e","alt":"a","href":""}],'
        '"links":[{"href":"http://l","text":"t"}]}\n'
    )


async def test_v1_resolve_body_has_null_payload_and_no_client() -> None:
    """A v1 resolve carries event_type, incident_key, details, empty event_action, null payload."""
    seen, handler = recorder()
    conf = integration_config("pagerduty", "{service_key: sk, details: {a: b}}")
    integ = pagerduty.build(conf, 0, env_with(handler, real_templates()))
    await integ.notify(ctx(), [resolved()])
    (request,) = seen
    assert request.url == pagerduty.V1_URL
    parsed = json.loads(request.content)
    assert list(parsed) == [
        "service_key",
        "incident_key",
        "event_type",
        "description",
        "event_action",
        "payload",
        "details",
    ]
    assert parsed["event_type"] == "resolve"
    assert parsed["event_action"] == ""
    assert parsed["payload"] is None
    assert parsed["incident_key"] == DEDUP
    assert parsed["description"] == "[RESOLVED] Q "
    assert parsed["details"] == {
        "a": "b",
        "firing": "",
        "num_firing": "0",
        "num_resolved": "1",
        "resolved": "Labels:\n - alertname = Q\nAnnotations:\nSource: \n",
    }


async def test_summary_is_truncated_to_1024_runes() -> None:
    """The v2 summary is cut to 1024 runes ending in an ellipsis."""
    seen, handler = recorder()
    conf = integration_config("pagerduty", "{routing_key: k, description: '" + "é" * 2000 + "'}")
    await pagerduty.build(conf, 0, env_with(handler)).notify(ctx(), [firing()])
    summary = json.loads(seen[0].content)["payload"]["summary"]
    assert summary == "é" * 1023 + "…"


async def test_oversized_event_drops_details() -> None:
    """An event over 512000 bytes has its custom details replaced by an error note."""
    seen, handler = recorder()
    conf = integration_config(
        "pagerduty", "{routing_key: k, details: {big: '" + "x" * 600000 + "'}}"
    )
    await pagerduty.build(conf, 0, env_with(handler)).notify(ctx(), [firing()])
    details = json.loads(seen[0].content)["payload"]["custom_details"]
    assert details == {
        "error": "Custom details have been removed because the original event exceeds "
        "the maximum size of 512KB"
    }


@pytest.mark.parametrize(
    ("entry", "status", "retryable"),
    [
        ("{routing_key: k}", 429, True),
        ("{routing_key: k}", 403, False),
        ("{routing_key: k}", 503, True),
        ("{routing_key: k}", 404, False),
        ("{service_key: k}", 403, True),
        ("{service_key: k}", 429, False),
    ],
)
async def test_status_classification(entry: str, status: int, retryable: bool) -> None:
    """5xx always retries; 429 retries on v2 and 403 on v1; other codes are permanent."""
    _, handler = recorder([status])
    integ = pagerduty.build(integration_config("pagerduty", entry), 0, env_with(handler))
    err = await failure_of(integ, [firing()])
    assert err.retryable is retryable
    assert str(err).startswith(f"unexpected status code {status}")


async def test_bad_request_quotes_pagerduty_errors() -> None:
    """A 400 reply's message and errors make the error details."""
    body = b'{"status":"invalid event","message":"Event object is invalid","errors":["a","b"]}'
    _, handler = recorder([400], body)
    integ = pagerduty.build(
        integration_config("pagerduty", "{routing_key: k}"), 0, env_with(handler)
    )
    err = await failure_of(integ, [firing()])
    assert str(err) == "unexpected status code 400: Event object is invalid: a,b"
    assert not err.retryable


async def test_transport_errors_are_retryable_and_redacted() -> None:
    """Connection failures and timeouts retry and never show the URL."""
    for exc in (httpx.ConnectError("refused"), httpx.ReadTimeout("slow")):
        integ = pagerduty.build(
            integration_config("pagerduty", "{routing_key: k}"), 0, env_with(failing(exc))
        )
        err = await failure_of(integ, [firing()])
        assert err.retryable
        assert "events.pagerduty.com" not in str(err)
        assert str(err).startswith('Post "<redacted>": ')


async def test_template_error_and_empty_key_are_permanent() -> None:
    """A failing template or a routing key rendering empty stops retries."""
    _, handler = recorder()
    integ = pagerduty.build(
        integration_config("pagerduty", "{routing_key: k, severity: '{{ FAIL }}'}"),
        0,
        env_with(handler),
    )
    assert not (await failure_of(integ, [firing()])).retryable
    integ = pagerduty.build(
        integration_config("pagerduty", "{routing_key: '{{ \"\" }}'}"),
        0,
        env_with(handler, real_templates()),
    )
    err = await failure_of(integ, [firing()])
    assert (str(err), err.retryable) == ("routing key cannot be empty", False)


async def test_routing_key_file_is_read_and_trimmed(tmp_path: Any) -> None:
    """routing_key_file is read at send time and its whitespace trimmed."""
    path = tmp_path / "key"
    path.write_text("  from-file\n")
    seen, handler = recorder()
    integ = pagerduty.build(
        integration_config("pagerduty", f"{{routing_key_file: '{path}'}}"), 0, env_with(handler)
    )
    await integ.notify(ctx(), [firing()])
    assert json.loads(seen[0].content)["routing_key"] == "from-file"


async def test_default_templates_render_summary() -> None:
    """With the built-in templates the summary is the default subject."""
    seen, handler = recorder()
    integ = pagerduty.build(
        integration_config("pagerduty", "{routing_key: k}"), 0, env_with(handler, real_templates())
    )
    await integ.notify(ctx(), [firing(), firing(instance="a")])
    payload = json.loads(seen[0].content)["payload"]
    assert payload["summary"] == "[FIRING:2] Q "
    assert payload["source"] == "Alertmanager"
    assert payload["custom_details"]["num_firing"] == "2"


# --- side by side with the real Alertmanager 0.25 -----------------------------------------
#
# The harness (in tests/integration/processes.py): a loopback HTTP sink (which can also
# act as an HTTPS CONNECT proxy terminating TLS with a self-signed certificate, for
# integrations whose URL is fixed), and a runner that starts prometheus-alertmanager with
# a config pointing there, posts alerts and waits for the requests. Our side loads the
# same config text and sends the same alerts through httpx.MockTransport; the tests
# compare the requests. The other receivers' tests import the harness from here.


STARTS_AT = "2026-01-01T00:00:00Z"
SIDE_BY_SIDE_ALERTS: list[dict[str, Any]] = [
    {
        "labels": {"alertname": "Q", "instance": inst, "severity": "crit"},
        "annotations": {"summary": 'it <broke> & "bad"', "description": f"on {inst}"},
        "startsAt": STARTS_AT,
        "generatorURL": "http://prom/graph?g0.expr=up&x=1",
    }
    for inst in ("a", "b")
]
AM_CONFIG = """
route:
  receiver: team
  group_by: [alertname]
  group_wait: 0s
receivers:
- name: team
"""


async def run_alertmanager(
    tmp_path: pathlib.Path, config_text: str, sink: RecordingSink, count: int
) -> None:
    """Run Alertmanager 0.25 on ``config_text``, post the alerts, await ``count`` requests."""
    await run_alertmanager_until(tmp_path, config_text, partial(sink.wait_for, count))


async def run_alertmanager_until(
    tmp_path: pathlib.Path, config_text: str, arrived: Callable[[], Awaitable[None]]
) -> None:
    """Run Alertmanager 0.25 on ``config_text``, post the alerts, await ``arrived()``."""
    await alertmanager_until(tmp_path, config_text, SIDE_BY_SIDE_ALERTS, arrived)


def side_by_side_alerts() -> list[Alert]:
    """The posted alerts as the dispatcher hands them over (sorted, firing)."""
    return [
        Alert(
            dict(a["labels"]),
            dict(a["annotations"]),
            parse_rfc3339(STARTS_AT),
            ZERO_TIME,
            generator_url=str(a["generatorURL"]),
        )
        for a in SIDE_BY_SIDE_ALERTS
    ]


async def ours(
    config_text: str, respond: Responder | None = None, index: int = 0
) -> list[Recorded]:
    """The requests tocsin sends for the same config and alerts."""
    seen: list[Recorded] = []

    def handle(request: httpx.Request) -> httpx.Response:
        target = request.url.raw_path.decode()
        recorded = Recorded(
            request.method,
            target,
            {k.lower(): v for k, v in request.headers.items()},
            request.content,
        )
        seen.append(recorded)
        status, body = (respond or (lambda _: (200, b"")))(recorded)
        return httpx.Response(status, content=body)

    from daemon.notify.receivers.registry import build_integration

    conf = load_config_text(config_text).receivers[0].other_configs[index]
    integ = build_integration(conf, 0, env_with(handle, real_templates(), NOW))
    assert integ is not None
    await integ.notify(ctx(), side_by_side_alerts())
    return seen


async def side_by_side(
    tmp_path: pathlib.Path,
    nursery: trio.Nursery,
    entries: Callable[[str], str],
    count: int = 1,
    respond: Responder | None = None,
) -> tuple[list[Recorded], list[Recorded]]:
    """Tocsin's and Alertmanager's requests for receiver ``team`` with ``entries(sink_url)``.

    Alertmanager's are awaited until ``count`` have arrived; ``respond`` answers both.
    """
    sink = await start_sink(nursery, tmp_path, respond)
    config_text = AM_CONFIG + entries(sink.url)
    await run_alertmanager(tmp_path, config_text, sink, count)
    return await ours(config_text, respond), sink.requests


@pytest.mark.alertmanager
@pytest.mark.parametrize(
    "entry",
    [
        "routing_key: rk\n    url: {url}/v2/enqueue\n    severity: warning\n"
        "    images: [{{src: 'http://img', alt: '{{{{ .Status }}}}'}}]\n"
        "    links: [{{href: 'http://l', text: t}}]",
        "service_key: sk\n    http_config:\n      proxy_url: {url}\n"
        "      tls_config: {{insecure_skip_verify: true}}",
    ],
    ids=["v2", "v1"],
)
async def test_same_request_as_alertmanager(
    entry: str, tmp_path: pathlib.Path, nursery: trio.Nursery
) -> None:
    """Alertmanager 0.25 and tocsin send the same PagerDuty event for the same alerts."""
    mine_all, theirs_all = await side_by_side(
        tmp_path, nursery, lambda url: "  pagerduty_configs:\n  - " + entry.format(url=url) + "\n"
    )
    (theirs,) = theirs_all
    (mine,) = mine_all
    assert (mine.method, mine.target) == (theirs.method, theirs.target)
    assert mine.body.decode() == theirs.body.decode()
    assert b"summary" in theirs.body or b"description" in theirs.body
    assert mine.headers["content-type"] == theirs.headers["content-type"]
    assert mine.headers["user-agent"] == theirs.headers["user-agent"]
