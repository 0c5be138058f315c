"""The fan-out plan against the resolver (property tests) and the sidecar resolver."""

from __future__ import annotations

import json
from fnmatch import fnmatchcase

import httpx
import trio
from hypothesis import given, settings
from hypothesis import strategies as st

from daemon.alert import Alert
from daemon.clock import NS_PER_SECOND, FixedClock
from daemon.tenancy.resolver import (
    FileResolver,
    Key,
    SidecarCache,
    SidecarResolver,
    plan_fan_out,
)
from daemon.tenancy.tenants import ResolverSpec, TenancyConfig, TenantSpec

S = NS_PER_SECOND
NAMES = st.sampled_from(["team-a", "team-a-dev", "team-b", "TEAM-a", "ops", "x", ""])
GLOBS = st.sampled_from(["team-a", "team-a-*", "team-?", "*", "ops", "[ot]*", "Team-*"])


def alert(labels: dict[str, str]) -> Alert:
    return Alert(labels=labels, annotations={}, starts_at=1, ends_at=0)


@st.composite
def worlds(draw: st.DrawFn) -> tuple[TenancyConfig, list[Alert]]:
    tenant_ids = draw(st.lists(st.sampled_from(["t1", "t2", "t3", "team-a", "ops"]), unique=True))
    tenants = {
        t: TenantSpec(t, namespaces=tuple(draw(st.lists(GLOBS, max_size=3)))) for t in tenant_ids
    }
    spec = ResolverSpec(
        type=draw(st.sampled_from(["static", "identity"])),
        rule_level_only=draw(st.booleans()),
    )
    alerts = []
    for i in range(draw(st.integers(0, 8))):
        labels = {"alertname": f"a{i}"}
        ns = draw(NAMES)
        if ns:
            labels["namespace"] = ns
        if draw(st.booleans()):
            labels["rule_level"] = draw(st.sampled_from(["namespace", "cluster"]))
        alerts.append(alert(labels))
    return TenancyConfig(resolver=spec, tenants=tenants), alerts


def expected_tenants(config: TenancyConfig, a: Alert) -> set[str]:
    """The contract, written out independently of the resolver's code."""
    ns = a.labels.get("namespace", "")
    if not ns:
        return set()
    if config.resolver.rule_level_only and a.labels.get("rule_level") != "namespace":
        return set()
    if config.resolver.type == "identity":
        return {ns} & set(config.tenants)
    return {t.id for t in config.tenants.values() if any(fnmatchcase(ns, g) for g in t.namespaces)}


@settings(max_examples=300, deadline=None)
@given(worlds())
def test_each_alert_reaches_exactly_its_tenants(world: tuple[TenancyConfig, list[Alert]]) -> None:
    """Every alert goes to exactly the tenants the resolver's rules name, once each, in
    posting order; nothing is held with a file resolver."""
    config, alerts = world
    by_tenant, held = plan_fan_out(alerts, config.resolver, FileResolver(config).tenants_of)
    assert held == {}
    for tenant, copies in by_tenant.items():
        assert copies == [a for a in alerts if tenant in expected_tenants(config, a)]
    for a in alerts:
        got = {t for t, copies in by_tenant.items() if any(c is a for c in copies)}
        assert got == expected_tenants(config, a)


@given(worlds())
def test_unknown_answers_are_held(world: tuple[TenancyConfig, list[Alert]]) -> None:
    """With a resolver that does not know yet, every alert that would fan out is held
    under its (cluster, namespace) and none is delivered."""
    config, alerts = world
    by_tenant, held = plan_fan_out(alerts, config.resolver, lambda key: None)
    assert by_tenant == {}
    flat = [a for waiting in held.values() for a in waiting]
    assert sorted(id(a) for a in flat) == sorted(
        id(a)
        for a in alerts
        if a.labels.get("namespace")
        and (not config.resolver.rule_level_only or a.labels.get("rule_level") == "namespace")
    )


def test_sidecar_cache_keeps_the_last_answer() -> None:
    """A cached answer is used until it expires, then still used while a new one is
    asked for; answers naming unknown tenants are filtered."""
    cache = SidecarCache(ttl=60 * S, known=frozenset({"a", "b"}))
    key = ("c1", "ns")
    assert cache.lookup(key, 0) is None
    assert cache.take_wanted() == [key]
    assert cache.store(key, ["a", "nope", "a", "b"], 0) == ("a", "b")
    assert cache.lookup(key, 30 * S) == ("a", "b")
    assert cache.take_wanted() == []
    assert cache.lookup(key, 61 * S) == ("a", "b")
    assert cache.take_wanted() == [key]


def sidecar_config() -> TenancyConfig:
    return TenancyConfig(
        resolver=ResolverSpec(type="sidecar", url="http://sidecar/api/v2/tenant", cache=60 * S),
        tenants={"a": TenantSpec("a"), "b": TenantSpec("b")},
    )


async def test_sidecar_resolver_asks_nm_contract_and_survives_outage(
    autojump_clock: trio.abc.Clock,
) -> None:
    """The resolver calls GET url?cluster=&namespace=, delivers held alerts once it has
    the answer, and keeps the last answer while the sidecar is down."""
    asked: list[tuple[str, str]] = []
    asked_twice = trio.Event()
    up = True

    def handler(request: httpx.Request) -> httpx.Response:
        asked.append((request.url.params["cluster"], request.url.params["namespace"]))
        if len(asked) == 2:
            asked_twice.set()
        if not up:
            return httpx.Response(503)
        return httpx.Response(200, content=json.dumps(["a", "ghost"]).encode())

    answers: list[tuple[Key, tuple[str, ...]]] = []
    answered = trio.Event()

    def on_answer(key: Key, tenants: tuple[str, ...]) -> None:
        answers.append((key, tenants))
        answered.set()

    clock = FixedClock(0)
    async with httpx.AsyncClient(transport=httpx.MockTransport(handler)) as http:
        resolver = SidecarResolver(sidecar_config(), clock, http, on_answer)
        async with trio.open_nursery() as nursery:
            await nursery.start(resolver.run)
            with trio.fail_after(10):
                assert resolver.tenants_of(("c1", "ns1")) is None
                await answered.wait()
                assert answers == [(("c1", "ns1"), ("a",))]
                assert asked == [("c1", "ns1")]
                assert resolver.tenants_of(("c1", "ns1")) == ("a",)
                up = False
                clock.t = 120 * S  # expired: asked again, but the sidecar is down
                assert resolver.tenants_of(("c1", "ns1")) == ("a",)
                await asked_twice.wait()
                await trio.sleep(0.1)
                assert resolver.tenants_of(("c1", "ns1")) == ("a",)
            nursery.cancel_scope.cancel()
