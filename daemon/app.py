"""Composition root: the one root nursery, start-up and shutdown order, and reload.

Theory of operation:

* An :class:`Instance` is one configuration's worth of alerting: the unit that
  multi-tenancy will run several of, side by side. It owns the state that survives a
  reload (the alert store and the notification log) and the current
  :class:`Generation`: config, route tree, notifiers and the dispatcher with its
  route-group actors.
* A reload builds the whole new generation first (parse, validate, build notifiers
  and the route tree). Only if that succeeds does it start the new dispatcher, point
  the store at it, stop the old one and replay the stored alerts into the new one.
  Aggregation groups restart their group_wait, as in Alertmanager; the nflog, which
  survives, keeps already-sent notifications from going out again.
* Start order: the listening socket is bound first (so the external URL, which
  notifications embed, is known), then the instance, then the API, so the API never
  serves a half-built instance. Shutdown is the reverse, by cancelling the root nursery;
  the API server drains in-flight requests under its own deadline.
"""

from __future__ import annotations

import functools
import hashlib
import os
import signal
import socket
import struct
from collections.abc import AsyncIterator, Callable, Mapping
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import attrs
import httpx
import structlog
import trio

from cluster.protowire import iter_delimited
from daemon import __version__
from daemon import metrics as m
from daemon.alert import Alert
from daemon.api.backend import AlertStatus
from daemon.clock import NS_PER_SECOND, ZERO_TIME, Clock, SystemClock
from daemon.config.errors import ConfigError
from daemon.config.load import load_config_file
from daemon.config.model import Config
from daemon.dispatch.dispatcher import Dispatcher
from daemon.dispatch.route import RouteNode
from daemon.dispatch.snapshot import GroupSnapshot
from daemon.ha.peer import ClusterPeer, PeerSetupError, create_peer, disabled_cluster_status
from daemon.inhibit import Inhibitor
from daemon.log import configure as configure_logging
from daemon.nflog import codec as nflogpb
from daemon.nflog.state import Nflog
from daemon.notify.httpclient import HttpClientConfigError, HttpClients
from daemon.notify.pipeline import build_integrations, build_notifiers, no_wait
from daemon.notify.receiver_test import test_receiver
from daemon.notify.silence_stage import SilenceStage
from daemon.notify.stages import GroupMuteMarker, suppression_stages
from daemon.options import Options
from daemon.persist import DurableState, flush_after
from daemon.silence import codec as silencepb
from daemon.silence import state as silence_mod
from daemon.silence.state import Silences
from daemon.store import AlertStore, tune_gc
from daemon.template.errors import TemplateError
from daemon.template.render import Templates
from daemon.timeinterval import TimeIntervals

log = structlog.get_logger("tocsin")

#: Seconds a notification HTTP request may take (Alertmanager's notifiers have no
#: default per-request timeout, only the flush deadline; this bounds a hung peer).
HTTP_TIMEOUT = 30.0
#: Notification requests in flight at once, across all receivers.
MAX_HTTP_IN_FLIGHT = 64


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

    def ingest(self, alert: Alert) -> None:
        """The store's intake: every inserted alert, resolved ones and re-posts included."""
        self.inhibitor.ingest(alert)
        self.dispatcher.ingest(alert)


def config_hash(text: str) -> float:
    """``alertmanager_config_hash``: first 6 bytes of the MD5, little-endian, as a float."""
    digest = hashlib.md5(text.encode(), usedforsecurity=False).digest()
    return float(struct.unpack("<Q", digest[:6] + b"\0\0")[0])


