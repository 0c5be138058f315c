"""Send one test notification through every integration of a receiver.

Like Grafana's "Test contact point" and Notification Manager's receiver verification: a
synthetic firing alert ``{alertname="TestAlert", instance="tocsin"}`` goes straight to
each integration's ``notify``, once. It bypasses the pipeline's stages on purpose:
dedup/nflog would swallow a repeated test and record a notification that never
belonged to a real group, and silences/inhibitions would hide the very message the
operator asked to see. No retries either, so the answer reflects one attempt.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import structlog
import trio

from daemon.alert import Alert
from daemon.clock import ZERO_TIME
from daemon.config.model import Receiver
from daemon.notify.context import NotifyContext
from daemon.notify.receivers.base import Integration
from daemon.notify.retry import NotifyError

log = structlog.get_logger(__name__)

#: Seconds each integration gets before its test counts as failed.
TEST_TIMEOUT = 30.0

TEST_LABELS = {"alertname": "TestAlert", "instance": "tocsin"}
_TEST_GROUP_KEY = '{}:{alertname="TestAlert", instance="tocsin"}'


def test_alert(receiver: str, now: int) -> Alert:
    """The synthetic firing alert a receiver test sends."""
    return Alert(
        labels=dict(TEST_LABELS),
        annotations={
            "summary": "Notification test",
            "description": f"A test notification sent by tocsin to receiver {receiver}.",
        },
        starts_at=now,
        ends_at=ZERO_TIME,
        updated_at=now,
    )


def test_context(receiver: str, now: int) -> NotifyContext:
    """The flush context of a receiver test: one group holding the test alert."""
    return NotifyContext(
        group_key=_TEST_GROUP_KEY,
        group_labels=dict(TEST_LABELS),
        receiver=receiver,
        repeat_interval=0,
        route_id="{}",
        now=now,
    )


async def test_receiver(
    receiver: Receiver,
    integrations: Sequence[Integration],
    now: int,
    *,
    per_integration_seconds: float = TEST_TIMEOUT,
) -> list[dict[str, Any]]:
    """Notify every integration once with the test alert; one result dict each, in order.

    A result is ``{"integration": "slack[0]", "ok": True}`` or, on a
    :class:`NotifyError`, another exception or the deadline (``per_integration_seconds``), ``{...,
    "ok": False, "error": "<message>"}``. Integrations run concurrently, so the whole
    test takes at most one deadline.
    """
    alerts = [test_alert(receiver.name, now)]
    ctx = test_context(receiver.name, now)
    results: list[dict[str, Any]] = [
        {"integration": f"{i.name}[{i.index}]", "ok": False} for i in integrations
    ]

    async def run_one(slot: dict[str, Any], integration: Integration) -> None:
        error: str | None = None
        with trio.move_on_after(per_integration_seconds) as scope:
            try:
                await integration.notify(ctx, alerts)
            except NotifyError as exc:
                error = str(exc)
            except Exception as exc:
                # A bug in one integration must not turn the whole answer into a 500.
                log.exception("receiver_test.crashed", integration=slot["integration"])
                error = f"{type(exc).__name__}: {exc}"
        if scope.cancelled_caught:
            error = f"timed out after {per_integration_seconds:g}s"
        if error is None:
            slot["ok"] = True
        else:
            slot["error"] = error
        log.info(
            "receiver_test.done",
            receiver=receiver.name,
            integration=slot["integration"],
            ok=error is None,
            error=error,
        )

    async with trio.open_nursery() as nursery:
        for slot, integration in zip(results, integrations, strict=True):
            nursery.start_soon(run_one, slot, integration)
    return results


__all__ = ["TEST_LABELS", "TEST_TIMEOUT", "test_alert", "test_context", "test_receiver"]
