"""A tenant's limits enforced by its Instance, on virtual time: alerts at ingest (API
included), silences at create, aggregation groups and notification rates, each breach
counted in tocsin_tenant_limit_exceeded_total."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import attrs
import httpx
import pytest
import trio
import trio.testing

from daemon.alert import Alert
from daemon.api import create_app
from daemon.api.app import default_api_routes
from daemon.api.silences import silence_routes
from daemon.clock import NS_PER_SECOND, TrioClock
from daemon.config.load import load_config_text
from daemon.instance import Instance, InstanceBackend, ProcessFacts
from daemon.matcher import Matcher, MatchType
from daemon.metrics import REGISTRY
from daemon.silence.model import Silence
from daemon.silence.state import SilenceLimitError
from daemon.tenancy.limits import UNLIMITED, LimitExceeded, TenantLimits

S = NS_PER_SECOND
ANCHOR = 1_700_000_000 * S

CONFIG = """
route:
  receiver: hook
  group_by: [alertname]
  group_wait: 1s
  group_interval: 1m
receivers:
  - name: hook
    webhook_configs: [{url: "http://sink/hook"}]
"""


@attrs.define
class Sink:
    """Records each webhook request's alert names."""

    got: list[list[str]] = attrs.field(factory=list)

    def __call__(self, request: httpx.Request) -> httpx.Response:
        payload = json.loads(request.content)
        self.got.append([a["labels"]["alertname"] for a in payload["alerts"]])
        return httpx.Response(200)


@asynccontextmanager
async def running(
    limits: TenantLimits, tenant: str | None = "team-a"
) -> AsyncIterator[tuple[Instance, Sink]]:
    sink = Sink()
    async with httpx.AsyncClient(transport=httpx.MockTransport(sink)) as http:
        instance = Instance(
            load_config_text(CONFIG),
            clock=TrioClock(ANCHOR),
            http=http,
            external_url="http://tocsin:9093",
            retention=3600 * S,
            tenant=tenant,
            limits=limits,
        )
        async with trio.open_nursery() as nursery:
            await nursery.start(instance.run)
            yield instance, sink
            nursery.cancel_scope.cancel()


async def no_reload() -> str | None:
    return None


def api_client(instance: Instance) -> Any:
    """A quart test client of the API v2 (silences included) over ``instance``."""
    backend = InstanceBackend(instance, ProcessFacts("/", ANCHOR, {}, dict, no_reload))
    return create_app(
        backend, api_routes={**default_api_routes(), **silence_routes()}
    ).test_client()


def breaches(tenant: str, limit: str) -> float:
    value = REGISTRY.get_sample_value(
        "tocsin_tenant_limit_exceeded_total", {"tenant": tenant, "limit": limit}
    )
    return value or 0.0


def alert(name: str, now: int) -> Alert:
    return Alert({"alertname": name}, {}, now, now + 300 * S, "", now, False)


