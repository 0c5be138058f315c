"""The trio shell around :class:`~daemon.sources.resolve.ResolveBook`: one task owns
the book, takes batches of occurrences from a memory channel, puts their alerts, and
puts each alert again, resolved, when its ``endsAt`` comes (see :mod:`daemon.sources.resolve`
for the rules)."""

from __future__ import annotations

from collections.abc import Sequence

import attrs
import structlog
import trio

from daemon.clock import NS_PER_SECOND, Clock
from daemon.sources import Put
from daemon.sources import metrics as sm
from daemon.sources.resolve import Occurrence, ResolveBook

log = structlog.get_logger("tocsin.sources")

#: Batches waiting for the actor; a full queue makes the intake wait (back-pressure).
QUEUE_SIZE = 64


@attrs.frozen
class _Batch:
    occurrences: Sequence[Occurrence]
    reply: trio.MemorySendChannel[int]


class ResolveActor:
    """Owns a :class:`ResolveBook`: puts each batch's alerts and re-puts them resolved.

    Cancellation: stops between two batches; a batch is put whole or not at all.
    """

    def __init__(self, clock: Clock) -> None:
        self.clock = clock
        self.book = ResolveBook()
        self._send, self._receive = trio.open_memory_channel[_Batch](QUEUE_SIZE)
        self._put: Put | None = None

    async def occur(self, occurrences: Sequence[Occurrence]) -> int:
        """Hand a batch to the actor; returns how many alerts it put."""
        reply_send, reply_receive = trio.open_memory_channel[int](1)
        await self._send.send(_Batch(occurrences, reply_send))
        async with reply_receive:
            return await reply_receive.receive()

    async def run(
        self, put: Put, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED
    ) -> None:
        """Serve batches and resolve on time until cancelled."""
        self._put = put
        task_status.started()
        book = self.book
        while True:
            deadline = book.next_deadline()
            at = float("inf")
            if deadline is not None:
                at = trio.current_time() + (deadline - self.clock.now()) / NS_PER_SECOND
            with trio.move_on_at(at):
                batch = await self._receive.receive()
                now = self.clock.now()
                alerts = book.occur(batch.occurrences, now)
                if alerts:
                    put(alerts, now)
                    sm.alerts_produced.inc(len(alerts))
                batch.reply.send_nowait(len(alerts))
                batch.reply.close()
                continue
            now = self.clock.now()
            resolved = book.due(now)
            if resolved:
                put(resolved, now)
                sm.alerts_resolved.inc(len(resolved))
                log.debug("event_alerts.resolved", count=len(resolved))


__all__ = ["ResolveActor"]
