"""Set-up shared by the dispatcher tests: one route, one recording receiver, virtual time."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager

import attrs
import trio

from daemon.clock import TrioClock
from daemon.config.model import SECOND, Route
from daemon.dispatch.dispatcher import Dispatcher
from daemon.dispatch.route import RouteNode
from daemon.notify.context import NotifyContext

from .fakes import T0, RecordingNotifier, alert, running_dispatcher


def route_root(
    gw: int = 3,
    gi: int = 6,
    group_by: tuple[str, ...] = ("alertname",),
    group_by_all: bool = False,
) -> RouteNode:
    """A lone root route to receiver ``default`` (group_wait ``gw`` s, group_interval ``gi`` s)."""
    return RouteNode.build(
        Route(
            receiver="default",
            group_by=group_by,
            group_by_all=group_by_all,
            group_wait=gw * SECOND,
            group_interval=gi * SECOND,
            repeat_interval=20 * SECOND,
        )
    )


@attrs.frozen
class VirtualDispatch:
    """A running dispatcher whose only receiver ``default`` records into ``rec``.

    ``t0`` is trio's time at the start and ``clock`` the wall clock anchored at
    :data:`T0` then, so sleeping moves both.
    """

    dispatcher: Dispatcher
    rec: RecordingNotifier
    clock: TrioClock
    t0: float

    def ingest(
        self, name: str, start_offset: float = 0.0, end_offset: float | None = 3600.0, **labels: str
    ) -> None:
        """Hand the dispatcher one alert made now (see :func:`fakes.alert`)."""
        self.dispatcher.ingest(alert(self.clock, name, start_offset, end_offset, **labels))

    async def sleep_until(self, seconds: float) -> None:
        """Sleep until ``seconds`` after the start."""
        await trio.sleep_until(self.t0 + seconds)


@asynccontextmanager
async def virtual_dispatch(
    root: RouteNode,
    results: Sequence[bool] = (),
    delay: Callable[[NotifyContext], float] = lambda ctx: 0.0,
    deadline: float = 100,
) -> AsyncIterator[VirtualDispatch]:
    """Run a dispatcher for ``root`` until the block ends, all within ``deadline`` seconds.

    ``results`` and ``delay`` go to the :class:`RecordingNotifier`. The dispatcher
    is stopped when the block ends, so checks after it see every finished flush.
    """
    with trio.fail_after(deadline):
        t0 = trio.current_time()
        clock = TrioClock(T0)
        rec = RecordingNotifier(t0, results, delay)
        async with running_dispatcher(root, {"default": rec}, clock) as dispatcher:
            yield VirtualDispatch(dispatcher, rec, clock, t0)
