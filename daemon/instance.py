"""One Alertmanager pipeline as one object: the unit that multi-tenancy runs one of per
tenant, side by side in one process.

Theory of operation:

* An :class:`Instance` owns the state that survives a reload (the alert store,
  silences and the notification log, with their durable journals under its storage
  folder) and the current :class:`Generation`: config, route tree, inhibitor,
  notification pipelines and the dispatcher with its route-group actors.
* Its one intake is :meth:`Instance.put`: the store merges each alert, and every
  stored result goes to the generation's inhibitor and dispatcher, in that order.
* :meth:`Instance.reload` builds the whole new generation first (route tree,
  templates, notifiers). Only if that succeeds does it start the new dispatcher in the
  instance's own nursery, switch the intake to it, stop the old one and replay the
  stored alerts into the new one. Aggregation groups restart their group_wait, as in
  Alertmanager; the nflog, which survives, keeps already-sent notifications from going
  out again.
* The instance owns its tasks (durable state, the dispatcher, garbage collection) in
  the nursery :meth:`Instance.run` opens; cancelling ``run`` stops them all.
* Cluster hooks arrive as callables (:meth:`Instance.use_cluster`): the gossip settle
  wait and the HA wait. The cluster peer itself belongs to the process shell.
* Scrape-time metrics (``alertmanager_alerts``, ``alertmanager_marked_alerts``) are
  registered per instance and carry a ``tenant`` label when the instance has a tenant.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import attrs
import httpx
import structlog
import trio

from cluster.protowire import iter_delimited
from daemon import metrics
from daemon.alert import Alert
from daemon.api.backend import UNSUPPRESSED, AlertStatus
from daemon.clock import NS_PER_SECOND, ZERO_TIME, Clock
from daemon.config.model import Config
from daemon.dispatch.actor import deliver_now
from daemon.dispatch.dispatcher import Dispatcher
from daemon.dispatch.group_limit import GroupBudget
from daemon.dispatch.route import RouteNode
from daemon.dispatch.snapshot import GroupSnapshot
from daemon.inhibit import Inhibitor
from daemon.metrics import Samples
from daemon.nflog import codec as nflogpb
from daemon.nflog.state import Nflog
from daemon.notify import firewall
from daemon.notify.attempt import AttemptRecorder
from daemon.notify.httpclient import HttpClients
from daemon.notify.pipeline import build_pipeline, no_wait
from daemon.notify.ratelimit import NotificationRateLimits
from daemon.notify.receiver_test import test_receiver
from daemon.notify.receivers.registry import build_integrations
from daemon.notify.silence_stage import SilenceMatcher
from daemon.notify.stages import GroupMuteMarker
from daemon.persist import DurableState, SyncRounds
from daemon.silence import codec as silencepb
from daemon.silence import state as silence_mod
from daemon.silence.index_warmer import warm_silence_index
from daemon.silence.recurring_actor import RecurringSilences
from daemon.silence.state import SilenceLimits, Silences
from daemon.store import ALERT_STATES, AlertStore
from daemon.template.render import Templates
from daemon.tenancy.limits import (
    UNLIMITED,
    AlertsLedger,
    LimitExceeded,
    TenantLimits,
    count_breach,
)

log = structlog.get_logger("tocsin")

#: Alerts handled between two checkpoints when a reload replays the store or the alert
#: counts are recounted (a few ms of work: the event loop's pause budget is 100 ms).
REPLAY_SLICE = 1_000
#: Longest stretch of the alert-state recount between two checkpoints.
COUNT_SLICE_SECONDS = 0.002
#: Up to this many alerts a scrape counts alerts by state itself, exactly; above it, it
#: serves the counts of the last recount (at most one scrape interval old) and asks
#: :meth:`Instance._recount_alert_states` for new ones.
INLINE_COUNT_LIMIT = 5_000


@attrs.define
class Generation:
    """Everything built from one config; replaced whole on reload."""

    config: Config
    root: RouteNode
    dispatcher: Dispatcher
    inhibitor: Inhibitor
    mute_marker: GroupMuteMarker
    templates: Templates
    cancel: trio.CancelScope = attrs.field(factory=trio.CancelScope)

    def ingest_many(self, alerts: Sequence[Alert]) -> None:
        """Every stored alert, resolved ones and re-posts included, a batch in order.

        The inhibitor sees the whole batch before the dispatcher does: nothing reads
        the inhibitor before the actors take their queued alerts, after the batch.
        """
        inhibit = self.inhibitor.ingest
        for alert in alerts:
            inhibit(alert)
        self.dispatcher.ingest_many(alerts)


@attrs.frozen
class LayeredSilences:
    """A tenant pipeline's silence matcher: its own silences, then the global ones."""

    own: Silences
    shared: Silences

    def mutes(self, labels: Mapping[str, str], fingerprint: int, now: int) -> list[str]:
        own = self.own.mutes(labels, fingerprint, now)
        shared = self.shared.mutes(labels, fingerprint, now)
        return sorted(own + shared) if shared else own

    def mutes_many(self, alerts: Sequence[Alert], now: int) -> list[list[str]]:
        own = self.own.mutes_many(alerts, now)
        shared = self.shared.mutes_many(alerts, now)
        return [sorted(o + s) if s else o for o, s in zip(own, shared, strict=True)]


