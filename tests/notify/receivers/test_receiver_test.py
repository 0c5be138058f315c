"""Receiver tests: the sending function and POST /api/v1/receivers/{name}/test."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import attrs
import trio

from daemon.alert import Alert
from daemon.api import create_app
from daemon.api.receivers import receiver_test_routes
from daemon.clock import ZERO_TIME, FixedClock
from daemon.config.model import Receiver
from daemon.notify import receiver_test as rt
from daemon.notify.context import NotifyContext
from daemon.notify.retry import NotifyError
from daemon.store import AlertStore
from tests.api.conftest import NOW, FakeBackend, config


@attrs.define
class FakeIntegration:
    """An integration whose notify succeeds, fails, hangs or crashes as told."""

    name: str
    index: int = 0
    send_resolved: bool = True
    behaviour: str = "ok"
    calls: list[tuple[NotifyContext, list[Alert]]] = attrs.field(factory=list)

    async def notify(self, ctx: NotifyContext, alerts: Sequence[Alert]) -> None:
        self.calls.append((ctx, list(alerts)))
        await trio.lowlevel.checkpoint()
        if self.behaviour == "fail":
            raise NotifyError("unexpected status code 500", retryable=True)
        if self.behaviour == "hang":
            await trio.sleep_forever()
        if self.behaviour == "crash":
            raise RuntimeError("boom")


async def test_each_integration_is_notified_once_with_the_test_alert() -> None:
    """Every integration gets one call with the synthetic firing alert and a test context."""
    integrations = [FakeIntegration("slack"), FakeIntegration("webhook", index=1)]
    results = await rt.test_receiver(Receiver("team"), integrations, NOW)
    assert results == [
        {"integration": "slack[0]", "ok": True},
        {"integration": "webhook[1]", "ok": True},
    ]
    for integration in integrations:
        assert len(integration.calls) == 1
        ctx, alerts = integration.calls[0]
        assert ctx.receiver == "team" and ctx.now == NOW
        assert ctx.group_labels == {"alertname": "TestAlert", "instance": "tocsin"}
        (alert,) = alerts
        assert alert.labels == {"alertname": "TestAlert", "instance": "tocsin"}
        assert alert.starts_at == NOW and alert.ends_at == ZERO_TIME
        assert alert.status(NOW) == "firing"
        assert "summary" in alert.annotations


async def test_failures_are_reported_per_integration() -> None:
    """A NotifyError or a crash marks only that integration as failed, with its message."""
    integrations = [
        FakeIntegration("email", behaviour="fail"),
        FakeIntegration("slack"),
        FakeIntegration("sms", behaviour="crash"),
    ]
    results = await rt.test_receiver(Receiver("r"), integrations, NOW)
    assert results == [
        {"integration": "email[0]", "ok": False, "error": "unexpected status code 500"},
        {"integration": "slack[0]", "ok": True},
        {"integration": "sms[0]", "ok": False, "error": "RuntimeError: boom"},
    ]


async def test_hanging_integration_times_out_after_30_seconds(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """An integration that never answers fails after 30 s, while the others succeed."""
    integrations = [FakeIntegration("webhook", behaviour="hang"), FakeIntegration("slack")]
    start = trio.current_time()
    results = await rt.test_receiver(Receiver("r"), integrations, NOW)
    assert trio.current_time() - start == 30
    assert results == [
        {"integration": "webhook[0]", "ok": False, "error": "timed out after 30s"},
        {"integration": "slack[0]", "ok": True},
    ]


async def test_receiver_without_integrations_has_no_results() -> None:
    """A receiver with no integrations answers an empty result list."""
    assert await rt.test_receiver(Receiver("blackhole"), [], NOW) == []


@attrs.define
class ReceiverTestingBackend(FakeBackend):
    """The API fake plus canned receiver-test answers."""

    answers: dict[str, list[dict[str, Any]]] = attrs.field(factory=dict)
    asked: list[str] = attrs.field(factory=list)

    async def test_receiver(self, name: str) -> list[dict[str, Any]] | None:
        self.asked.append(name)
        await trio.lowlevel.checkpoint()
        return self.answers.get(name)


def _backend(prefix: str = "/") -> ReceiverTestingBackend:
    clock = FixedClock(NOW)
    return ReceiverTestingBackend(config("team"), AlertStore(clock), clock, route_prefix=prefix)


async def test_endpoint_returns_results() -> None:
    """POST answers 200 with the receiver name and each integration's result."""
    backend = _backend()
    backend.answers["team a"] = [
        {"integration": "slack[0]", "ok": True},
        {"integration": "email[0]", "ok": False, "error": "dial tcp: refused"},
    ]
    client = create_app(backend, extra_routes=receiver_test_routes()).test_client()
    resp = await client.post("/api/v1/receivers/team%20a/test", json={})
    assert resp.status_code == 200
    assert resp.headers["Content-Type"] == "application/json"
    assert json.loads(await resp.get_data()) == {
        "receiver": "team a",
        "results": backend.answers["team a"],
    }
    assert backend.asked == ["team a"]


async def test_endpoint_unknown_receiver_is_404() -> None:
    """An unknown receiver name answers 404 with a JSON error."""
    client = create_app(_backend(), extra_routes=receiver_test_routes()).test_client()
    resp = await client.post("/api/v1/receivers/nope/test", json={})
    assert resp.status_code == 404
    assert json.loads(await resp.get_data()) == {"error": "receiver not found"}


async def test_endpoint_honours_route_prefix_and_method() -> None:
    """Under a route prefix the path moves with it; GET is not allowed."""
    backend = _backend("/am")
    backend.answers["team"] = []
    client = create_app(backend, extra_routes=receiver_test_routes()).test_client()
    resp = await client.post("/am/api/v1/receivers/team/test", json={})
    assert resp.status_code == 200
    resp = await client.get("/am/api/v1/receivers/team/test")
    assert resp.status_code == 405


async def test_endpoint_without_support_is_501() -> None:
    """A backend without test_receiver answers 501 rather than crashing."""
    clock = FixedClock(NOW)
    plain = FakeBackend(config("team"), AlertStore(clock), clock)
    client = create_app(plain, extra_routes=receiver_test_routes()).test_client()
    resp = await client.post("/api/v1/receivers/team/test", json={})
    assert resp.status_code == 501


async def test_app_without_extra_routes_has_no_endpoint() -> None:
    """The hook is opt-in: the default app answers 404 for the path."""
    client = create_app(_backend()).test_client()
    resp = await client.post("/api/v1/receivers/team/test", json={})
    assert resp.status_code == 404