async def test_alert_count_refuses_a_whole_batch_and_counts_it(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """At the count limit re-posts pass; a batch with one new alert too many stores none
    of its alerts, raises and counts one breach."""
    async with running(TenantLimits(max_alerts_count=2), tenant="count") as (instance, _):
        now = instance.clock.now()
        instance.put([alert("A", now), alert("B", now)], now)
        instance.put([alert("A", now), alert("B", now)], now)
        before = breaches("count", "max_alerts_count")
        with pytest.raises(LimitExceeded):
            instance.put([alert("B", now), alert("C", now)], now)
        assert sorted(a.labels["alertname"] for a in instance.store) == ["A", "B"]
        assert breaches("count", "max_alerts_count") == before + 1


async def test_garbage_collection_frees_room_under_the_size_limit(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """Resolved alerts removed by GC no longer count against max_alerts_size_bytes."""
    size = len("alertname") + 1
    async with running(TenantLimits(max_alerts_size_bytes=size)) as (instance, _):
        now = instance.clock.now()
        instance.put([Alert({"alertname": "A"}, {}, now - 10 * S, now - S, "", now)], now)
        with pytest.raises(LimitExceeded):
            instance.put([alert("B", now)], now)
        assert instance.collect_garbage() == 1
        instance.put([alert("B", now)], now)


async def test_the_api_answers_400_and_stores_nothing_of_a_refused_batch(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """POST /api/v2/alerts over the tenant's count is a 400 naming the limit; the store is unchanged."""
    async with running(TenantLimits(max_alerts_count=1)) as (instance, _):
        client = api_client(instance)
        one = [{"labels": {"alertname": "A"}}]
        two = [{"labels": {"alertname": "A"}}, {"labels": {"alertname": "B"}}]
        headers = {"Content-Type": "application/json"}
        ok = await client.post("/api/v2/alerts", data=json.dumps(one), headers=headers)
        assert ok.status_code == 200
        refused = await client.post("/api/v2/alerts", data=json.dumps(two), headers=headers)
        assert refused.status_code == 400
        assert "too many alerts" in (await refused.get_data(as_text=True))
        assert "limit: 1" in (await refused.get_data(as_text=True))
        again = await client.post("/api/v2/alerts", data=json.dumps(one), headers=headers)
        assert again.status_code == 200
        assert [a.labels["alertname"] for a in instance.store] == ["A"]


def silence(name: str, now: int, comment: str = "c") -> Silence:
    return Silence(
        id="",
        matchers=(Matcher(MatchType.EQUAL, "alertname", name),),
        starts_at=now,
        ends_at=now + 3600 * S,
        updated_at=now,
        created_by="me",
        comment=comment,
    )


async def test_silence_count_and_size_are_refused_at_create(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """A second live silence over max_silences_count and an oversized one are refused;
    updating the live one is not, and expiring it makes room."""
    limits = TenantLimits(max_silences_count=1, max_silence_size_bytes=300)
    async with running(limits, tenant="sil") as (instance, _):
        silences = instance.silences
        now = instance.clock.now()
        first = silences.set(silence("A", now), now)
        before = breaches("sil", "max_silences_count")
        with pytest.raises(SilenceLimitError, match=r"exceeded maximum number of silences: 1"):
            silences.plan_set(silence("B", now), now)
        assert breaches("sil", "max_silences_count") == before + 1
        updated = attrs.evolve(silence("A", now, comment="longer"), id=first)
        assert silences.set(updated, now) == first
        with pytest.raises(SilenceLimitError, match=r"silence exceeded maximum size: \d+ bytes"):
            silences.plan_set(attrs.evolve(updated, comment="x" * 400), now)
        assert breaches("sil", "max_silence_size_bytes") >= 1
        silences.expire(first, now)
        later = now + 1  # an expired silence ends at now, inclusive
        silences.set(silence("B", later), later)


async def test_the_api_answers_400_for_a_silence_over_the_limit(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """POST /api/v2/silences past max_silences_count is a 400 with Mimir's message."""
    async with running(TenantLimits(max_silences_count=1)) as (instance, _):
        client = api_client(instance)
        body = {
            "matchers": [{"name": "a", "value": "b", "isRegex": False}],
            "startsAt": "2023-11-14T22:13:20Z",
            "endsAt": "2023-11-15T22:13:20Z",
            "createdBy": "me",
            "comment": "c",
        }
        headers = {"Content-Type": "application/json"}
        first = await client.post("/api/v2/silences", data=json.dumps(body), headers=headers)
        assert first.status_code == 200, await first.get_data(as_text=True)
        second = await client.post("/api/v2/silences", data=json.dumps(body), headers=headers)
        assert second.status_code == 400
        assert "exceeded maximum number of silences" in await second.get_data(as_text=True)
        assert len(instance.silences.query([], instance.clock.now())) == 1


async def test_no_group_beyond_the_cap_but_existing_groups_still_grow(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """With max_dispatcher_aggregation_groups 1, a second alertname makes no group (counted);
    alerts of the existing group still join it and are notified."""
    limits = TenantLimits(max_dispatcher_aggregation_groups=1)
    async with running(limits, tenant="groups") as (instance, sink):
        now = instance.clock.now()
        before = breaches("groups", "max_dispatcher_aggregation_groups")
        instance.put([alert("A", now)], now)
        await trio.sleep(0.1)
        instance.put(
            [alert("B", now), Alert({"alertname": "A", "x": "1"}, {}, now, 0, "", now)], now
        )
        await trio.sleep(2)
        assert instance.generation.dispatcher.group_count() == 1
        assert breaches("groups", "max_dispatcher_aggregation_groups") == before + 1
        assert sorted(a.labels["alertname"] for a in instance.store) == ["A", "A", "B"]
        assert sink.got == [["A", "A"]]


async def test_notifications_beyond_the_rate_are_dropped_and_retried_later(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """At 1 webhook notification per minute, three groups flushing together send one
    notification; the two dropped are counted and go out at later group_intervals."""
    limits = TenantLimits(notification_rate_limit_per_integration={"webhook": 1 / 60})
    async with running(limits, tenant="rate") as (instance, sink):
        now = instance.clock.now()
        before = breaches("rate", "notification_rate_limit")
        instance.put([alert("A", now), alert("B", now), alert("C", now)], now)
        await trio.sleep(2)
        assert len(sink.got) == 1
        assert breaches("rate", "notification_rate_limit") == before + 2
        await trio.sleep(60 * 3)
        assert sorted(name for got in sink.got for name in got) == ["A", "B", "C"]


async def test_new_limits_apply_at_once(autojump_clock: trio.testing.MockClock) -> None:
    """set_limits changes what is admitted without a reload, both ways."""
    async with running(UNLIMITED) as (instance, _):
        now = instance.clock.now()
        instance.put([alert("A", now), alert("B", now)], now)
        instance.set_limits(TenantLimits(max_alerts_count=2))
        with pytest.raises(LimitExceeded):
            instance.put([alert("C", now)], now)
        instance.set_limits(UNLIMITED)
        instance.put([alert("C", now)], now)
        assert len(instance.store) == 3


async def test_the_global_pipeline_is_unlimited(autojump_clock: trio.testing.MockClock) -> None:
    """Without limits (the global pipeline) many alerts, silences and groups all pass."""
    async with running(UNLIMITED, tenant=None) as (instance, sink):
        now = instance.clock.now()
        instance.put([alert(str(i), now) for i in range(50)], now)
        for i in range(20):
            instance.silences.set(silence(f"s{i}", now), now)
        await trio.sleep(2)
        assert instance.generation.dispatcher.group_count() == 50
        assert len(sink.got) == 50
