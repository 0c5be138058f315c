"""The route-group actor: one trio task per route node, owning that route's groups.

Theory of operation:

* The actor's inbox is a plain list of messages: alerts (from
  :meth:`RouteGroupActor.send`, called by the dispatcher's synchronous intake) and
  :class:`_FlushDone` results from the actor's own flush tasks, in arrival order. Only
  the append that makes the list non-empty also marks the actor for the run's shared
  intake task (:class:`_Shared`), so a batch of 100 posted alerts costs one mark.
* The shared intake task drains every marked actor's inbox, and wakes an actor (a
  token on its memory channel) only when that made its next deadline earlier: a post
  reaching 100 tenants' routes wakes one task, not 100. Groups are mutated by that
  task's drain and by the actor's own task, each with no ``await`` between reading a
  group and writing it, so each sees a group as it was left. Flush tasks get copies
  and report back through the inbox.
* Groups are found by :meth:`RouteNode.group_values` (a tuple of label values); the
  Go-quoted group key is built once, when the group is created.
* Timers are data (:attr:`AggregationGroup.next_flush_at`), mirrored in a heap of
  ``(next_flush_at, order)`` entries pushed whenever a deadline changes; entries that
  no longer match their group are dropped when they surface, so a wake-up costs
  O(log groups), not a scan of every group. The actor sleeps on the wake-up channel
  under a cancel scope whose deadline is the earliest tick or maintenance time; the
  scope lasts until that deadline, its deadline moved as messages arm new timers.
  Before running ticks it handles whatever is already queued, so a batch of alerts
  posted together lands in the same notification. Groups due at the same wake-up
  tick in creation order. While the actor sleeps, the task that delivers its mail
  starts the flushes that mail made due itself (:meth:`RouteGroupActor._start_due`,
  synchronous, so the two never tick at once): waking the actor to do it cost a
  scheduler round on a paced alert's way to its notification.
* Each flush runs in the actor's nursery, so a slow receiver for one group never delays
  another group. It is bounded by ``max(group_interval, 10s) + peer_wait`` (spec §3.3);
  running out of time counts as a failed flush.
* Every 30 s, groups that are empty and not flushing are removed; a later alert with
  the same labels makes a new group with a fresh group_wait.
* When the notifier can :class:`Prepare`, it gets the alerts that arrived (those
  whose group flushes later than that), :data:`PREPARE_DELAY` after they did, in
  slices: it looks up what their flush will need (silences) while the daemon waits out
  group_wait, and its caches answer at the flush. It touches no group, only those
  caches. One shared task does this for every actor (of every tenant): a post that
  reaches 100 tenants' routes costs one timer, not one per route (a timer per actor
  and window cost more than the alerts' own handling).

Cancellation: cancelling :meth:`RouteGroupActor.run` cancels in-flight flushes; their
outcome is lost, as it is when Alertmanager stops.

Error handling: an exception from a notifier is a bug and propagates out of ``run``.
"""

from __future__ import annotations

import contextvars
import heapq
import itertools
import math
import time
from collections.abc import Callable, Hashable, Sequence
from typing import Protocol, TypeAlias, runtime_checkable

import attrs
import structlog
import trio

from daemon.alert import Alert
from daemon.clock import NS_PER_SECOND, Clock
from daemon.dispatch.group import AggregationGroup, FlushSnapshot
from daemon.dispatch.group_limit import GroupBudget
from daemon.dispatch.route import RouteNode
from daemon.dispatch.snapshot import GroupSnapshot
from daemon.notify.context import Notifier, NotifyContext

log = structlog.get_logger(__name__)

#: Seconds between removals of empty groups (Alertmanager's dispatcher maintenance).
MAINTENANCE_INTERVAL = 30.0
#: The least time a flush gets, whatever the group_interval (Alertmanager's MinTimeout).
MIN_FLUSH_TIMEOUT = 10.0
#: Seconds after alerts arrive before the notifier prepares for them (a burst of
#: posts is mostly over by then), and how many it gets per scheduler turn.
PREPARE_DELAY = 0.05
PREPARE_BATCH = 200
#: Longest the actor works between two checkpoints while draining its inbox or starting
#: due flushes (1,000 groups due at once, or a 32 MiB POST's alerts queued): the event
#: loop's pause budget is 100 ms, and other tasks wait a batch per step (see
#: daemon.api.cooperative.SLICE_SECONDS for the measurement).
SLICE_SECONDS = 0.002
#: Items handled between two looks at the clock.
SLICE_ITEMS = 64
#: Flushes started between two checkpoints. Each new flush task runs its first step
#: (dedup, silences, rendering: ~1-2 ms) in trio's next batch, so starting 1,000 at once
#: would make one batch of seconds.
FLUSH_STARTS_PER_SLICE = 8
#: Alerts waiting to be prepared beyond this are dropped (their flush does the work).
PREPARE_BACKLOG = 50_000


