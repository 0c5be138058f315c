"""Record factories and an inline thread runner for the history tests."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import trio

from daemon.clock import NS_PER_SECOND
from daemon.history.record import (
    HistoryAlert,
    HistoryRecord,
    IntegrationRef,
    NotifyReason,
    Outcome,
    Status,
)

S = NS_PER_SECOND
#: 2026-01-01T00:00:00Z
T0 = 1_767_225_600 * S


def make_record(
    time: int = T0,
    *,
    receiver: str = "team-a",
    integration: str = "webhook",
    index: int = 0,
    alerts: Mapping[str, str] | list[Mapping[str, str]] | None = None,
    status: Status = Status.FIRING,
    outcome: Outcome = Outcome.SENT,
    reason: NotifyReason | None = NotifyReason.FIRST_NOTIFICATION,
    error: str | None = None,
    tenant: str = "",
    group_key: str = '{}:{alertname="A"}',
) -> HistoryRecord:
    """A record with one alert per label set in ``alerts`` (default: one ``alertname=A``)."""
    label_sets: list[Mapping[str, str]]
    if alerts is None:
        label_sets = [{"alertname": "A"}]
    elif isinstance(alerts, list):
        label_sets = alerts
    else:
        label_sets = [alerts]
    return HistoryRecord(
        time=time,
        receiver=receiver,
        integration=IntegrationRef(integration, index),
        group_key=group_key,
        group_labels={"alertname": label_sets[0].get("alertname", "")},
        alerts=[HistoryAlert(f"{i:016x}", labels, status) for i, labels in enumerate(label_sets)],
        reason=None if outcome is Outcome.SUPPRESSED else reason,
        outcome=outcome,
        error=error,
        attempts=0 if outcome is Outcome.SUPPRESSED else 1,
        duration=5_000_000,
        repeat_interval=4 * 3600 * S,
        tenant=tenant,
    )


async def run_inline(fn: Callable[..., Any], *args: Any, limiter: object = None) -> Any:
    """``trio.to_thread.run_sync`` without the thread: keeps autojump_clock deterministic."""
    await trio.lowlevel.checkpoint()
    return fn(*args)
