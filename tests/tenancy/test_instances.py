"""The map of tenant instances in-process: fan-out into tenant stores,
alerts held for the sidecar and delivered once it answers, tenants started and stopped by
a new tenancy file, tenant configs gossiped between two maps (last writer wins)."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path

import httpx
import trio

from daemon.alert import Alert
from daemon.clock import NS_PER_SECOND, TrioClock
from daemon.config.load import load_config_text
from daemon.config.model import Config
from daemon.instance import Instance, ProcessFacts, StorageSettings
from daemon.instances import ConfigGossip, TenantMap
from daemon.template.render import Templates
from daemon.tenancy.configstore import TenantConfigDoc, tenant_dir
from daemon.tenancy.limits import TenantLimits
from daemon.tenancy.tenants import parse_tenancy

S = NS_PER_SECOND
ANCHOR = 1_700_000_000 * S
CONFIG = "route: {receiver: r, group_wait: 1h}\nreceivers: [{name: r}]\n"
STATIC = "tenants:\n  a: {namespaces: [team-a, shared]}\n  b: {namespaces: [team-b, shared]}\n"
SIDECAR = (
    "namespace_resolver: {type: sidecar, url: 'http://sidecar/api/v2/tenant'}\n"
    "tenants: {a: {}, b: {}}\n"
)


def alert(name: str, namespace: str) -> Alert:
    return Alert(
        labels={"alertname": name, "namespace": namespace},
        annotations={},
        starts_at=ANCHOR,
        ends_at=ANCHOR + 3600 * S,
    )


def names(instance: Instance) -> list[str]:
    return sorted(a.labels["alertname"] for a in instance.store)


async def eventually(predicate: Callable[[], bool]) -> None:
    """Poll ``predicate`` for up to 30 s of real time: what it waits for finishes in
    worker threads (config loading, file writes), which virtual time would outrun."""
    for _ in range(600):
        if predicate():
            return
        await trio.sleep(0.05)
    raise AssertionError("not reached in 30 seconds")


@asynccontextmanager
async def tenant_map(
    tmp: Path, tenancy_text: str, sidecar: httpx.MockTransport | None = None
) -> AsyncIterator[TenantMap]:
    clock = TrioClock(ANCHOR)
    config = load_config_text(CONFIG)
    async with httpx.AsyncClient(
        transport=sidecar or httpx.MockTransport(lambda r: httpx.Response(404))
    ) as http:
        global_instance = Instance(
            config, clock=clock, http=http, external_url="http://t", retention=3600 * S
        )

        def make(tenant: str, cfg: Config, templates: Templates, limits: TenantLimits) -> Instance:
            return Instance(
                cfg,
                clock=clock,
                http=http,
                external_url="http://t",
                retention=3600 * S,
                storage=StorageSettings(tenant_dir(tmp, tenant)),
                templates=templates,
                tenant=tenant,
                limits=limits,
                global_silences=global_instance.silences,
            )

        async def reload() -> str | None:
            return None

        facts = ProcessFacts("/", ANCHOR, {}, dict, reload)
        tenants = TenantMap(
            global_instance,
            parse_tenancy(tenancy_text),
            storage=tmp,
            make_instance=make,
            load_fallback=lambda: (config, Templates.load()),
            process=facts,
            sidecar_http=http,
        )
        # Every test here has a deadline: the map runs under it.
        with trio.fail_after(60):
            async with trio.open_nursery() as nursery:
                await nursery.start(global_instance.run)
                await nursery.start(tenants.run)
                yield tenants
                nursery.cancel_scope.cancel()


async def test_static_fan_out_copies_into_tenant_stores(
    tmp_path: Path,
) -> None:
    """The global store keeps everything; each tenant gets its namespaces' alerts, a
    shared namespace goes to both, a tenant post stays in that tenant."""
    async with tenant_map(tmp_path, STATIC) as tenants:
        now = ANCHOR
        tenants.put_global(
            [alert("x", "team-a"), alert("y", "team-b"), alert("z", "shared"), alert("n", "")],
            now,
        )
        tenants.put_tenant("a", [alert("own", "team-b")], now)
        assert names(tenants.global_instance) == ["n", "x", "y", "z"]
        assert names(tenants.running["a"].instance) == ["own", "x", "z"]
        assert names(tenants.running["b"].instance) == ["y", "z"]


async def test_sidecar_alerts_are_held_until_it_answers(
    tmp_path: Path,
) -> None:
    """With the sidecar resolver, alerts of a namespace not asked about yet are held,
    then delivered to the tenants the sidecar names once it has answered."""
    asked: list[str] = []

    def sidecar(request: httpx.Request) -> httpx.Response:
        asked.append(request.url.params["namespace"])
        return httpx.Response(200, content=json.dumps(["b", "ghost"]).encode())

    async with tenant_map(tmp_path, SIDECAR, httpx.MockTransport(sidecar)) as tenants:
        tenants.put_global([alert("x", "ns1"), alert("y", "ns1")], ANCHOR)
        assert names(tenants.running["b"].instance) == []
        await eventually(lambda: bool(names(tenants.running["b"].instance)))
        assert names(tenants.running["b"].instance) == ["x", "y"]
        assert names(tenants.running["a"].instance) == []
        assert asked == ["ns1"]
        tenants.put_global([alert("later", "ns1")], ANCHOR)  # answered: no wait now
        assert names(tenants.running["b"].instance) == ["later", "x", "y"]


async def test_apply_starts_and_stops_tenants(
    tmp_path: Path,
) -> None:
    """A new tenancy file starts new tenants and stops removed ones; copies follow."""
    async with tenant_map(tmp_path, STATIC) as tenants:
        stopped = tenants.running["b"].scope
        new = parse_tenancy("tenants:\n  a: {namespaces: [team-a]}\n  c: {namespaces: [team-b]}\n")
        await tenants.apply(new, (load_config_text(CONFIG), Templates.load()))
        assert sorted(tenants.running) == ["a", "c"]
        assert stopped.cancel_called
        tenants.put_global([alert("y", "team-b")], ANCHOR)
        assert names(tenants.running["c"].instance) == ["y"]


async def test_config_gossip_newest_wins(tmp_path: Path) -> None:
    """A config set on one map reaches another through the gossip state; an older
    version never replaces a newer one; a delete travels as a tombstone."""
    doc = TenantConfigDoc("route: {receiver: mine}\nreceivers: [{name: mine}]\n")
    async with (
        tenant_map(tmp_path / "one", STATIC) as one,
        tenant_map(tmp_path / "two", STATIC) as two,
    ):
        await one.set_config("a", doc)
        ConfigGossip(two).merge(ConfigGossip(one).marshal())
        await eventually(lambda: two.running["a"].custom)
        assert [r.name for r in two.running["a"].instance.config.receivers] == ["mine"]
        stale = ConfigGossip(two).marshal()
        newer = TenantConfigDoc("route: {receiver: newer}\nreceivers: [{name: newer}]\n")
        await one.set_config("a", newer)
        ConfigGossip(one).merge(stale)
        await trio.sleep(1)
        assert [r.name for r in one.running["a"].instance.config.receivers] == ["newer"]
        await two.delete_config("a")
        ConfigGossip(one).merge(ConfigGossip(two).marshal())
        await eventually(lambda: not one.running["a"].custom)
        assert [r.name for r in one.running["a"].instance.config.receivers] == ["r"]