@runtime_checkable
class Prepare(Protocol):
    """A notifier that can warm its caches for alerts it will be handed soon."""

    def prepare(self, alerts: Sequence[Alert], now: int) -> None: ...


@attrs.frozen(eq=False)
class _FlushDone:
    group: AggregationGroup
    snapshot: FlushSnapshot
    success: bool


_Message: TypeAlias = Alert | _FlushDone


def no_peer_wait() -> float:
    return 0.0


class _Marked:
    """Actors marked for a shared task's attention, in the order they were marked
    (each once); the task waits until there is one."""

    def __init__(self) -> None:
        self._actors: dict[RouteGroupActor, None] = {}
        self._event = trio.Event()

    def __bool__(self) -> bool:
        return bool(self._actors)

    def mark(self, actor: RouteGroupActor) -> None:
        self._actors[actor] = None
        self._event.set()

    def pop(self) -> RouteGroupActor:
        actor = next(iter(self._actors))
        del self._actors[actor]
        return actor

    async def wait(self) -> None:
        if not self._actors:
            self._event = trio.Event()
            await self._event.wait()


class _Shared:
    """What every actor of a trio run (every tenant's) shares: one task that drains
    their inboxes, and one that prepares their arrivals.

    Intake: a post marks its actor (:meth:`has_mail`); the intake task drains every
    marked actor's inbox in turn (synchronously, in slices) and wakes an actor only
    when that moved its next deadline earlier. A post reaching 100 tenants' routes
    thus wakes one task, not 100 (each wake cost more than inserting the alert).

    Preparation: :meth:`wants` marks an actor with arrivals; :data:`PREPARE_DELAY`
    after the first, the preparer hands every marked actor's arrivals to its
    notifier's ``prepare``, in slices of :data:`PREPARE_BATCH` alerts with a checkpoint
    between slices: one timer per window, not one per actor.

    Every dispatcher runs :meth:`serve` (:func:`serve_shared`), but only one serves at
    a time (a lock): when it stops (a reload, a removed tenant), the next waiting one
    takes over the same queues, which are consistent at every checkpoint.
    """

    def __init__(self) -> None:
        #: Actors with mail, and actors with arrivals to prepare.
        self._mail = _Marked()
        self._fresh = _Marked()
        self._lock = trio.Lock()
        #: Flushes started so far by this run's actors (see :func:`flushes_started`).
        self.flushes_started = 0

    def has_mail(self, actor: RouteGroupActor) -> None:
        self._mail.mark(actor)

    def wants(self, actor: RouteGroupActor) -> None:
        self._fresh.mark(actor)

    async def serve(self) -> None:
        async with self._lock, trio.open_nursery() as nursery:
            nursery.start_soon(self._deliver)
            nursery.start_soon(self._prepare)

    def deliver_slice(self) -> bool:
        """Drain the marked actors' inboxes for at most :data:`SLICE_SECONDS` (waking
        each actor whose next deadline moved earlier); whether mail remains."""
        mail = self._mail
        deadline = time.perf_counter() + SLICE_SECONDS
        while mail:
            actor = mail.pop()
            if actor._deliver():
                # Its slice is spent: the rest after the others (round robin).
                mail.mark(actor)
            if time.perf_counter() >= deadline:
                break
        return bool(mail)

    async def _deliver(self) -> None:
        mail = self._mail
        while True:
            await mail.wait()
            while self.deliver_slice():
                await trio.lowlevel.checkpoint()

    async def _prepare(self) -> None:
        due = self._fresh
        while True:
            await due.wait()
            await trio.sleep(PREPARE_DELAY)
            budget = PREPARE_BATCH
            while due:
                actor = due.pop()
                before = len(actor._fresh)
                left = actor._prepare_slice(budget)
                if left:
                    # Round robin: one actor's backlog does not starve the others.
                    due.mark(actor)
                budget -= before - left
                if budget <= 0:
                    # Let posts and flushes in between slices.
                    await trio.lowlevel.checkpoint()
                    budget = PREPARE_BATCH


_SHARED = trio.lowlevel.RunVar[_Shared]("tocsin_actors_shared")


