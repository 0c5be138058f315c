"""The bounded, never-blocking intake in front of each history actor (store, exporters).

Rules:

* :meth:`Intake.put` is sync and O(1). It never blocks and never raises: a full queue,
  a closed one or anything unexpected loses the record and reports the loss through
  ``on_drop(reason, count)`` (``queue_full``, ``closed``, ``error``).
* The actor takes records with :meth:`receive` / :meth:`take_queued` and calls
  :meth:`settle` once it has written or dropped them; :meth:`wait_settled` lets a
  caller wait until everything it put before is settled (tests, orderly shutdown).
* An actor that gathers a batch before writing waits with :meth:`wait_batch`, which
  returns early once a whole batch is queued or somebody waits in :meth:`wait_settled`
  (a caller waiting for its records must not wait out the gathering too).
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
    #: What :meth:`wait_batch` waits for: a count of queued records, and its event.
    _want: int | None = attrs.field(default=None, init=False)
    _batch_ready: trio.Event = attrs.field(factory=trio.Event, init=False)

    def __attrs_post_init__(self) -> None:
        self._send, self._receive = trio.open_memory_channel[HistoryRecord](self.size)

    def put(self, rec: HistoryRecord) -> None:
        """Queue ``rec`` for the actor, or count it lost. Call from the trio thread."""
        try:
            self._send.send_nowait(rec)
            self._accepted += 1
            if self._want is not None and self._queued() >= self._want:
                self._batch_ready.set()
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

    def _queued(self) -> int:
        return self._receive.statistics().current_buffer_used

    async def wait_batch(self, size: int, deadline: float) -> None:
        """Wait until ``deadline`` (trio's clock), ``size`` records are queued, or a
        :meth:`wait_settled` caller is waiting, whichever comes first."""
        if self._queued() >= size or len(self._progress):
            return
        self._want, self._batch_ready = size, trio.Event()
        try:
            with trio.move_on_at(deadline):
                await self._batch_ready.wait()
        finally:
            self._want = None

    def settle(self, count: int) -> None:
        """The actor is done with ``count`` more records (written or dropped)."""
        self._settled += count
        self._progress.unpark_all()

    async def wait_settled(self) -> None:
        """Wait until every record accepted before this call is settled."""
        target = self._accepted
        while self._settled < target:
            # The actor may be gathering a batch: what this caller waits for goes now.
            self._batch_ready.set()
            await self._progress.park()

    def close(self) -> list[HistoryRecord]:
        """Refuse further records (they count as ``closed``); returns what is still queued."""
        self._send.close()
        left: list[HistoryRecord] = []
        self.take_queued(left, None)
        return left


__all__ = ["Intake", "OnDrop"]
