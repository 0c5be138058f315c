"""The receivers firewall over real loopback sockets: a tenant's notification to a
blocked address never connects, by literal address, by a name resolving to it, through
an httpx client, or over SMTP; the same target is reached without the block."""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

import pytest
import trio

from daemon.alert import Alert
from daemon.clock import NS_PER_SECOND, TrioClock
from daemon.config.load import load_config_text
from daemon.instance import Instance
from daemon.metrics import REGISTRY
from daemon.notify import firewall
from daemon.notify.httpclient import HttpClients
from daemon.tenancy.limits import UNLIMITED, TenantLimits
from tests.integration.processes import WebhookSink

S = NS_PER_SECOND

CONFIG = """
route:
  receiver: hook
  group_wait: 10ms
receivers:
  - name: hook
    webhook_configs:
      - url: "{url}"
{extra}
"""
#: Gives the webhook its own httpx client instead of the HTTP/1 sender.
OWN_CLIENT = "        http_config: {tls_config: {insecure_skip_verify: true}}"


@asynccontextmanager
async def running(
    config_text: str, limits: TenantLimits, name: str | None
) -> AsyncIterator[Instance]:
    """A started pipeline with real HTTP clients (HTTP/1 sender and httpx)."""
    async with HttpClients(timeout=5.0) as clients:
        instance = Instance(
            load_config_text(config_text),
            clock=TrioClock(1_700_000_000 * S),
            http=clients.default,
            clients=clients,
            external_url="http://tocsin:9093",
            retention=3600 * S,
            tenant=name,
            limits=limits,
        )
        async with trio.open_nursery() as nursery:
            await nursery.start(instance.run)
            yield instance
            nursery.cancel_scope.cancel()


@asynccontextmanager
async def tenant(
    url: str, limits: TenantLimits, name: str | None, extra: str = ""
) -> AsyncIterator[Instance]:
    """A pipeline whose webhook is ``url``, with one alert posted."""
    async with running(CONFIG.format(url=url, extra=extra), limits, name) as instance:
        now = instance.clock.now()
        instance.put([Alert({"alertname": "A"}, {}, now, now + 300 * S, "", now)], now)
        yield instance


def blocked(tenant: str, limit: str) -> float:
    labels = {"tenant": tenant, "limit": limit}
    return REGISTRY.get_sample_value("tocsin_tenant_limit_exceeded_total", labels) or 0.0


async def wait_for(predicate: Callable[[], bool], seconds: float) -> None:
    """Poll ``predicate`` (the sink is a thread and the metric a counter: no event to wait on)."""
    for _ in range(int(seconds / 0.02)):
        if predicate():
            return
        await trio.sleep(0.02)


PRIVATE = TenantLimits(receivers_firewall_block_private_addresses=True)


async def test_loopback_is_refused_by_address_and_by_name() -> None:
    """With private addresses blocked, neither 127.0.0.1 nor localhost is ever connected to."""
    with WebhookSink() as sink, trio.fail_after(30):
        for host in ("127.0.0.1", "localhost"):
            name = f"fw-{host}"
            before = blocked(name, "receivers_firewall_block_private_addresses")
            async with tenant(f"http://{host}:{sink.port}/", PRIVATE, name):
                await wait_for(
                    lambda name=name, before=before: (
                        blocked(name, "receivers_firewall_block_private_addresses") > before
                    ),
                    10,
                )
            assert blocked(name, "receivers_firewall_block_private_addresses") > before
        assert await trio.to_thread.run_sync(sink.quiet_for, 0.3)
        assert sink.received == []