def _shared() -> _Shared:
    """The trio run's one :class:`_Shared`."""
    try:
        return _SHARED.get()
    except LookupError:
        shared = _Shared()
        _SHARED.set(shared)
        return shared


def deliver_now() -> None:
    """Hand what posts have queued to their actors now, in the calling task (at most one
    slice; the shared intake does the rest), instead of at the intake task's next turn.

    A poster that calls this after storing a batch saves that scheduler round before
    the actors see it, and a flush the batch made due (``group_wait: 0``) is started
    here too (:meth:`RouteGroupActor._deliver`) rather than by its actor a round later:
    two rounds on every new group's way to its notification. Outside a trio run
    (nothing is served) it does nothing.
    """
    try:
        shared = _SHARED.get()
    except (LookupError, RuntimeError):
        return
    shared.deliver_slice()


def flushes_started() -> int:
    """How many flushes this trio run's actors have started so far (0 outside a run).

    A poster compares it before and after its put to learn whether the put started a
    notification (see :func:`deliver_now`).
    """
    try:
        return _SHARED.get().flushes_started
    except (LookupError, RuntimeError):
        return 0


async def serve_shared() -> None:
    """Wait for the turn to run the intake and preparer of every actor of this trio
    run, and run them until cancelled. Whoever runs actors runs this beside them."""
    await _shared().serve()


