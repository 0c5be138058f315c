"""One Instance end to end on virtual time: intake, sources, reload and its own metrics."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager

import attrs
import httpx
import pytest
import trio
import trio.testing

from daemon.alert import Alert
from daemon.clock import NS_PER_SECOND, TrioClock
from daemon.config.load import load_config_text
from daemon.instance import Instance
from daemon.metrics import REGISTRY
from daemon.sources import Put, start_sources

S = NS_PER_SECOND
ANCHOR = 1_700_000_000 * S

CONFIG = """
route:
  receiver: {receiver}
  group_by: [alertname]
  group_wait: 1s
receivers:
  - name: first
    webhook_configs: [{{url: "http://sink/first"}}]
  - name: second
    webhook_configs: [{{url: "http://sink/second"}}]
"""


@attrs.define
class Sink:
    """Records each webhook request as (path, payload)."""

    got: list[tuple[str, dict[str, object]]] = attrs.field(factory=list)

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.got.append((request.url.path, json.loads(request.content)))
        return httpx.Response(200)


@asynccontextmanager
async def running(
    receiver: str = "first", tenant: str | None = None
) -> AsyncIterator[tuple[Instance, Sink, trio.Nursery]]:
    sink = Sink()
    async with httpx.AsyncClient(transport=httpx.MockTransport(sink)) as http:
        instance = Instance(
            load_config_text(CONFIG.format(receiver=receiver)),
            clock=TrioClock(ANCHOR),
            http=http,
            external_url="http://tocsin:9093",
            retention=3600 * S,
            tenant=tenant,
        )
        async with trio.open_nursery() as nursery:
            await nursery.start(instance.run)
            yield instance, sink, nursery
            nursery.cancel_scope.cancel()


def alert(name: str, now: int) -> Alert:
    return Alert({"alertname": name}, {}, now, now + 300 * S, "", now, False)


@attrs.define
class OneShotSource:
    """A source that puts one alert as soon as it runs."""

    name: str = "test"

    async def run(
        self, put: Put, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED
    ) -> None:
        task_status.started()
        put([alert("FromSource", ANCHOR)], ANCHOR)


async def test_a_source_put_is_notified(autojump_clock: trio.testing.MockClock) -> None:
    """An alert a Source puts goes through store, dispatcher and webhook, as a POST's does."""
    async with running() as (instance, sink, nursery):
        await start_sources(nursery, [OneShotSource()], instance.put)
        await trio.sleep(2)
    assert [(path, body["groupKey"]) for path, body in sink.got] == [
        ("/first", '{}:{alertname="FromSource"}')
    ]
    assert [a.labels["alertname"] for a in instance.store.list()] == ["FromSource"]


async def test_reload_moves_alerts_to_the_new_generation(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """After reload the stored alerts are replayed into the new generation's routes."""
    async with running() as (instance, sink, _):
        instance.put([alert("Kept", instance.clock.now())], instance.clock.now())
        await trio.sleep(2)
        await instance.reload(load_config_text(CONFIG.format(receiver="second")))
        await trio.sleep(2)
    assert [path for path, _ in sink.got] == ["/first", "/second"]


def samples(name: str) -> Sequence[tuple[dict[str, str], float]]:
    family = next(f for f in REGISTRY.collect() if f.name == name)
    return [(dict(s.labels), s.value) for s in family.samples]


async def test_each_instance_serves_its_own_metrics(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """Two tenants' instances both show in the scrape, each under its tenant label."""
    async with running(tenant="a") as (a, _, _), running(tenant="b") as (b, _, _):
        a.put([alert("A1", a.clock.now()), alert("A2", a.clock.now())], a.clock.now())
        b.put([alert("B1", b.clock.now())], b.clock.now())
        await trio.sleep(2)
        active = {
            labels["tenant"]: value
            for labels, value in samples("alertmanager_alerts")
            if labels["state"] == "active"
        }
        groups = {
            labels["tenant"]: value
            for labels, value in samples("alertmanager_dispatcher_aggregation_groups")
        }
    assert active == {"a": 2.0, "b": 1.0}
    assert groups == {"a": 2.0, "b": 1.0}
    # Stopped instances no longer show.
    assert not [labels for labels, _ in samples("alertmanager_alerts") if "tenant" in labels]


async def test_status_line_counts_groups_without_snapshotting_them(
    autojump_clock: trio.testing.MockClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    """systemd's STATUS= line (every few seconds) counts groups without building the
    sorted group snapshots the API needs (70 ms of CPU at 100k alerts)."""
    from daemon.app import _status_line

    async with running() as (instance, _, _):
        now = instance.clock.now()
        instance.put([alert("A", now), alert("B", now), alert("B2", now)], now)
        await trio.sleep(0.1)
        monkeypatch.setattr(instance, "groups", lambda: pytest.fail("groups() snapshots"))
        assert _status_line(instance, None) == "3 alerts, 3 groups"
