"""The trio shell that keeps an instance's recurring silences' windows written.

One :class:`RecurringSilences` task per instance. It owns nothing but its wake-up: the
store stays the store's, and writes go through the same ``commit`` as the API's (journal,
then apply, then gossip). It wakes when a recurring silence's record changes (a new one,
from the API or a peer, or a window edited or expired; plain silences do not wake it)
and when :func:`~daemon.silence.windows.next_check` says a window is due, then writes
what :func:`~daemon.silence.windows.plan_windows` asks for.

Cancellation: safe at every await; a cancelled commit journals nothing or the whole plan.

Error handling: a failed journal write (``OSError``) is logged and retried at the next
wake-up, at most a minute later; a window late by that much is still written before the
time it would have muted most alerts.
"""

from __future__ import annotations

import math
from collections.abc import Awaitable, Callable

import structlog
import trio

from daemon.clock import NS_PER_SECOND, Clock
from daemon.silence.model import Silence
from daemon.silence.state import Plan, Silences
from daemon.silence.windows import as_plan, due, missing, specs

log = structlog.get_logger()

#: Longest sleep: wall time may jump (NTP, suspend) while trio's clock does not.
MAX_SLEEP = 60.0
MIN_SLEEP = 1.0
#: Recurring silences planned between two checkpoints (about 5 ms of work).
SLICE = 50


class RecurringSilences:
    """Writes each recurring silence's windows ahead of time (see :mod:`daemon.silence.windows`)."""

    def __init__(
        self,
        store: Silences,
        commit: Callable[[Plan], Awaitable[None]],
        clock: Clock,
        *,
        tenant: str | None = None,
    ) -> None:
        self._store = store
        self._commit = commit
        self._clock = clock
        self._tenant = tenant
        self._changed = trio.Event()

    def _on_change(self) -> None:
        self._changed.set()

    async def _plan(self) -> tuple[Plan | None, int | None]:
        """The missing windows and the next due time, :data:`SLICE` recurring silences
        at a time with a checkpoint between, so a thousand of them do not stall the loop."""
        now = self._clock.now()
        records: list[tuple[Silence, int]] = []
        due_at: int | None = None
        found = list(specs(self._store).values())
        for i, (spec, latest) in enumerate(found):
            if i and i % SLICE == 0:
                await trio.lowlevel.checkpoint()
            records += missing(self._store, spec, latest, now)
            at = due(self._store, spec, now)
            if at is not None and (due_at is None or at < due_at):
                due_at = at
        return as_plan(records), due_at

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Run until cancelled; ready once subscribed to the store."""
        unsubscribe = self._store.subscribe_recurring(self._on_change)
        try:
            task_status.started()
            while True:
                self._changed = trio.Event()
                plan, due = await self._plan()
                if plan is not None:
                    try:
                        await self._commit(plan)
                    except OSError as exc:
                        log.warning(
                            "silence.recurring_write_failed", error=str(exc), tenant=self._tenant
                        )
                    else:
                        log.info(
                            "silence.windows_written",
                            ids=[s.id for s, _ in plan.records],
                            tenant=self._tenant,
                        )
                        # Plan again: what was written moves the next due time.
                        continue
                # No recurring silence: nothing is due until the store changes.
                wait = MAX_SLEEP if due is not None or plan is not None else math.inf
                if due is not None:
                    # At least MIN_SLEEP: a due time that planning cannot meet (a
                    # failed write) must not spin the loop.
                    wait = min(wait, max((due - self._clock.now()) / NS_PER_SECOND, MIN_SLEEP))
                with trio.move_on_after(wait):
                    await self._changed.wait()
        finally:
            unsubscribe()


__all__ = ["RecurringSilences"]