class RouteGroupActor:
    """Owns the aggregation groups of one route node and flushes them on their timers."""

    def __init__(
        self,
        node: RouteNode,
        notifier: Notifier,
        clock: Clock,
        peer_wait: Callable[[], float] = no_peer_wait,
        budget: GroupBudget | None = None,
    ) -> None:
        self.node = node
        self._budget = budget
        self._notifier = notifier
        self._clock = clock
        self._peer_wait = peer_wait
        #: Group-label values (:meth:`RouteNode.group_values`) → group, in creation order.
        self._groups: dict[Hashable, AggregationGroup] = {}
        self._by_order: dict[int, AggregationGroup] = {}
        self._orders = itertools.count()
        #: Heap of ``(next_flush_at, order)``; may hold stale entries (see module doc).
        self._timers: list[tuple[float, int]] = []
        self._inbox: list[_Message] = []
        #: Keys of the groups created while handling the current batch, for the log.
        self._created: list[str] = []
        self._stopped = False
        send, receive = trio.open_memory_channel[None](math.inf)
        self._wake_send = send
        self._wake_receive = receive
        self._flush_timeout = max(node.route.group_interval / NS_PER_SECOND, MIN_FLUSH_TIMEOUT)
        self._prepare = notifier.prepare if isinstance(notifier, Prepare) else None
        #: Alerts inserted but not yet handed to ``prepare``.
        self._fresh: list[Alert] = []
        #: The deadline this actor sleeps until, waiting for an earlier one (-inf: not
        #: asleep; it looks at its timers before it sleeps again).
        self._asleep_until = -math.inf
        #: Where flushes run (the actor's nursery, while :meth:`run` runs), and the
        #: context they run in: a copy of the actor task's, whichever task starts them.
        self._nursery: trio.Nursery | None = None
        self._context = contextvars.copy_context()
        #: Groups found due but not started yet, last to start first (see _start_due).
        self._due: list[AggregationGroup] = []

    # --- called from other tasks (synchronous, non-blocking) ---------------------------

    def send(self, alert: Alert) -> None:
        """Queue ``alert`` for insertion; dropped silently once the actor has stopped."""
        # _post, inlined for the common case: this runs once per posted alert.
        inbox = self._inbox
        if inbox and not self._stopped:
            inbox.append(alert)
        else:
            self._post(alert)

    def _post(self, message: _Message) -> None:
        if self._stopped:
            # The actor is gone (shutdown or a reload replaced the dispatcher).
            return
        inbox = self._inbox
        inbox.append(message)
        if len(inbox) == 1:
            _shared().has_mail(self)

    def _deliver(self) -> bool:
        """The shared intake's turn: drain (one slice), and wake the actor if that made
        its next deadline earlier; whether messages remain."""
        if self._stopped:
            return False
        more = self._drain()
        asleep_until = self._asleep_until
        if not more and asleep_until != -math.inf:
            # Asleep, so not ticking: a flush the batch made due (a new group with
            # group_wait 0) starts here, in the delivering task, rather than a scheduler
            # round later when the woken actor would start it. Only with the inbox
            # drained: a batch posted together lands in one notification.
            now = trio.current_time()
            if self._next_deadline(asleep_until) <= now:
                self._start_due(now)
        if self._next_deadline(asleep_until) < asleep_until:
            self._asleep_until = -math.inf
            try:
                self._wake_send.send_nowait(None)
            except (trio.BrokenResourceError, trio.ClosedResourceError):
                self._stop_intake()
                return False
        return more

    def _stop_intake(self) -> None:
        self._stopped = True
        self._inbox.clear()

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
                next_flush_at=group.next_flush_at,
            )
            for group in self._groups.values()
        ]

    # --- the actor ---------------------------------------------------------------------

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Serve until cancelled; ``started()`` once the inbox is being read.

        Cancellation: cancels in-flight flushes and closes the inbox.
        """
        try:
            async with self._wake_receive, trio.open_nursery() as nursery:
                self._nursery = nursery
                self._context = contextvars.copy_context()
                next_maintenance = trio.current_time() + MAINTENANCE_INTERVAL
                task_status.started()
                while True:
                    # What came with the deadline lands in this tick's notification.
                    while self._drain():
                        await trio.lowlevel.checkpoint()
                    now = trio.current_time()
                    if now >= next_maintenance:
                        self._maintain()
                        next_maintenance = now + MAINTENANCE_INTERVAL
                    while self._start_due(now):
                        # Only this actor touches its groups, so they are as we left them.
                        await trio.lowlevel.checkpoint()
                        now = trio.current_time()
                    await self._wait_and_drain(self._next_deadline(next_maintenance))
        finally:
            self._nursery = None
            self._stop_intake()

    async def _wait_and_drain(self, deadline: float) -> None:
        """Drain the inbox as messages come, until ``deadline`` (a tick or maintenance).

        One cancel scope serves every wake-up until the deadline: its deadline is moved
        as messages change the timers, instead of a new scope per wake-up (with 100
        tenants, each POST wakes a hundred actors; a scope per wake cost as much as
        the alerts' own handling). Ticks run outside the scope, so its expiry never
        interrupts a tick; a drain interrupted at a checkpoint leaves the rest queued.
        """
        with trio.CancelScope(deadline=deadline) as scope:
            while True:
                while self._drain():
                    await trio.lowlevel.checkpoint()
                # Draining may have made a group due earlier (a new group, expedite).
                scope.deadline = min(scope.deadline, self._next_deadline(scope.deadline))
                if scope.deadline <= trio.current_time():
                    return
                # Until then the shared intake drains the inbox and wakes this task
                # only for an earlier deadline.
                self._asleep_until = scope.deadline
                try:
                    await self._wake_receive.receive()
                finally:
                    self._asleep_until = -math.inf

    def _drain(self) -> bool:
        """Handle queued messages, in order, for at most :data:`SLICE_SECONDS`; whether
        messages remain (the caller checkpoints and calls again)."""
        deadline = time.perf_counter() + SLICE_SECONDS
        while self._inbox:
            if time.perf_counter() >= deadline:
                return True
            batch = self._inbox[:SLICE_ITEMS]
            del self._inbox[:SLICE_ITEMS]
            # One wall-clock reading per batch: the alerts of a batch arrived together.
            now_wall = self._clock.now()
            # Alerts whose group flushes before PREPARE_DELAY are not prepared: the
            # flush does the same look-ups first (with group_wait 0, every alert).
            prepare_before = trio.current_time() + PREPARE_DELAY
            created = self._created
            fresh = self._fresh if self._prepare is not None else None
            for message in batch:
                if isinstance(message, Alert):
                    group = self._insert(message, now_wall)
                    if (
                        fresh is not None
                        and group is not None
                        and group.next_flush_at > prepare_before
                    ):
                        fresh.append(message)
                else:
                    assert isinstance(message, _FlushDone)
                    message.group.finish_flush(message.snapshot, message.success)
                    self._arm(message.group)
            if created:
                # One logger per batch: structlog's lazy proxy binds anew on every call,
                # which costs more than creating the group itself.
                bound = log.bind(route_id=self.node.id)
                for key in created:
                    bound.debug("group.created", group_key=key)
                created.clear()
            if fresh:
                if len(fresh) > PREPARE_BACKLOG:
                    del fresh[:-PREPARE_BACKLOG]
                _shared().wants(self)
        return False

    def _prepare_slice(self, most: int) -> int:
        """Hand up to ``most`` arrived alerts to ``prepare``; how many remain."""
        fresh = self._fresh
        if self._prepare is None or self._stopped:
            fresh.clear()
            return 0
        batch = fresh[:most]
        del fresh[:most]
        if batch:
            self._prepare(batch, self._clock.now())
        return len(fresh)

    def _arm(self, group: AggregationGroup) -> None:
        heapq.heappush(self._timers, (group.next_flush_at, group.order))

    def _live(self, entry: tuple[float, int]) -> AggregationGroup | None:
        """The group a timer entry is for, or None if the entry is stale."""
        group = self._by_order.get(entry[1])
        if group is None or group.flushing or group.next_flush_at != entry[0]:
            # Removed, or re-armed by a later entry (flushing groups are re-armed when
            # the flush finishes).
            return None
        return group

    def _next_deadline(self, next_maintenance: float) -> float:
        if self._due:
            return -math.inf
        timers = self._timers
        while timers:
            if self._live(timers[0]) is not None:
                return min(timers[0][0], next_maintenance)
            heapq.heappop(timers)
        return next_maintenance

    def _due_groups(self, now: float) -> list[AggregationGroup]:
        """Pop the groups whose tick is due at ``now``, in creation order."""
        timers = self._timers
        due: dict[int, AggregationGroup] = {}
        while timers and timers[0][0] <= now:
            group = self._live(heapq.heappop(timers))
            if group is not None:
                due[group.order] = group
        return [due[order] for order in sorted(due)]

    def _insert(self, alert: Alert, now_wall: int) -> AggregationGroup | None:
        """Put ``alert`` in its group (made if new); returns the group, or None if the
        alert was not inserted."""
        node = self.node
        values = node.group_values(alert.labels)
        group = self._groups.get(values)
        if group is None:
            if self._budget is not None and not self._budget.take():
                log.error(
                    "group.limit_reached",
                    route_id=node.id,
                    groups=self._budget.count,
                    limit=self._budget.limit(),
                    alertname=alert.labels.get("alertname", ""),
                )
                return None
            route = node.route
            labels = node.group_labels(alert.labels)
            key = node.group_key(labels)
            group = AggregationGroup.create(
                key, labels, route.group_wait, route.group_interval, trio.current_time()
            )
            group.order = next(self._orders)
            self._groups[values] = group
            self._by_order[group.order] = group
            self._arm(group)
            self._created.append(key)
        if group.insert(alert, now_wall):
            now = trio.current_time()
            # Only a deadline that moves gets a timer entry: re-arming a group that is
            # already due pushed one stale entry per alert (100k after a reload, where
            # every re-fed alert is old), and popping them was one 100+ ms step.
            if group.next_flush_at > now:
                group.expedite(now)
                self._arm(group)
        return group

    def _start_due(self, now: float) -> bool:
        """Start the flushes of the groups due at ``now``, in creation order, for at most
        one slice (:data:`FLUSH_STARTS_PER_SLICE` flushes or :data:`SLICE_SECONDS`);
        whether due groups remain (the caller checkpoints and calls again).

        Called by the actor's task and, while the actor sleeps, by the task delivering
        its mail (:meth:`_deliver`); never both at once, and with no ``await`` inside.
        """
        nursery = self._nursery
        if nursery is None:
            return False
        due = self._due
        if not due:
            # Last to start first: a stack in reverse creation order.
            due.extend(reversed(self._due_groups(now)))
        node = self.node
        deadline = time.perf_counter() + SLICE_SECONDS
        started = 0
        while due:
            # The clock is read per group: a tick that plans no flush still costs ~1 ms
            # for a group of 100 alerts.
            if started == FLUSH_STARTS_PER_SLICE or time.perf_counter() >= deadline:
                return True
            group = due.pop()
            group.tick(now)
            self._arm(group)
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
            # trio gives a new task a copy of the spawning task's context: spawned in
            # the actor's, so a flush started by a poster (or the shared intake) still
            # sees its tenant's context variables (receivers firewall, log fields).
            self._context.run(nursery.start_soon, self._flush, group, alerts, snapshot, ctx)
            started += 1
            _shared().flushes_started += 1
        return False

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
        # Never blocks. The result is applied by the actor's own task.
        self._post(_FlushDone(group, snapshot, success))

    def _maintain(self) -> None:
        stale = [key for key, g in self._groups.items() if g.empty() and not g.flushing]
        for key in stale:
            group = self._groups.pop(key)
            del self._by_order[group.order]
            log.debug("group.removed", route_id=self.node.id, group_key=group.group_key)
        if self._budget is not None:
            self._budget.release(len(stale))
        # Rebuilt from the live deadlines, so stale entries cannot pile up; flushing
        # groups are re-armed when their flush finishes.
        self._timers = [(g.next_flush_at, g.order) for g in self._groups.values() if not g.flushing]
        heapq.heapify(self._timers)
