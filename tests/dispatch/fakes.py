"""Test doubles for dispatch: a notifier that records each flush it is handed."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from contextlib import asynccontextmanager

import attrs
import trio

from daemon.alert import Alert
from daemon.clock import NS_PER_SECOND, TrioClock
from daemon.dispatch.dispatcher import Dispatcher
from daemon.dispatch.route import RouteNode
from daemon.notify.context import Notifier, NotifyContext

S = NS_PER_SECOND
#: Wall time the tests' clocks are anchored at.
T0 = 1_700_000_000 * S


@attrs.frozen
class Call:
    """One notify call: when (seconds since the test's start), its context and alerts."""

    at: float
    ctx: NotifyContext
    alerts: tuple[Alert, ...]

    @property
    def names(self) -> list[str]:
        return [a.labels.get("alertname", "") for a in self.alerts]


class RecordingNotifier:
    """Records every call; optionally sleeps (``delay``) and answers from ``results``."""

    def __init__(
        self,
        t0: float,
        results: Sequence[bool] = (),
        delay: Callable[[NotifyContext], float] = lambda ctx: 0.0,
    ) -> None:
        self.t0 = t0
        self.calls: list[Call] = []
        self.finished: list[Call] = []
        self._results = list(results)
        self._delay = delay

    async def notify(self, ctx: NotifyContext, alerts: Sequence[Alert]) -> bool:
        call = Call(round(trio.current_time() - self.t0, 6), ctx, tuple(alerts))
        self.calls.append(call)
        delay = self._delay(ctx)
        if delay:
            await trio.sleep(delay)
        result = self._results.pop(0) if self._results else True
        self.finished.append(call)
        return result


@asynccontextmanager
async def running_dispatcher(
    root: RouteNode, notifiers: Mapping[str, Notifier], clock: TrioClock
) -> AsyncIterator[Dispatcher]:
    """A started dispatcher, stopped when the block ends."""
    dispatcher = Dispatcher(root, notifiers, clock)
    async with trio.open_nursery() as nursery:
        await nursery.start(dispatcher.run)
        yield dispatcher
        dispatcher.stop()


def alert(
    clock: TrioClock,
    name: str,
    start_offset: float = 0.0,
    end_offset: float | None = 3600.0,
    **labels: str,
) -> Alert:
    """An alert made at the clock's ``now``; ``end_offset`` seconds after now it ends."""
    now = clock.now()
    end = now + int(end_offset * S) if end_offset is not None else now + 3600 * S
    return Alert(
        {"alertname": name, **labels},
        {},
        now + int(start_offset * S),
        end,
        "",
        now,
    )
