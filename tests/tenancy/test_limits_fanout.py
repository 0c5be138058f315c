"""Limits and the fan-out: a tenant over its alert limit loses its copy of a global
batch, whole and counted, while the global pipeline and the other tenants keep theirs;
the tenancy API's per-request backend judges a tenant's own batch by its limits."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest
import trio
import trio.testing
from quart_trio import QuartTrio

from daemon.alert import Alert
from daemon.api.tenancy import TENANT_KEY, RequestBackend
from daemon.clock import NS_PER_SECOND, TrioClock
from daemon.config.load import load_config_text
from daemon.config.model import Config
from daemon.instance import Instance, ProcessFacts, StorageSettings
from daemon.instances import TenantMap
from daemon.metrics import REGISTRY
from daemon.template.render import Templates
from daemon.tenancy.limits import LimitExceeded, TenantLimits
from daemon.tenancy.tenants import parse_tenancy

S = NS_PER_SECOND
ANCHOR = 1_700_000_000 * S
CONFIG = "route: {receiver: r, group_wait: 1h}\nreceivers: [{name: r}]\n"
TENANCY = """\
default_limits: {alertmanager_max_alerts_count: 100}
tenants:
  fan-a: {namespaces: [a], limits: {alertmanager_max_alerts_count: 1}}
  fan-b: {namespaces: [b]}
"""


def alert(name: str, namespace: str, now: int) -> Alert:
    return Alert({"alertname": name, "namespace": namespace}, {}, now, now + 300 * S, "", now)


async def no_reload() -> str | None:
    return None


async def test_a_tenant_over_its_limit_loses_only_its_own_copy(
    autojump_clock: trio.testing.MockClock, tmp_path: Path
) -> None:
    """fan-a (at most 1 alert, from the tenancy file) gets none of a batch with two of its
    alerts; the global
    pipeline stores all three and fan-b its one; the breach is counted for fan-a."""
    clock = TrioClock(ANCHOR)
    async with httpx.AsyncClient() as http:

        def make(
            tenant: str, config: Config, templates: Templates, limits: TenantLimits
        ) -> Instance:
            return Instance(
                config,
                clock=clock,
                http=http,
                external_url="http://tocsin",
                retention=3600 * S,
                storage=StorageSettings(tmp_path / tenant),
                templates=templates,
                tenant=tenant,
                limits=limits,
            )

        global_ = Instance(
            load_config_text(CONFIG),
            clock=clock,
            http=http,
            external_url="http://tocsin",
            retention=3600 * S,
        )
        tenants = TenantMap(
            global_,
            parse_tenancy(TENANCY),
            storage=tmp_path,
            make_instance=make,
            load_fallback=lambda: (load_config_text(CONFIG), Templates.load()),
            process=ProcessFacts("/", ANCHOR, {}, dict, no_reload),
        )
        async with trio.open_nursery() as nursery:
            await nursery.start(global_.run)
            await nursery.start(tenants.run)
            key = {"tenant": "fan-a", "limit": "max_alerts_count"}
            before = REGISTRY.get_sample_value("tocsin_tenant_limit_exceeded_total", key) or 0
            now = clock.now()
            tenants.put_global(
                [alert("A1", "a", now), alert("A2", "a", now), alert("B", "b", now)], now
            )
            assert len(global_.store) == 3
            assert len(tenants.running["fan-a"].instance.store) == 0
            assert len(tenants.running["fan-b"].instance.store) == 1
            after = REGISTRY.get_sample_value("tocsin_tenant_limit_exceeded_total", key)
            assert after == before + 1
            tenants.put_global([alert("A1", "a", now)], now)
            assert len(tenants.running["fan-a"].instance.store) == 1

            # A tenant's own POST is judged whole by its pipeline, through the
            # per-request backend the tenancy API runs on.
            backend = RequestBackend(tenants)
            app = QuartTrio(__name__)
            async with app.test_request_context("/", scope_base={TENANT_KEY: "fan-a"}):
                with pytest.raises(LimitExceeded):
                    backend.admit_alerts([alert("A1", "a", now), alert("A3", "a", now)])
                assert backend.admit_alerts([alert("A1", "a", now)]) is True
            async with app.test_request_context("/", scope_base={TENANT_KEY: "fan-b"}):
                # Within default_limits' 100.
                assert backend.admit_alerts([alert("B2", "b", now)]) is True
            async with app.test_request_context("/"):
                # The global pipeline has no limits.
                assert backend.admit_alerts([alert("G", "g", now)] * 500) is False
            nursery.cancel_scope.cancel()