@attrs.frozen
class StorageSettings:
    """Where and how an instance keeps its silences and nflog durable."""

    path: Path
    maintenance_interval: int = 15 * 60 * NS_PER_SECOND


def configured_integrations(config: Config) -> set[str]:
    """The integration types ``config``'s receivers use (``webhook``, ``slack`` …)."""
    names = {other.type for receiver in config.receivers for other in receiver.other_configs}
    if any(receiver.webhook_configs for receiver in config.receivers):
        names.add("webhook")
    return names


class Instance:
    """One configuration's alerting state and its running generation."""

    def __init__(
        self,
        config: Config,
        *,
        clock: Clock,
        http: httpx.AsyncClient,
        external_url: str,
        retention: int,
        storage: StorageSettings | None = None,
        gc_interval: int = 30 * 60 * NS_PER_SECOND,
        templates: Templates | None = None,
        clients: HttpClients | None = None,
        tenant: str | None = None,
        history: AttemptRecorder | None = None,
        limits: TenantLimits = UNLIMITED,
        global_silences: Silences | None = None,
    ) -> None:
        self.clock = clock
        self.http = http
        self.clients = clients
        self.external_url = external_url
        self.storage = storage
        self.gc_interval = gc_interval
        self.tenant = tenant
        self.history = history
        self.nflog_state: DurableState | None = None
        self.silence_state: DurableState | None = None
        self.store = AlertStore(clock)
        self.nflog = Nflog(retention=retention, tenant=tenant)
        self.silences = Silences(retention=retention, tenant=tenant)
        if tenant is not None:
            metrics.open_pipeline(tenant, configured_integrations(config))
        #: What mutes this pipeline's alerts: its own silences and, in a tenant
        #: pipeline, the global pipeline's too (NM's global silences mute every tenant).
        self.muter: SilenceMatcher = (
            self.silences
            if global_silences is None
            else LayeredSilences(self.silences, global_silences)
        )
        self._first = config
        self._first_templates = templates
        self._generation: Generation | None = None
        #: Generations to switch to, and the event that says the switch is done.
        self._swaps_out, self._swaps_in = trio.open_memory_channel[tuple[Generation, trio.Event]](0)
        # alertmanager_alerts / _marked_alerts samples of the last recount (see
        # _recount_alert_states); None until the first one finishes.
        self._alert_counts: tuple[Samples, Samples] | None = None
        self._recount_wanted = trio.Event()
        self._settle: Callable[[], Awaitable[None]] | None = None
        self._wait: Callable[[], float] = no_wait
        # Limits (see set_limits); the pipelines and dispatchers read them through
        # these objects, so a change applies at once, without a reload.
        self.limits = UNLIMITED
        self._ledger: AlertsLedger | None = None
        self._rate_limits = NotificationRateLimits(
            lambda integration: self.limits.notification_rate(integration),
            lambda integration: self._breach("notification_rate_limit"),
        )
        self._firewall = firewall.ReceiverFirewall(on_block=self._breach)
        self.set_limits(limits)

    # --- wiring ------------------------------------------------------------------------

    def use_cluster(self, settle: Callable[[], Awaitable[None]], wait: Callable[[], float]) -> None:
        """Hold flushes until gossip settled and wait ``wait()`` seconds before dedup.

        Call before :meth:`run`: the pipelines are built with these hooks.
        """
        self._settle = settle
        self._wait = wait

    def set_limits(self, limits: TenantLimits) -> None:
        """Apply a tenant's limits from now on (at start, and when the tenancy file is
        reloaded). Stored alerts, silences and groups beyond new limits stay; only
        what would add to them is refused."""
        self.limits = limits
        if limits.max_alerts_count or limits.max_alerts_size_bytes:
            if self._ledger is None:
                self._ledger = AlertsLedger()
                self._ledger.stored(self.store)
        else:
            self._ledger = None
        self.silences.limits = SilenceLimits(
            limits.max_silences_count, limits.max_silence_size_bytes, self._breach
        )
        self._firewall.set_rules(
            limits.receivers_firewall_block_cidr_networks,
            limits.receivers_firewall_block_private_addresses,
        )

    def _breach(self, limit: str) -> None:
        count_breach(self.tenant, limit)

    # --- reading ------------------------------------------------------------------------

    @property
    def generation(self) -> Generation:
        assert self._generation is not None, "instance not started"
        return self._generation

    @property
    def config(self) -> Config:
        return self._generation.config if self._generation is not None else self._first

    def receivers_for(self, labels: Mapping[str, str]) -> list[str]:
        return [node.receiver for node in self.generation.root.match(labels)]

    def groups(self) -> list[GroupSnapshot]:
        return self.generation.dispatcher.groups()

    def group_count(self) -> int:
        """How many groups there are, without the snapshots (and sorts) of :meth:`groups`."""
        return self.generation.dispatcher.group_count()

    def alert_status(self, alert: Alert, now: int) -> AlertStatus:
        labels, fingerprint = alert.labels, alert.fingerprint
        by = self.generation.inhibitor.inhibited_by(labels, fingerprint, now)
        silenced = self.muter.mutes(labels, fingerprint, now)
        if not by and not silenced:
            # The usual answer, one shared value: a listing asks for every stored alert.
            return UNSUPPRESSED
        return AlertStatus(silenced_by=silenced, inhibited_by=(by,) if by else ())

    # --- the intake ---------------------------------------------------------------------

    def put(self, alerts: Iterable[Alert], now: int) -> None:
        """Store ``alerts`` (merged with what is stored) and hand each result on.

        Error handling: :class:`~daemon.tenancy.limits.LimitExceeded` when the batch
        would take the store past the alert limits; then none of it is stored.
        """
        ledger = self._ledger
        if ledger is not None:
            alerts = list(alerts)
            self.admit(alerts)
            stored = self.store.put(alerts, now)
            ledger.stored(stored)
        else:
            stored = self.store.put(alerts, now)
        self.generation.ingest_many(stored)
        # The actors see the batch now rather than at the intake task's next turn.
        deliver_now()

    def admit(self, alerts: Sequence[Alert]) -> bool:
        """Raise :class:`~daemon.tenancy.limits.LimitExceeded` (and count it) if storing
        ``alerts`` would break the alert limits; whether any are in force."""
        ledger = self._ledger
        if ledger is None:
            return False
        try:
            ledger.admit(self.limits, alerts)
        except LimitExceeded as exc:
            self._breach(exc.limit)
            raise
        return True

    # --- lifecycle ----------------------------------------------------------------------

    def build(self, config: Config, templates: Templates | None = None) -> Generation:
        """Build (but do not start) a generation; raises on a config that cannot run."""
        root = RouteNode.build(config.route)
        bound = (templates or Templates.load(config.templates)).with_external_url(self.external_url)
        inhibitor = Inhibitor(config.inhibit_rules)
        marker = GroupMuteMarker()
        notifiers = build_pipeline(
            config,
            nflog=self.nflog,
            silences=self.muter,
            inhibitor=inhibitor,
            mute_marker=marker,
            clock=self.clock,
            http=self.http,
            external_url=self.external_url,
            templates=bound,
            clients=self.clients,
            settle=self._settle,
            wait=self._wait,
            recorder=self.history,
            # Tenants only: the stage costs the global pipeline a step per notification.
            rate_limits=(
                self._rate_limits
                if self.tenant is not None or self.limits.limits_notifications
                else None
            ),
            tenant=self.tenant,
        )
        budget = GroupBudget(
            lambda: self.limits.max_dispatcher_aggregation_groups,
            lambda: self._breach("max_dispatcher_aggregation_groups"),
        )
        dispatcher = Dispatcher(root, notifiers, self.clock, budget=budget, tenant=self.tenant)
        return Generation(config, root, dispatcher, inhibitor, marker, bound)

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Run until cancelled; ready once state is loaded and the first dispatcher runs.

        The task owns the instance's nursery: reloads reach it as messages
        (:meth:`reload`), and each new generation starts here.
        """
        if self.tenant is not None:
            # This task's context only (trio gives each task a copy): every log event of
            # this pipeline's tasks, which all descend from this one, carries the tenant.
            structlog.contextvars.bind_contextvars(tenant=self.tenant)
        unregister = self._register_metrics()
        if self.tenant is not None or self.limits.has_firewall:
            # Every task this one starts from now on (dispatchers, flushes, retries)
            # connects through the tenant's firewall.
            firewall.use(self._firewall)
        try:
            async with trio.open_nursery() as nursery:
                if self.storage is not None:
                    # Loaded before the first generation starts, so nothing notifies twice.
                    await self._open_state(nursery, self.storage)
                await self._swap(nursery, self.build(self._first, self._first_templates))
                recurring = RecurringSilences(
                    self.silences, self.commit_silences, self.clock, tenant=self.tenant
                )
                await nursery.start(recurring.run)
                await nursery.start(warm_silence_index, self.silences, self.clock.now)
                nursery.start_soon(self._collect_garbage_every, self.gc_interval)
                nursery.start_soon(self._recount_alert_states)
                task_status.started()
                async for new, done in self._swaps_in:
                    await self._swap(nursery, new)
                    done.set()
        finally:
            unregister()

    async def reload(self, config: Config, templates: Templates | None = None) -> None:
        """Build a generation from ``config`` and switch to it once :meth:`run` started
        it; raises (and keeps the old one running) if the config cannot run."""
        new = self.build(config, templates)
        done = trio.Event()
        await self._swaps_out.send((new, done))
        await done.wait()

    async def _swap(self, nursery: trio.Nursery, new: Generation) -> None:
        """Start ``new``, move the intake to it, stop the old one, replay alerts."""
        await nursery.start(_run_generation, new)
        old, self._generation = self._generation, new
        if old is not None:
            old.cancel.cancel()
        # In slices, so a reload with 100k alerts does not hold the event loop. An alert
        # put meanwhile went to ``new`` already; its stored version is replayed, so a
        # group never gets an older version after a newer one.
        store = self.store
        fingerprints = [alert.fingerprint for alert in store]
        for start in range(0, len(fingerprints), REPLAY_SLICE):
            if start:
                await trio.lowlevel.checkpoint()
            if new.cancel.cancel_called:
                return  # a later reload replaced it; that one replays everything
            batch = [store.get(fp) for fp in fingerprints[start : start + REPLAY_SLICE]]
            new.ingest_many([alert for alert in batch if alert is not None])

    async def _open_state(self, nursery: trio.Nursery, storage: StorageSettings) -> None:
        """Load silences and the nflog (snapshot + journal) and keep them durable.

        Every change is journaled: silences before they apply (``DurableState.commit``),
        nflog entries within a second. Both are compacted into Alertmanager-format
        snapshots every maintenance interval and at shutdown.
        """
        interval = storage.maintenance_interval / NS_PER_SECOND
        # One set of rounds for both journals: concurrent writes share a hand-off and fsync round.
        rounds = SyncRounds()
        if self.tenant is None:
            # The global pipeline's rounds go to a C writer thread of their own (when
            # built) until the instance stops. A tenant pipeline's go to the disk
            # threads every journal shares (thread_limits.disk, 8 at most): a thread per
            # tenant was 1,000 threads for 1,000 tenants, past issue 9's bounded pools,
            # and part of an idle tenant's memory.
            await nursery.start(rounds.serve)
        nflog_state = await DurableState.open(storage.path, "nflog", rounds=rounds)
        loaded_nflog = await nflog_state.load_decoded(nflogpb.decode_mesh_entry)
        self.nflog.load_entries(loaded_nflog.records)
        self.nflog.subscribe(lambda e: nflog_state.append_nowait(nflogpb.encode_mesh_entry(e)))
        await nursery.start(
            functools.partial(
                nflog_state.serve,
                snapshot=lambda: nflogpb.deferred_maintenance(self.nflog, self.clock.now()),
                maintenance_interval=interval,
                flush_interval=1.0,
                on_maintenance_error=lambda exc: metrics.pipeline_series(
                    nflogpb.maintenance_errors_total, self.tenant
                ).inc(),
            )
        )
        self.nflog_state = nflog_state
        silence_state = await DurableState.open(storage.path, "silences", rounds=rounds)
        loaded = await silence_state.load_decoded(silencepb.decode_mesh_silence)
        self.silences.load_snapshot(silencepb.encode_state(loaded.records))
        # Local writes are journaled by the API before they apply (DurableState.commit);
        # the listener journals what peers gossip.
        self.silences.subscribe(silence_state.append_delimited_nowait, local_writes=False)
        await nursery.start(
            functools.partial(
                silence_state.serve,
                snapshot=lambda: list(iter_delimited(self.silences.maintenance(self.clock.now()))),
                maintenance_interval=interval,
                on_maintenance_error=lambda exc: metrics.pipeline_series(
                    silence_mod.maintenance_errors_total, self.tenant
                ).inc(),
            )
        )
        self.silence_state = silence_state

    async def commit_silences(self, plan: silence_mod.Plan) -> None:
        """Journal ``plan`` (fsynced) when durable, then apply it: the API's write path."""
        if self.silence_state is None or not plan.records:
            self.silences.apply(plan)
            return
        records = [silencepb.encode_mesh_silence(s, exp) for s, exp in plan.records]
        await self.silence_state.commit(records, lambda: self.silences.apply(plan, records))

    # --- housekeeping -------------------------------------------------------------------

    def collect_garbage(self) -> int:
        """Drop resolved alerts and expired nflog entries; how many alerts went."""
        now = self.clock.now()
        self.nflog.gc(now)
        gone = self.store.gc(now)
        if self._ledger is not None:
            self._ledger.forget(gone)
        inhibitor = self.generation.inhibitor
        inhibitor.gc(now)
        for alert in gone:
            inhibitor.forget(alert.fingerprint)
            self.silences.forget(alert.fingerprint)
        return len(gone)

    async def _collect_garbage_every(self, interval_ns: int) -> None:
        while True:
            await trio.sleep(interval_ns / NS_PER_SECOND)
            removed = self.collect_garbage()
            log.debug("alerts.gc", removed=removed, tenant=self.tenant)

    async def _recount_alert_states(self) -> None:
        """Count alerts by state in slices, once at start and then after each scrape that
        used the previous counts: a scrape of a big store costs the loop nothing."""
        while True:
            now = self.clock.now()
            alerts = self.store.list()
            live = dict.fromkeys(ALERT_STATES, 0)
            marked = dict.fromkeys(ALERT_STATES, 0)
            # Bounded by time, not by count: a status look-up costs 5-100 us depending
            # on the silences, so 1,000 of them were up to a 115 ms step.
            deadline = time.perf_counter() + COUNT_SLICE_SECONDS
            for alert in alerts:
                if time.perf_counter() >= deadline:
                    await trio.lowlevel.checkpoint()
                    deadline = time.perf_counter() + COUNT_SLICE_SECONDS
                if self._generation is None:
                    continue
                state = self.alert_status(alert, now).state
                marked[state] += 1
                if not alert.resolved(now):
                    live[state] += 1
            self._alert_counts = (
                [((state,), float(n)) for state, n in live.items()],
                [((state,), float(n)) for state, n in marked.items()],
            )
            await self._recount_wanted.wait()
            self._recount_wanted = trio.Event()

    def _register_metrics(self) -> Callable[[], None]:
        """Register this instance's scrape-time gauges; returns the unregister function."""
        clock = self.clock

        def state_of(alert: Alert) -> str:
            return self.alert_status(alert, clock.now()).state

        def counts(now: Callable[[], int]) -> Callable[[], Samples]:
            marked = now() == ZERO_TIME

            def read() -> Samples:
                if self._generation is None:
                    return []
                if len(self.store) > INLINE_COUNT_LIMIT and self._alert_counts is not None:
                    self._recount_wanted.set()
                    return self._alert_counts[marked]
                return self.store.count_by_state(state_of, now())

            return read

        unregister = [
            metrics.register_callback(
                "alertmanager_alerts",
                "How many alerts by state.",
                ["state"],
                counts(clock.now),
                tenant=self.tenant,
            ),
            # Alertmanager counts its markers, resolved alerts not yet collected
            # included: "resolved before the zero time" is never true, so nothing is
            # skipped.
            metrics.register_callback(
                "alertmanager_marked_alerts",
                "How many alerts by state are currently marked in the Alertmanager "
                "regardless of their expiry.",
                ["state"],
                counts(lambda: ZERO_TIME),
                tenant=self.tenant,
            ),
            metrics.register_callback(
                "alertmanager_silences",
                "How many silences by state.",
                ["state"],
                lambda: self.silences.state_samples(clock.now()),
                tenant=self.tenant,
            ),
            metrics.register_callback(
                "alertmanager_dispatcher_aggregation_groups",
                "Number of active aggregation groups",
                [],
                lambda: (
                    [((), float(self.generation.dispatcher.group_count()))]
                    if self._generation is not None
                    else []
                ),
                tenant=self.tenant,
            ),
        ]

        def unregister_all() -> None:
            for undo in unregister:
                undo()

        return unregister_all

    # --- receiver checks ----------------------------------------------------------------

    async def test_receiver(self, name: str) -> list[dict[str, Any]] | None:
        """Send a test notification through every integration of receiver ``name``;
        None if there is no such receiver."""
        generation = self.generation
        try:
            receiver = generation.config.receiver(name)
        except KeyError:
            return None
        integrations = build_integrations(
            receiver,
            self.http,
            self.external_url,
            generation.templates,
            self.clock,
            self.clients,
        )
        # Called from an API request's task: make the tenant's firewall current for it.
        token = firewall.use(self._firewall) if self.tenant is not None else None
        try:
            return await test_receiver(receiver, integrations, self.clock.now())
        finally:
            if token is not None:
                firewall.reset(token)


