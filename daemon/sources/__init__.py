"""Alert producers other than HTTP POST: the seam Kubernetes events and audit events
plug into.

A :class:`Source` is a long-running task that turns outside input into alerts and
hands them to an instance's one intake, ``put(alerts, now)``
(:meth:`daemon.instance.Instance.put`), exactly as a POST to ``/api/v2/alerts`` does.
Rule evaluation that decides *which* input becomes an alert stays pure (synchronous,
taking ``now``) in a module beside the source's shell, so it is tested without trio.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

import trio

from daemon.alert import Alert


class Put(Protocol):
    """An instance's intake: store ``alerts`` and hand them to inhibition and dispatch."""

    def __call__(self, alerts: Sequence[Alert], now: int) -> None: ...


class Source(Protocol):
    """One alert producer.

    ``run`` calls ``task_status.started()`` once it takes input, then runs until
    cancelled, handing every alert it makes to ``put``.

    Error handling: bad input is logged and counted by the source, never raised;
    an exception out of ``run`` is a bug and stops the daemon.
    """

    @property
    def name(self) -> str: ...

    async def run(
        self, put: Put, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED
    ) -> None: ...


async def start_sources(nursery: trio.Nursery, sources: Sequence[Source], put: Put) -> None:
    """Start every source in ``nursery``; returns once all of them take input."""
    for source in sources:
        await nursery.start(source.run, put)


__all__ = ["Put", "Source", "start_sources"]