class Instance:
    """One configuration's alerting state and its running generation."""

    def __init__(
        self,
        config: Config,
        clock: Clock,
        http: httpx.AsyncClient,
        external_url: str,
        retention: int,
        storage: Path | None = None,
        maintenance_interval: int = 15 * 60 * NS_PER_SECOND,
        templates: Templates | None = None,
        clients: HttpClients | None = None,
    ) -> None:
        self.clock = clock
        self.http = http
        self.clients = clients
        self.external_url = external_url
        self.storage = storage
        self.maintenance_interval = maintenance_interval
        self.nflog_state: DurableState | None = None
        self.silence_state: DurableState | None = None
        self.store = AlertStore(clock)
        self.nflog = Nflog(retention=retention)
        self.silences = Silences(retention=retention)
        self.silences.register_metrics(clock.now)
        self._first = config
        self._first_templates = templates
        self._generation: Generation | None = None
        self._nursery: trio.Nursery | None = None
        self._unsubscribe: Callable[[], None] | None = None
        #: The cluster peer (None without clustering); set before run().
        self.peer: ClusterPeer | None = None

    @property
    def generation(self) -> Generation:
        assert self._generation is not None, "instance not started"
        return self._generation

    @property
    def config(self) -> Config:
        return self._generation.config if self._generation is not None else self._first

    def build(self, config: Config, templates: Templates | None = None) -> Generation:
        """Build (but do not start) a generation; raises on a config that cannot run."""
        root = RouteNode.build(config.route)
        bound = (templates or Templates.load(config.templates)).with_external_url(self.external_url)
        notifiers = build_notifiers(
            config,
            self.nflog,
            self.clock,
            self.http,
            self.external_url,
            templates=bound,
            clients=self.clients,
            wait=self.peer.peer_wait if self.peer is not None else no_wait,
        )
        inhibitor = Inhibitor(config.inhibit_rules)
        marker = GroupMuteMarker()
        # Spec §4 order: inhibition, active intervals, mute intervals, silences, then fan-out.
        stages = suppression_stages(inhibitor, TimeIntervals(config.time_intervals), marker)
        stages.append(SilenceStage(self.silences))
        if self.peer is not None:
            stages.insert(0, self.peer.settle_stage())
        for pipeline in notifiers.values():
            pipeline.stages[:0] = stages
        dispatcher = Dispatcher(root, notifiers, self.clock)
        return Generation(config, root, dispatcher, inhibitor, marker, bound)

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Run until cancelled; ready once the first generation's dispatcher is ready."""
        async with trio.open_nursery() as nursery:
            self._nursery = nursery
            if self.storage is not None:
                # Loaded before the first generation starts, so nothing notifies twice.
                await self._open_state(nursery, self.storage)
            await self.swap(self.build(self._first, self._first_templates))
            task_status.started()

    async def _open_state(self, nursery: trio.Nursery, storage: Path) -> None:
        """Load silences and the nflog (snapshot + journal) and keep them durable.

        Every change is journaled: silences before the API answers (``flush_after``),
        nflog entries within a second. Both are compacted into Alertmanager-format
        snapshots every maintenance interval and at shutdown.
        """
        interval = self.maintenance_interval / NS_PER_SECOND
        nflog_state = await DurableState.open(storage, "nflog")
        loaded_nflog = await nflog_state.load_decoded(nflogpb.decode_mesh_entry)
        self.nflog.load_entries(loaded_nflog.records)
        self.nflog.subscribe(lambda e: nflog_state.append_nowait(nflogpb.encode_mesh_entry(e)))
        await nursery.start(
            functools.partial(
                nflog_state.serve,
                snapshot=lambda: nflogpb.maintenance(self.nflog, self.clock.now()),
                maintenance_interval=interval,
                flush_interval=1.0,
                on_maintenance_error=lambda exc: nflogpb.maintenance_errors_total.inc(),
            )
        )
        self.nflog_state = nflog_state
        silence_state = await DurableState.open(storage, "silences")
        loaded = await silence_state.load_decoded(silencepb.decode_mesh_silence)
        self.silences.load_snapshot(silencepb.encode_state(loaded.records))
        self.silences.broadcast = silence_state.append_delimited_nowait
        await nursery.start(
            functools.partial(
                silence_state.serve,
                snapshot=lambda: list(iter_delimited(self.silences.maintenance(self.clock.now()))),
                maintenance_interval=interval,
                on_maintenance_error=lambda exc: silence_mod.maintenance_errors_total.inc(),
            )
        )
        self.silence_state = silence_state

    async def swap(self, new: Generation) -> None:
        """Start ``new``, move the store's intake to it, stop the old one, replay alerts."""
        assert self._nursery is not None, "instance not running"
        await self._nursery.start(_run_generation, new)
        old, self._generation = self._generation, new
        if self._unsubscribe is not None:
            self._unsubscribe()
        self._unsubscribe = self.store.subscribe(new.ingest)
        if old is not None:
            old.cancel.cancel()
        for alert in self.store.list():
            new.ingest(alert)

    def receivers_for(self, labels: Mapping[str, str]) -> list[str]:
        return [node.receiver for node in self.generation.root.match(labels)]

    def groups(self) -> list[GroupSnapshot]:
        return self.generation.dispatcher.groups()

    def alert_status(self, alert: Alert, now: int) -> AlertStatus:
        by = self.generation.inhibitor.inhibited_by(alert.labels, alert.fingerprint, now)
        silenced = self.silences.mutes(alert.labels, alert.fingerprint, now)
        return AlertStatus(silenced_by=silenced, inhibited_by=(by,) if by else ())

    def collect_garbage(self) -> int:
        now = self.clock.now()
        self.nflog.gc(now)
        gone = self.store.gc(now)
        inhibitor = self.generation.inhibitor
        inhibitor.gc(now)
        for alert in gone:
            inhibitor.forget(alert.fingerprint)
            self.silences.forget(alert.fingerprint)
        return len(gone)


