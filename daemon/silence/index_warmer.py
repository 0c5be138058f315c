"""Rebuilding the silence index's RE2 sets off the notification path (trio shell).

A silence write leaves the RE2 set of its label name's chunk stale; rebuilt at the next
look-up, the compile (about 4 ms for 256 keys, 14 ms for issue 15's 1,000 regex
silences) landed inside the first flush after the change. This task rebuilds them once
the writes have paused for :data:`QUIET_SECONDS` (a burst of silence POSTs rebuilds
once, not per POST), one chunk per step, yielding between.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

import trio

#: Silence writes must pause this long before the stale sets are rebuilt.
QUIET_SECONDS = 0.05


class WarmsIndex(Protocol):
    """What the warmer needs: :class:`daemon.silence.state.Silences` is one."""

    def subscribe_changes(self, listener: Callable[[], None]) -> Callable[[], None]: ...

    def warm_index(self, now: int) -> bool: ...


async def warm_silence_index(
    silences: WarmsIndex,
    now: Callable[[], int],
    *,
    quiet: float = QUIET_SECONDS,
    task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Run until cancelled: after each pause of ``quiet`` seconds in the changes, rebuild
    every stale set as of ``now()`` (wall-clock ns). Ready once subscribed."""
    changed = trio.Event()

    def note() -> None:
        changed.set()

    unsubscribe = silences.subscribe_changes(note)
    try:
        task_status.started()
        while True:
            await changed.wait()
            while changed.is_set():
                # Quiet first: every change in the wait starts it over.
                changed = trio.Event()
                await trio.sleep(quiet)
            while silences.warm_index(now()):
                await trio.lowlevel.checkpoint()
    finally:
        unsubscribe()
