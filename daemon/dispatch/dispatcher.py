"""The dispatcher: routes every stored alert to its route-group actors (spec §3.5).

The alert store calls :meth:`Dispatcher.ingest` synchronously for each insert, resolved
alerts and re-posts included. Intake only matches the (immutable) routing tree and
queues the alert on each matching route's actor, so it never blocks the store.

A reload builds a new dispatcher and stops the old one; group state is not carried over,
as in Alertmanager.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence

import trio

from daemon import metrics
from daemon.alert import Alert
from daemon.clock import Clock
from daemon.dispatch.actor import RouteGroupActor, no_peer_wait, serve_shared
from daemon.dispatch.group_limit import GroupBudget
from daemon.dispatch.route import RouteNode
from daemon.dispatch.snapshot import GroupSnapshot
from daemon.notify.context import Notifier


class Dispatcher:
    """One route-group actor per route node, fed by :meth:`ingest`."""

    def __init__(
        self,
        root: RouteNode,
        notifiers: Mapping[str, Notifier],
        clock: Clock,
        *,
        peer_wait: Callable[[], float] = no_peer_wait,
        budget: GroupBudget | None = None,
        tenant: str | None = None,
    ) -> None:
        """``notifiers`` maps receiver names to pipelines; every route's receiver needs one.

        ``peer_wait`` gives the cluster wait (seconds) added to each flush deadline;
        ``budget`` caps the groups of all routes together (a tenant's limit); ``tenant``
        labels the processing summary of a tenant's pipeline.
        """
        self.root = root
        self._processing = metrics.pipeline_series(metrics.dispatcher_processing, tenant)
        self._actors: dict[str, RouteGroupActor] = {}
        for node in root.walk():
            try:
                notifier = notifiers[node.receiver]
            except KeyError:
                raise ValueError(f"no notifier for receiver {node.receiver!r}") from None
            self._actors[node.id] = RouteGroupActor(node, notifier, clock, peer_wait, budget)
        # A tree that is only a root without matchers routes every alert to the root:
        # skip the walk (it runs once per posted alert).
        self._sole_actor = (
            self._actors[root.id] if not root.children and not root.route.matchers else None
        )
        self._cancel_scope = trio.CancelScope()

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Run every actor; ``started()`` once all of them read their inboxes.

        Use with ``nursery.start``. Returns after :meth:`stop`.

        Cancellation: stops every actor and their in-flight flushes.
        """
        started = False
        with self._cancel_scope:
            async with trio.open_nursery() as nursery:
                # The actors' inboxes are drained by the run's shared intake.
                nursery.start_soon(serve_shared)
                for actor in self._actors.values():
                    await nursery.start(actor.run)
                task_status.started()
                started = True
        if not started:
            # Stopped before every actor was up: report "started" anyway so that the
            # caller's ``nursery.start`` returns instead of raising.
            task_status.started()

    def stop(self) -> None:
        """End :meth:`run` (idempotent; also works before ``run`` was called)."""
        self._cancel_scope.cancel()

    def ingest(self, alert: Alert) -> None:
        """Queue ``alert`` on every route it matches. Synchronous and never blocks."""
        self.ingest_many((alert,))

    def ingest_many(self, alerts: Sequence[Alert]) -> None:
        """Queue each of ``alerts``, in order, on every route it matches.

        Alertmanager's processing summary times its processAlert: routing the alert and
        handing it to each matching route's aggregation groups, as here. It gets one
        update for the batch: its count grows by the batch's size and its sum by the
        time the batch took, which is what one observation per alert adds up to (a
        summary keeps no buckets), without a lock and two increments per alert (1.6% of
        the daemon's time under ingest).
        """
        if not alerts:
            return
        start = time.perf_counter()
        sole = self._sole_actor
        if sole is not None:
            send = sole.send
            for alert in alerts:
                send(alert)
        else:
            match, actors = self.root.match, self._actors
            for alert in alerts:
                for node in match(alert.labels):
                    actors[node.id].send(alert)
        metrics.observe_summary_many(self._processing, len(alerts), time.perf_counter() - start)

    def groups(self) -> list[GroupSnapshot]:
        """Every current group (empty ones included until maintenance removes them).

        Routes in tree order, groups in creation order; the API sorts as it needs.
        """
        out: list[GroupSnapshot] = []
        for actor in self._actors.values():
            out.extend(actor.snapshots())
        return out

    def group_count(self) -> int:
        return sum(actor.group_count() for actor in self._actors.values())