async def _run_generation(
    gen: Generation, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED
) -> None:
    with gen.cancel:
        async with trio.open_nursery() as nursery:
            await nursery.start(gen.dispatcher.run)
            task_status.started()


class Backend:
    """The daemon as the API sees it (implements ``daemon.api.backend.ApiBackend``)."""

    def __init__(self, instance: Instance, opts: Options, started_ns: int) -> None:
        self.instance = instance
        self.opts = opts
        self._started = started_ns
        self._reload_lock = trio.Lock()

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
    def clock(self) -> Clock:
        return self.instance.clock

    @property
    def uptime(self) -> int:
        return self._started

    @property
    def route_prefix(self) -> str:
        return route_prefix(self.opts)

    @property
    def version_info(self) -> Mapping[str, str]:
        return {
            "branch": "main",
            "buildDate": "",
            "buildUser": "tocsin",
            "goVersion": "python",
            "revision": "",
            "version": __version__,
        }

    def receivers_for(self, labels: Mapping[str, str]) -> list[str]:
        return self.instance.receivers_for(labels)

    def groups(self) -> list[GroupSnapshot]:
        return self.instance.groups()

    def alert_status(self, alert: Alert, now: int) -> AlertStatus:
        return self.instance.alert_status(alert, now)

    async def test_receiver(self, name: str) -> list[dict[str, Any]] | None:
        """Send a test notification through every integration of receiver ``name``."""
        instance = self.instance
        generation = instance.generation
        try:
            receiver = generation.config.receiver(name)
        except KeyError:
            return None
        integrations = build_integrations(
            receiver,
            instance.http,
            instance.external_url,
            generation.templates,
            instance.clock,
            instance.clients,
        )
        return await test_receiver(receiver, integrations, instance.clock.now())

    def cluster_status(self) -> Mapping[str, Any]:
        peer = self.instance.peer
        return peer.cluster_status() if peer is not None else disabled_cluster_status()

    def ready(self) -> bool:
        return True

    async def reload(self) -> str | None:
        """Re-read the config file; the error text, or None once the new config runs."""
        async with self._reload_lock:
            try:
                config, templates = await trio.to_thread.run_sync(
                    load_config_and_templates, self.opts.config_file
                )
                generation = self.instance.build(config, templates)
            except (ConfigError, TemplateError, OSError, ValueError) as exc:
                m.config_last_reload_successful.set(0)
                log.error("config.reload_failed", file=self.opts.config_file, err=str(exc))
                return str(exc)
            await self.instance.swap(generation)
            record_config(config)
            log.info("config.reloaded", file=self.opts.config_file)
            return None


def api_routes(instance: Instance) -> dict[str, dict[str, Any]]:
    """API v2 routes; silence writes answer only once they are on disk."""
    from daemon.api.app import default_api_routes
    from daemon.api.silences import silence_routes

    silences = silence_routes()
    if instance.silence_state is not None:
        state = instance.silence_state
        for methods in silences.values():
            for method in ("POST", "DELETE"):
                if method in methods:
                    methods[method] = flush_after(methods[method], lambda _backend: state)
    return {**default_api_routes(), **silences}


def record_config(config: Config) -> None:
    m.config_hash.set(config_hash(config.source_text))
    m.config_last_reload_successful.set(1)
    m.config_last_reload_success_timestamp.set_to_current_time()
    m.receivers.set(len(config.receivers))
    m.integrations.set(sum(len(r.webhook_configs) + len(r.other_configs) for r in config.receivers))


def external_url(opts: Options, port: int) -> str:
    if opts.web_external_url:
        return opts.web_external_url.rstrip("/")
    return f"http://{socket.gethostname()}:{port}"


def route_prefix(opts: Options) -> str:
    prefix = opts.web_route_prefix or urlsplit(opts.web_external_url).path
    return "/" + prefix.strip("/")


def listen_socket(address: str) -> socket.socket:
    """Bind and listen on ``host:port`` (``:9093`` means every interface)."""
    host, _, port = address.rpartition(":")
    host = host.strip("[]")
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host or ("::" if family == socket.AF_INET6 else "0.0.0.0"), int(port)))
        sock.listen(1024)
    except OSError:
        sock.close()
        raise
    sock.set_inheritable(True)
    return sock


def load_config_and_templates(path: str) -> tuple[Config, Templates]:
    """Load the config file and parse its templates: a template that does not parse is a
    config error now, never a failure at send time. Blocking (reads files)."""
    config = load_config_file(path)
    return config, Templates.load(config.templates)


