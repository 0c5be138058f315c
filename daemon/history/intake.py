"""The bounded, never-blocking intake in front of each history actor (store, exporters).

Rules:

* :meth:`Intake.put` is sync and O(1). It never blocks and never raises: a full queue,
  a closed one or anything unexpected loses the record and reports the loss through
  ``on_drop(reason, count)`` (``queue_full``, ``closed``, ``error``).
* The actor takes records with :meth:`receive` / :meth:`take_queued` and calls
  :meth:`settle` once it has written or dropped them; :meth:`wait_settled` lets a
  caller wait until everything it put before is settled (tests, orderly shutdown).
"""

from __future__ import annotations

from collections.abc import Callable

import attrs
import structlog
import trio

from daemon.history.record import HistoryRecord

log = structlog.get_logger("daemon.history")

OnDrop = Callable[[str, int], None]


@attrs.define(eq=False)
class Intake:
    """A bounded queue of records between the notifier and one actor."""

    size: int
    on_drop: OnDrop
    _send: trio.MemorySendChannel[HistoryRecord] = attrs.field(init=False)
    _receive: trio.MemoryReceiveChannel[HistoryRecord] = attrs.field(init=False)
    #: Records put (and not dropped), and records the actor has settled.
    _accepted: int = attrs.field(default=0, init=False)
    _settled: int = attrs.field(default=0, init=False)
    _progress: trio.lowlevel.ParkingLot = attrs.field(factory=trio.lowlevel.ParkingLot, init=False)

    def __attrs_post_init__(self) -> None:
        self._send, self._receive = trio.open_memory_channel[HistoryRecord](self.size)

    def put(self, rec: HistoryRecord) -> None:
        """Queue ``rec`` for the actor, or count it lost. Call from the trio thread."""
        try:
            self._send.send_nowait(rec)
            self._accepted += 1
        except trio.WouldBlock:
            self.on_drop("queue_full", 1)
        except (trio.ClosedResourceError, trio.BrokenResourceError):
            self.on_drop("closed", 1)
        except Exception as exc:
            # Deliberately broad: whatever goes wrong here must stay out of the notifier.
            self.on_drop("error", 1)
            log.error("history.record_failed", error=repr(exc))

    async def receive(self) -> HistoryRecord:
        return await self._receive.receive()

    def take_queued(self, batch: list[HistoryRecord], limit: int | None) -> None:
        """Move already-queued records into ``batch`` until it holds ``limit`` (None: all)."""
        while limit is None or len(batch) < limit:
            try:
                batch.append(self._receive.receive_nowait())
            except (trio.WouldBlock, trio.EndOfChannel):
                return

    def settle(self, count: int) -> None:
        """The actor is done with ``count`` more records (written or dropped)."""
        self._settled += count
        self._progress.unpark_all()

    async def wait_settled(self) -> None:
        """Wait until every record accepted before this call is settled."""
        target = self._accepted
        while self._settled < target:
            await self._progress.park()

    def close(self) -> list[HistoryRecord]:
        """Refuse further records (they count as ``closed``); returns what is still queued."""
        self._send.close()
        left: list[HistoryRecord] = []
        self.take_queued(left, None)
        return left


__all__ = ["Intake", "OnDrop"]
