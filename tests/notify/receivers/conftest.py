"""Shared set-up of the receiver tests.

Two families of helpers. The HTTP integrations (PagerDuty, OpsGenie, VictorOps, Pushover,
SNS, WeChat, email) use a fake templater, one firing or resolved alert and a handler that
repeats its last status; :class:`Kind` builds one entry and sends through it. The chat
integrations (Slack, Discord, Telegram, Webex, MS Teams and the extra receivers) use the
real templates, a two-alert group at :data:`CHAT_NOW` and a :class:`Recorder` that
answers 200 once its queued statuses are used up. Last, the side-by-side harness runs
the real Alertmanager 0.25 against a local sink and compares its requests with ours.
"""

from __future__ import annotations

import hashlib
import pathlib
from collections.abc import Awaitable, Callable, Sequence
from functools import partial
from typing import Any, Generic, TypeVar

import attrs
import httpx
import pytest
import trio

from daemon.alert import Alert
from daemon.clock import ZERO_TIME, FixedClock
from daemon.config.extra_receivers import EXTRA_RECEIVER_TYPES
from daemon.config.load import load_config_text
from daemon.config.model import IntegrationConfig
from daemon.gocompat.timestamp import parse_rfc3339
from daemon.notify.context import NotifyContext
from daemon.notify.receivers import registry
from daemon.notify.receivers.base import Integration, IntegrationEnv, Templater
from daemon.notify.retry import NotifyError
from daemon.template.errors import TemplateExecError
from daemon.template.render import Templates
from tests.integration.processes import Recorded, RecordingSink, Responder, alertmanager_until
from tests.integration.processes import start_sink as start_sink  # for wechat
from tests.integration.processes import write_self_signed as write_self_signed  # for email

# --- the HTTP integrations -------------------------------------------------------------------

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


def loaded_integration(config_text: str, index: int = 0) -> IntegrationConfig:
    """The loaded (defaulted) ``index``-th non-webhook integration of the first receiver."""
    return load_config_text(config_text).receivers[0].other_configs[index]


def integration_config(kind: str, entry: str) -> IntegrationConfig:
    """The loaded (defaulted) config of one ``<kind>_configs`` entry written as YAML flow."""
    return loaded_integration(
        f"{GLOBALS}\nroute: {{receiver: team}}\nreceivers:\n- name: team\n  {kind}_configs: [{entry}]\n"
    )


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


IntegrationT = TypeVar("IntegrationT", bound=Integration)


@attrs.frozen
class Kind(Generic[IntegrationT]):
    """One integration type: ``build`` makes it from a ``<name>_configs`` entry."""

    name: str
    build: Callable[[IntegrationConfig, int, IntegrationEnv], IntegrationT]

    def integration(
        self, entry: str, handler: Handler, templater: Templater | None = None
    ) -> IntegrationT:
        """The integration for ``entry`` (YAML flow) whose HTTP client answers with ``handler``."""
        return self.build(integration_config(self.name, entry), 0, env_with(handler, templater))

    async def sent(
        self,
        entry: str,
        alerts: Sequence[Alert] | None = None,
        templater: Templater | None = None,
    ) -> list[httpx.Request]:
        """The requests one notification of ``alerts`` (one firing alert by default) makes."""
        seen, handler = recorder()
        integ = self.integration(entry, handler, templater)
        await integ.notify(ctx(), [firing()] if alerts is None else alerts)
        return seen

    async def failure(
        self, entry: str, handler: Handler, templater: Templater | None = None
    ) -> NotifyError:
        """The error one notification of a firing alert raises."""
        return await failure_of(self.integration(entry, handler, templater), [firing()])


# --- the chat integrations -------------------------------------------------------------------

CHAT_NOW = parse_rfc3339("2024-05-01T12:00:00Z")
CHAT_EXTERNAL_URL = "http://am.example"