@attrs.frozen
class ProcessFacts:
    """What the API shows of the process rather than of one instance."""

    route_prefix: str
    started: int
    version_info: Mapping[str, str]
    cluster_status: Callable[[], Mapping[str, Any]]
    #: Re-reads the config and reloads; the error text, or None once the new one runs.
    reload: Callable[[], Awaitable[str | None]]


class InstanceBackend:
    """One instance as the API sees it (implements ``daemon.api.backend.ApiBackend``)."""

    def __init__(self, instance: Instance, process: ProcessFacts) -> None:
        self.instance = instance
        self.process = process

    @property
    def config(self) -> Config:
        return self.instance.config

    @property
    def store(self) -> AlertStore:
        return self.instance.store

    @property
    def silences(self) -> Silences:
        return self.instance.silences

    @property
    def silence_state(self) -> DurableState | None:
        return self.instance.silence_state

    @property
    def clock(self) -> Clock:
        return self.instance.clock

    @property
    def tenant(self) -> str | None:
        return self.instance.tenant

    @property
    def uptime(self) -> int:
        return self.process.started

    @property
    def route_prefix(self) -> str:
        return self.process.route_prefix

    @property
    def version_info(self) -> Mapping[str, str]:
        return self.process.version_info

    def put_alerts(self, alerts: Sequence[Alert], now: int) -> None:
        self.instance.put(alerts, now)

    def admit_alerts(self, alerts: Sequence[Alert]) -> bool:
        return self.instance.admit(alerts)

    def receivers_for(self, labels: Mapping[str, str]) -> list[str]:
        return self.instance.receivers_for(labels)

    def groups(self) -> list[GroupSnapshot]:
        return self.instance.groups()

    def alert_status(self, alert: Alert, now: int) -> AlertStatus:
        return self.instance.alert_status(alert, now)

    async def test_receiver(self, name: str) -> list[dict[str, Any]] | None:
        return await self.instance.test_receiver(name)

    def cluster_status(self) -> Mapping[str, Any]:
        return self.process.cluster_status()

    def ready(self) -> bool:
        return True

    async def reload(self) -> str | None:
        return await self.process.reload()


async def _run_generation(
    gen: Generation, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED
) -> None:
    with gen.cancel:
        async with trio.open_nursery() as nursery:
            await nursery.start(gen.dispatcher.run)
            task_status.started()


__all__ = ["Generation", "Instance", "InstanceBackend", "ProcessFacts", "StorageSettings"]