def run(opts: Options) -> int:
    """Entry point for ``tocsin``: returns the process exit status."""
    configure_logging(opts.log_level, opts.log_format)
    try:
        config, templates = load_config_and_templates(opts.config_file)
    except (ConfigError, TemplateError, OSError) as exc:
        log.error("config.load_failed", file=opts.config_file, err=str(exc))
        return 1
    try:
        Path(opts.storage_path).mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        log.error("storage.unusable", path=opts.storage_path, err=str(exc))
        return 1
    try:
        sock = listen_socket(opts.web_listen_address)
    except (OSError, ValueError) as exc:
        log.error("web.listen_failed", address=opts.web_listen_address, err=str(exc))
        return 1
    failed = False
    try:
        trio.run(serve, opts, config, templates, sock)
    except* (PeerSetupError, HttpClientConfigError, OSError) as group:
        # Fatal start-up or I/O failures (e.g. the cluster port is taken): one clear line
        # and a non-zero exit, so systemd's restart policy applies.
        log.error("daemon.failed", err="; ".join(str(e) for e in group.exceptions))
        failed = True
    return 1 if failed else 0


async def serve(opts: Options, config: Config, templates: Templates, sock: socket.socket) -> None:
    """Run the daemon until SIGTERM/SIGINT; SIGHUP reloads the config."""
    clock = SystemClock()
    m.build_info.labels(__version__, "", "main", "python", "linux", "amd64").set(1)
    m.cluster_enabled.set(0)
    storage = Path(opts.storage_path)
    # Signals are caught from before start-up, so a SIGTERM right after readiness is
    # handled gracefully, not by the default action.
    with trio.open_signal_receiver(signal.SIGTERM, signal.SIGINT, signal.SIGHUP) as signals:
        await _serve(opts, config, templates, sock, clock, storage, signals)


async def _serve(
    opts: Options,
    config: Config,
    templates: Templates,
    sock: socket.socket,
    clock: Clock,
    storage: Path,
    signals: AsyncIterator[int],
) -> None:
    # Imported here so that the pure core never imports quart or hypercorn.
    from daemon.api.app import create_app
    from daemon.api.receivers import receiver_test_routes
    from daemon.api.server import serve_api

    address, port = sock.getsockname()[:2]
    # One client per distinct http_config (TLS, proxy, OAuth2), all behind one limit on
    # requests in flight: httpcore's pool queue is quadratic under a burst of flushes.
    async with HttpClients(timeout=HTTP_TIMEOUT, max_in_flight=MAX_HTTP_IN_FLIGHT) as clients:
        instance = Instance(
            config,
            clock,
            clients.default,
            external_url(opts, port),
            opts.data_retention,
            storage,
            opts.data_maintenance_interval,
            templates,
            clients,
        )
        async with trio.open_nursery() as nursery:
            backend = Backend(instance, opts, clock.now())
            instance.peer = create_peer(opts, instance.silences, instance.nflog, clock)
            await nursery.start(instance.run)
            if instance.peer is not None:
                await nursery.start(instance.peer.run)
            record_config(config)

            def state_of(alert: Alert) -> str:
                return backend.alert_status(alert, clock.now()).state

            m.register_callback(
                "alertmanager_alerts",
                "How many alerts by state.",
                ["state"],
                lambda: instance.store.count_by_state(state_of, clock.now()),
            )
            # Alertmanager counts its markers, resolved alerts not yet collected included:
            # "resolved before the zero time" is never true, so nothing is skipped.
            m.register_callback(
                "alertmanager_marked_alerts",
                "How many alerts by state are currently marked in the Alertmanager regardless of their expiry.",
                ["state"],
                lambda: instance.store.count_by_state(state_of, ZERO_TIME),
            )
            app = create_app(
                backend, api_routes=api_routes(instance), extra_routes=receiver_test_routes()
            )
            await nursery.start(functools.partial(serve_api, app, "", 0, sock=sock))
            log.info(
                "web.listening",
                address=f"{address}:{port}",
                external_url=instance.external_url,
                version=__version__,
                pid=os.getpid(),
            )
            nursery.start_soon(_collect_garbage, instance, opts.alerts_gc_interval)
            tune_gc()
            await _handle_signals(signals, backend, nursery.cancel_scope)


async def _collect_garbage(instance: Instance, interval_ns: int) -> None:
    while True:
        await trio.sleep(interval_ns / NS_PER_SECOND)
        removed = instance.collect_garbage()
        log.debug("alerts.gc", removed=removed)


async def _handle_signals(
    signals: AsyncIterator[int], backend: Backend, scope: trio.CancelScope
) -> None:
    async for signum in signals:
        if signum == signal.SIGHUP:
            await backend.reload()
            continue
        log.info("daemon.stopping", signal=signal.Signals(signum).name)
        scope.cancel()
        return
