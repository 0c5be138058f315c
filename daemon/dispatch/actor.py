"""The route-group actor: one trio task per route node, owning that route's groups.

Theory of operation:

* The actor's inbox is an unbounded memory channel. It carries alerts (from
  :meth:`RouteGroupActor.send`, called by the dispatcher's synchronous intake) and
  :class:`_FlushDone` results from the actor's own flush tasks.
* Only the actor's main task mutates the groups: it handles one message at a time, and
  runs due ticks between messages, with no ``await`` between reading a group and
  writing it. Flush tasks get copies and report back through the inbox.
* Timers are data (:attr:`AggregationGroup.next_flush_at`); the actor sleeps in
  ``receive()`` under a cancel scope whose deadline is the earliest tick or maintenance
  time. Before running ticks it drains whatever is already queued, so a batch of alerts
  posted together lands in the same notification.
* Each flush runs in the actor's nursery, so a slow receiver for one group never delays
  another group. It is bounded by ``max(group_interval, 10s) + peer_wait`` (spec §3.3);
  running out of time counts as a failed flush.
* Every 30 s, groups that are empty and not flushing are removed; a later alert with
  the same labels makes a new group with a fresh group_wait.

Cancellation: cancelling :meth:`RouteGroupActor.run` cancels in-flight flushes; their
outcome is lost, as it is when Alertmanager stops.

Error handling: an exception from a notifier is a bug and propagates out of ``run``.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import TypeAlias

import attrs
import structlog
import trio

from daemon.alert import Alert
from daemon.clock import NS_PER_SECOND, Clock
from daemon.dispatch.group import AggregationGroup, FlushSnapshot
from daemon.dispatch.route import RouteNode
from daemon.dispatch.snapshot import GroupSnapshot
from daemon.notify.context import Notifier, NotifyContext

log = structlog.get_logger(__name__)

#: Seconds between removals of empty groups (Alertmanager's dispatcher maintenance).
MAINTENANCE_INTERVAL = 30.0
#: The least time a flush gets, whatever the group_interval (Alertmanager's MinTimeout).
MIN_FLUSH_TIMEOUT = 10.0


@attrs.frozen(eq=False)
class _FlushDone:
    group: AggregationGroup
    snapshot: FlushSnapshot
    success: bool


_Message: TypeAlias = Alert | _FlushDone


def no_peer_wait() -> float:
    return 0.0


class RouteGroupActor:
    """Owns the aggregation groups of one route node and flushes them on their timers."""

    def __init__(
        self,
        node: RouteNode,
        notifier: Notifier,
        clock: Clock,
        peer_wait: Callable[[], float] = no_peer_wait,
    ) -> None:
        self.node = node
        self._notifier = notifier
        self._clock = clock
        self._peer_wait = peer_wait
        self._groups: dict[str, AggregationGroup] = {}
        send, receive = trio.open_memory_channel[_Message](math.inf)
        self._send_channel = send
        self._receive_channel = receive
        self._flush_timeout = max(node.route.group_interval / NS_PER_SECOND, MIN_FLUSH_TIMEOUT)

    # --- called from other tasks (synchronous, non-blocking) ---------------------------

    def send(self, alert: Alert) -> None:
        """Queue ``alert`` for insertion; dropped silently once the actor has stopped."""
        try:
            self._send_channel.send_nowait(alert)
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            # The actor is gone (shutdown or a reload replaced the dispatcher).
            pass

    def group_count(self) -> int:
        return len(self._groups)

    def snapshots(self) -> list[GroupSnapshot]:
        """Immutable views of this route's groups, in creation order."""
        node = self.node
        return [
            GroupSnapshot(
                receiver=node.receiver,
                route_id=node.id,
                group_key=group.group_key,
                labels=dict(group.labels),
                alerts=group.view(),
            )
            for group in self._groups.values()
        ]

    # --- the actor ---------------------------------------------------------------------

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Serve until cancelled; ``started()`` once the inbox is being read.

        Cancellation: cancels in-flight flushes and closes the inbox.
        """
        async with self._receive_channel, trio.open_nursery() as nursery:
            next_maintenance = trio.current_time() + MAINTENANCE_INTERVAL
            task_status.started()
            while True:
                self._drain()
                now = trio.current_time()
                if now >= next_maintenance:
                    self._maintain()
                    next_maintenance = now + MAINTENANCE_INTERVAL
                self._run_due_ticks(nursery, now)
                with trio.move_on_at(self._next_deadline(next_maintenance)):
                    message = await self._receive_channel.receive()
                    self._handle(message)

    def _drain(self) -> None:
        while True:
            try:
                message = self._receive_channel.receive_nowait()
            except trio.WouldBlock:
                return
            self._handle(message)

    def _next_deadline(self, next_maintenance: float) -> float:
        deadline = next_maintenance
        for group in self._groups.values():
            if not group.flushing and group.next_flush_at < deadline:
                deadline = group.next_flush_at
        return deadline

    def _handle(self, message: _Message) -> None:
        if isinstance(message, _FlushDone):
            message.group.finish_flush(message.snapshot, message.success)
            return
        self._insert(message)

    def _insert(self, alert: Alert) -> None:
        node = self.node
        labels = node.group_labels(alert.labels)
        key = node.group_key(labels)
        group = self._groups.get(key)
        if group is None:
            route = node.route
            group = AggregationGroup.create(
                key, labels, route.group_wait, route.group_interval, trio.current_time()
            )
            self._groups[key] = group
            log.debug("group.created", route_id=node.id, group_key=key)
        if group.insert(alert, self._clock.now()):
            group.expedite(trio.current_time())

    def _run_due_ticks(self, nursery: trio.Nursery, now: float) -> None:
        node = self.node
        for group in self._groups.values():
            if not group.due(now):
                continue
            group.tick(now)
            now_wall = self._clock.now()
            planned = group.begin_flush(now_wall)
            if planned is None:
                continue
            alerts, snapshot = planned
            ctx = NotifyContext(
                group_key=group.group_key,
                group_labels=dict(group.labels),
                receiver=node.receiver,
                repeat_interval=node.route.repeat_interval,
                route_id=node.id,
                now=now_wall,
                mute_time_intervals=node.route.mute_time_intervals,
                active_time_intervals=node.route.active_time_intervals,
            )
            nursery.start_soon(self._flush, group, alerts, snapshot, ctx)

    async def _flush(
        self,
        group: AggregationGroup,
        alerts: list[Alert],
        snapshot: FlushSnapshot,
        ctx: NotifyContext,
    ) -> None:
        success = False
        with trio.move_on_after(self._flush_timeout + self._peer_wait()) as scope:
            success = await self._notifier.notify(ctx, alerts)
        if scope.cancelled_caught:
            log.warning(
                "group.flush_timeout",
                route_id=ctx.route_id,
                group_key=ctx.group_key,
                receiver=ctx.receiver,
            )
        # Unbounded channel: never blocks. The result is applied by the actor's own task.
        self._send_channel.send_nowait(_FlushDone(group, snapshot, success))

    def _maintain(self) -> None:
        stale = [key for key, g in self._groups.items() if g.empty() and not g.flushing]
        for key in stale:
            del self._groups[key]
            log.debug("group.removed", route_id=self.node.id, group_key=key)