async def test_a_blocked_network_is_refused_through_httpx_too() -> None:
    """A CIDR block also holds for a webhook whose http_config gives it an httpx client."""
    limits = TenantLimits(
        receivers_firewall_block_cidr_networks=(ipaddress.ip_network("127.0.0.0/8"),)
    )
    with WebhookSink() as sink, trio.fail_after(30):
        before = blocked("fw-httpx", "receivers_firewall_block_cidr_networks")
        async with tenant(f"http://localhost:{sink.port}/", limits, "fw-httpx", OWN_CLIENT):
            await wait_for(
                lambda: blocked("fw-httpx", "receivers_firewall_block_cidr_networks") > before, 10
            )
        assert blocked("fw-httpx", "receivers_firewall_block_cidr_networks") > before
        assert sink.received == []


async def test_an_unblocked_target_and_the_global_pipeline_are_reached() -> None:
    """A firewall that lists other networks lets loopback through; so does the unlimited
    global pipeline."""
    other = TenantLimits(
        receivers_firewall_block_cidr_networks=(ipaddress.ip_network("10.0.0.0/8"),)
    )
    with WebhookSink() as sink, trio.fail_after(30):
        async with tenant(f"http://localhost:{sink.port}/", other, "fw-open"):
            await wait_for(lambda: len(sink.received) >= 1, 10)
        async with tenant(f"http://127.0.0.1:{sink.port}/", UNLIMITED, None, OWN_CLIENT):
            await wait_for(lambda: len(sink.received) >= 2, 10)
        assert len(sink.received) == 2


async def test_limits_changed_at_reload_time_take_effect_for_the_next_connect() -> None:
    """set_limits turning the private block on refuses the following notifications."""
    with WebhookSink() as sink, trio.fail_after(30):
        async with tenant(f"http://127.0.0.1:{sink.port}/", UNLIMITED, "fw-later") as instance:
            await wait_for(lambda: len(sink.received) >= 1, 10)
            instance.set_limits(PRIVATE)
            before = blocked("fw-later", "receivers_firewall_block_private_addresses")
            # The receiver test runs in the API request's task, not the pipeline's.
            result = await instance.test_receiver("hook")
            assert result is not None
            assert result[0]["ok"] is False
            assert "connect: permission denied" in result[0]["error"]
            assert blocked("fw-later", "receivers_firewall_block_private_addresses") == before + 1
        assert len(sink.received) == 1


EMAIL_CONFIG = """
route: {{receiver: mail}}
receivers:
  - name: mail
    email_configs:
      - {{to: ops@example.org, from: tocsin@example.org, smarthost: "{host}:{port}",
         require_tls: false}}
"""


async def test_smtp_connects_through_the_firewall_from_its_worker_thread() -> None:
    """The email integration (smtplib in a worker thread) is refused a loopback smarthost,
    by name too; the listening socket never sees a connection."""
    with socket.socket() as listener, trio.fail_after(30):
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        listener.setblocking(False)
        port = listener.getsockname()[1]
        for host in ("127.0.0.1", "localhost"):
            config = EMAIL_CONFIG.format(host=host, port=port)
            async with running(config, PRIVATE, "fw-mail") as instance:
                before = blocked("fw-mail", "receivers_firewall_block_private_addresses")
                result = await instance.test_receiver("mail")
            assert result is not None
            assert result[0]["ok"] is False
            assert blocked("fw-mail", "receivers_firewall_block_private_addresses") > before
        with pytest.raises(BlockingIOError):
            listener.accept()


async def test_create_connection_without_a_block_connects() -> None:
    """With no firewall current, or one that does not list the address, SMTP's connect
    reaches the listener."""
    with socket.socket() as listener, trio.fail_after(30):
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        port = listener.getsockname()[1]
        token = firewall.use(
            firewall.ReceiverFirewall([ipaddress.ip_network("10.0.0.0/8")], block_private=False)
        )
        try:
            sock = await trio.to_thread.run_sync(firewall.create_connection, "localhost", port, 5.0)
            sock.close()
        finally:
            firewall.reset(token)
        sock = await trio.to_thread.run_sync(firewall.create_connection, "127.0.0.1", port, 5.0)
        sock.close()