def make_env(
    handler: Handler, templates: Templates | None = None, receiver: str = "team"
) -> IntegrationEnv:
    """An IntegrationEnv at CHAT_NOW with the real templates whose HTTP client answers with ``handler``."""
    return IntegrationEnv(
        http=httpx.AsyncClient(transport=httpx.MockTransport(handler)),
        templater=(templates or Templates.load()).with_external_url(CHAT_EXTERNAL_URL),
        external_url=CHAT_EXTERNAL_URL,
        clock=FixedClock(CHAT_NOW),
        receiver=receiver,
    )


def make_ctx(receiver: str = "team", group_labels: dict[str, str] | None = None) -> NotifyContext:
    """A flush context at CHAT_NOW."""
    return NotifyContext(
        group_key='{}:{alertname="Disk"}',
        group_labels=group_labels or {"alertname": "Disk"},
        receiver=receiver,
        repeat_interval=4 * 3600 * 10**9,
        route_id="{}",
        now=CHAT_NOW,
    )


def sample_alerts() -> list[Alert]:
    """One firing and one resolved alert of group alertname=Disk."""
    return [
        Alert(
            {"alertname": "Disk", "instance": "a:9100", "severity": "page"},
            {"summary": "disk <full> & slow", "runbook": "http://r/x"},
            CHAT_NOW - 600 * 10**9,
            ZERO_TIME,
            "http://prom/graph?g0=1&x=<y>",
        ),
        Alert(
            {"alertname": "Disk", "instance": "b:9100", "severity": "page"},
            {"summary": "disk full"},
            CHAT_NOW - 900 * 10**9,
            CHAT_NOW - 60 * 10**9,
            "http://prom/graph?g0=2",
        ),
    ]


class Recorder:
    """A MockTransport handler that records requests and replies with queued statuses."""

    def __init__(self, statuses: Sequence[int] = (), body: bytes = b"ok") -> None:
        self.requests: list[httpx.Request] = []
        self.statuses = list(statuses)
        self.body = body

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        status = self.statuses.pop(0) if self.statuses else 200
        return httpx.Response(status, content=self.body)


def chat_config(yaml_receiver: str) -> IntegrationConfig:
    """The first non-webhook integration of receiver ``team`` in a config snippet."""
    return loaded_integration(
        f"route: {{receiver: team}}\nreceivers:\n- name: team\n{yaml_receiver}"
    )


def extra_config(type_name: str, **raw: Any) -> IntegrationConfig:
    """An IntegrationConfig for an extra type, through its config validator."""
    fields = EXTRA_RECEIVER_TYPES[type_name](raw)
    return IntegrationConfig(type_name, fields["send_resolved"], fields)


def chat_integration(config: IntegrationConfig, rec: Recorder) -> Integration:
    """The integration for ``config`` (as the registry builds it) sending to ``rec``."""
    integ = registry.build_integration(config, 0, make_env(rec))
    assert integ is not None
    return integ


async def chat_notify(config: IntegrationConfig, rec: Recorder) -> None:
    """Notify the sample alerts through ``config``'s integration."""
    await chat_integration(config, rec).notify(make_ctx(), sample_alerts())


async def chat_failure(config: IntegrationConfig, rec: Recorder) -> NotifyError:
    """The error notifying the sample alerts through ``config``'s integration raises."""
    with pytest.raises(NotifyError) as info:
        await chat_notify(config, rec)
    return info.value


# --- side by side with the real Alertmanager 0.25 -----------------------------------------
#
# The harness (in tests/integration/processes.py): a loopback HTTP sink (which can also
# act as an HTTPS CONNECT proxy terminating TLS with a self-signed certificate, for
# integrations whose URL is fixed), and a runner that starts prometheus-alertmanager with
# a config pointing there, posts alerts and waits for the requests. Our side loads the
# same config text and sends the same alerts through httpx.MockTransport; the tests
# compare the requests.


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
  # short, for post_as_one_batch: the tick after its silence expires sends the group
  group_interval: 1s
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

    conf = loaded_integration(config_text, index)
    integ = registry.build_integration(conf, 0, env_with(handle, real_templates(), NOW))
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
