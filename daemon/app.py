"""The process shell: the root nursery, sockets, signals, the cluster peer, config
loading and the map of instances.

Theory of operation:

* The alerting itself lives in :class:`daemon.instance.Instance`, one Alertmanager
  pipeline; this module runs one of them (the map holds it under the default id, ``""``)
  and is where multi-tenancy adds more.
* Start order: the listening socket is bound first (so the external URL, which
  notifications embed, is known), then the instance (state loaded, dispatcher
  running), then the cluster peer, then the API, so the API never serves a half-built
  instance. Shutdown is the reverse, by cancelling the root nursery; the API server
  drains in-flight requests under its own deadline.
* Reload (SIGHUP, ``POST /-/reload``) re-reads the config file in a thread, builds the
  new generation and only then switches to it (:meth:`Instance.reload`); a bad config
  keeps the old one running.
"""

from __future__ import annotations

import functools
import hashlib
import os
import signal
import socket
import ssl
import struct
from collections.abc import AsyncIterator, Callable, Mapping
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import structlog
import trio

from daemon import __version__, loop_monitor, thread_limits
from daemon import metrics as m
from daemon.api.webconfig import (
    WebConfigError,
    WebConfigFile,
    open_web_config,
    refuse_basic_auth_users,
)
from daemon.clock import Clock, SystemClock
from daemon.config.errors import ConfigError
from daemon.config.load import load_config_file
from daemon.config.model import Config
from daemon.ha.peer import ClusterPeer, PeerSetupError, create_peer, disabled_cluster_status
from daemon.history.service import History, start_history
from daemon.instance import Instance, InstanceBackend, ProcessFacts, StorageSettings
from daemon.instances import CONFIG_KEY, ConfigGossip, TenantMap
from daemon.log import configure as configure_logging
from daemon.notify.httpclient import HttpClientConfigError, HttpClients
from daemon.options import Options, refused_flags
from daemon.sources import Source, start_sources
from daemon.sources.intake import EventIntake, RuleSets
from daemon.sources.notifysink import NotificationSink
from daemon.sources.rulesets import RuleFiles, RuleReload, RulesError
from daemon.sources.watch import (
    ApiServer,
    EventWatch,
    WatchConfigError,
    in_cluster,
    load_kubeconfig,
)
from daemon.store import tune_gc
from daemon.systemd import Notifier
from daemon.template.errors import TemplateError
from daemon.template.render import Templates
from daemon.tenancy.configstore import tenant_dir
from daemon.tenancy.limits import TenantLimits
from daemon.tenancy.tenants import TenancyConfig, load_tenancy_file

log = structlog.get_logger("tocsin")

#: Seconds a notification HTTP request may take (Alertmanager's notifiers have no
#: default per-request timeout, only the flush deadline; this bounds a hung peer).
HTTP_TIMEOUT = 30.0
#: Notification requests in flight at once, across all receivers.
MAX_HTTP_IN_FLIGHT = 64
#: Seconds between systemd STATUS= updates.
STATUS_INTERVAL = 10.0
#: The id of the one instance a daemon without tenancy runs.
DEFAULT_INSTANCE = ""

VERSION_INFO: Mapping[str, str] = {
    "branch": "main",
    "buildDate": "",
    "buildUser": "tocsin",
    "goVersion": "python",
    "revision": "",
    "version": __version__,
}


def config_hash(text: str) -> float:
    """``alertmanager_config_hash``: first 6 bytes of the MD5, little-endian, as a float."""
    digest = hashlib.md5(text.encode(), usedforsecurity=False).digest()
    return float(struct.unpack("<Q", digest[:6] + b"\0\0")[0])


class Reloader:
    """Re-reads the config file and reloads the instance, one reload at a time."""

    def __init__(
        self,
        instance: Instance,
        config_file: str,
        notifier: Notifier,
        rules: RuleReload | None = None,
    ) -> None:
        self.instance = instance
        self.config_file = config_file
        self.notifier = notifier
        #: The event and audit rule files reload with the config, all or nothing.
        self.rules = rules
        self._lock = trio.Lock()
        #: With tenancy: the tenancy file and the map it feeds, re-read on each reload.
        self.tenancy_file = ""
        self.tenants: TenantMap | None = None

    async def reload(self) -> str | None:
        """The error text, or None once the new config runs (SIGHUP and /-/reload);
        systemd sees RELOADING=1 until the new config runs or is refused."""
        async with self._lock:
            self.notifier.reloading()
            try:
                return await self._reload()
            finally:
                if self.notifier.was_ready:
                    self.notifier.ready()

    async def _reload(self) -> str | None:
        try:
            config, templates = await trio.to_thread.run_sync(
                load_config_and_templates,
                self.config_file,
                limiter=thread_limits.config_reload(),
            )
            rule_sets = None
            if self.rules is not None:
                rule_sets = await trio.to_thread.run_sync(
                    self.rules.load, limiter=thread_limits.config_reload()
                )
            await self.instance.reload(config, templates)
            if self.rules is not None and rule_sets is not None:
                self.rules.use(rule_sets)
        except (ConfigError, TemplateError, OSError, ValueError) as exc:
            m.config_last_reload_successful.set(0)
            log.error("config.reload_failed", file=self.config_file, err=str(exc))
            return str(exc)
        record_config(config)
        log.info("config.reloaded", file=self.config_file)
        if self.tenants is not None:
            return await self._reload_tenancy(self.tenants)
        return None

    async def _reload_tenancy(self, tenants: TenantMap) -> str | None:
        """Re-read the tenancy file and the fallback config; a bad one keeps the old."""
        try:
            tenancy, fallback = await trio.to_thread.run_sync(
                load_tenancy,
                self.tenancy_file,
                self.config_file,
                limiter=thread_limits.config_reload(),
            )
            await tenants.apply(tenancy, fallback)
        except (ConfigError, TemplateError, OSError, ValueError) as exc:
            log.error("tenancy.reload_failed", file=self.tenancy_file, err=str(exc))
            return str(exc)
        log.info("tenancy.reloaded", file=self.tenancy_file, tenants=len(tenancy.tenants))
        return None


def api_routes() -> dict[str, dict[str, Any]]:
    """API v2 routes (silence writes journal themselves before they apply and answer)."""
    from daemon.api.app import default_api_routes
    from daemon.api.silences import silence_routes

    return {**default_api_routes(), **silence_routes()}


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


#: sd_listen_fds(3): the first socket systemd passes.
SD_LISTEN_FDS_START = 3


def systemd_sockets(environ: dict[str, str] | None = None) -> list[socket.socket]:
    """The listening sockets systemd passed (``LISTEN_FDS``/``LISTEN_PID``), all of
    them served as Alertmanager's ``--web.systemd-socket`` does; the variables are then
    unset, as go-systemd does, so children do not take them for theirs.

    Raises:
        ValueError: none were passed to this process, or one is not a listening socket.
    """
    env = os.environ if environ is None else environ
    pid, count = env.get("LISTEN_PID", ""), env.get("LISTEN_FDS", "")
    for name in ("LISTEN_PID", "LISTEN_FDS", "LISTEN_FDNAMES"):
        env.pop(name, None)
    if pid != str(os.getpid()):
        count = ""
    if not count.isdigit() or int(count) < 1:
        raise ValueError("no socket activation file descriptors found")
    socks: list[socket.socket] = []
    for fd in range(SD_LISTEN_FDS_START, SD_LISTEN_FDS_START + int(count)):
        sock = socket.socket(fileno=fd)
        socks.append(sock)
        if sock.family not in (socket.AF_INET, socket.AF_INET6) or not sock.getsockopt(
            socket.SOL_SOCKET, socket.SO_ACCEPTCONN
        ):
            for each in socks:
                each.close()
            raise ValueError(f"systemd passed descriptor {fd}, which is not a listening TCP socket")
        sock.set_inheritable(True)
    return socks


def web_sockets(opts: Options) -> list[socket.socket]:
    """``--web.systemd-socket``'s sockets, or one bound per ``--web.listen-address``."""
    if opts.web_systemd_socket:
        return systemd_sockets()
    socks: list[socket.socket] = []
    try:
        for address in opts.web_listen_addresses:
            socks.append(listen_socket(address))
    except (OSError, ValueError) as exc:
        for sock in socks:
            sock.close()
        raise type(exc)(f"{address}: {exc}") from None
    return socks


def load_config_and_templates(path: str) -> tuple[Config, Templates]:
    """Load the config file and parse its templates: a template that does not parse is a
    config error now, never a failure at send time. Blocking (reads files)."""
    config = load_config_file(path)
    return config, Templates.load(config.templates)


def load_tenancy(
    tenancy_file: str, config_file: str
) -> tuple[TenancyConfig, tuple[Config, Templates]]:
    """The tenancy file and the config a tenant without its own runs (the file's
    ``fallback_config_file``, else ``--config.file``). Blocking (reads files)."""
    tenancy = load_tenancy_file(tenancy_file)
    return tenancy, load_config_and_templates(tenancy.fallback_config_file or config_file)


def rule_files(opts: Options) -> RuleFiles:
    """The event and audit rule files the flags name."""
    return RuleFiles(
        events=opts.events_rules_files,
        audit=opts.auditing_rules_files,
        workspaces_file=opts.events_workspaces_file,
        alerting_priority=opts.auditing_alerting_priority,
    )


def event_watch_api(opts: Options) -> ApiServer | None:
    """The API server ``--events.kubeconfig`` or ``--events.watch`` names, or None."""
    if opts.events_kubeconfig:
        return load_kubeconfig(opts.events_kubeconfig)
    if opts.events_watch:
        return in_cluster()
    return None


def run(opts: Options) -> int:
    """Entry point for ``tocsin``: returns the process exit status."""
    configure_logging(opts.log_level, opts.log_format)
    refused = refused_flags(opts)
    for problem in refused:
        log.error("flag.refused", err=problem)
    if refused:
        return 1
    web_config: tuple[WebConfigFile, ssl.SSLContext | None] | None = None
    if opts.web_config_file:
        try:
            web_config = open_web_config(opts.web_config_file)
        except WebConfigError as exc:
            log.error("web.config_failed", err=str(exc))
            return 1
    try:
        config, templates = load_config_and_templates(opts.config_file)
    except (ConfigError, TemplateError, OSError) as exc:
        log.error("config.load_failed", file=opts.config_file, err=str(exc))
        return 1
    tenancy: TenancyConfig | None = None
    if opts.tenancy_config_file:
        try:
            tenancy = load_tenancy(opts.tenancy_config_file, opts.config_file)[0]
            if web_config is not None:
                refuse_basic_auth_users(web_config[0].current(), "--tenancy.config-file")
        except (ConfigError, TemplateError, OSError) as exc:
            log.error("tenancy.load_failed", file=opts.tenancy_config_file, err=str(exc))
            return 1
    try:
        rules = rule_files(opts).load()
    except RulesError as exc:
        log.error("rules.load_failed", err=str(exc))
        return 1
    try:
        kube_api = event_watch_api(opts)
    except WatchConfigError as exc:
        log.error("events.watch_config_failed", err=str(exc))
        return 1
    try:
        Path(opts.storage_path).mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        log.error("storage.unusable", path=opts.storage_path, err=str(exc))
        return 1
    try:
        socks = web_sockets(opts)
    except (OSError, ValueError) as exc:
        log.error("web.listen_failed", err=str(exc))
        return 1
    failed = False
    try:
        trio.run(serve, opts, config, templates, socks, web_config, rules, kube_api, tenancy)
    except* (PeerSetupError, HttpClientConfigError, OSError) as group:
        # Fatal start-up or I/O failures (e.g. the cluster port is taken): one clear line
        # and a non-zero exit, so systemd's restart policy applies.
        log.error("daemon.failed", err="; ".join(str(e) for e in group.exceptions))
        failed = True
    return 1 if failed else 0


async def serve(
    opts: Options,
    config: Config,
    templates: Templates,
    socks: list[socket.socket],
    web_config: tuple[WebConfigFile, ssl.SSLContext | None] | None = None,
    rules: RuleSets | None = None,
    kube_api: ApiServer | None = None,
    tenancy: TenancyConfig | None = None,
) -> None:
    """Run the daemon until SIGTERM/SIGINT; SIGHUP reloads the config."""
    clock = SystemClock()
    # Host name look-ups get their own threads, so a slow resolver starves nothing else.
    thread_limits.install_resolver()
    thread_limits.share_the_gil()
    m.build_info.labels(__version__, "", "main", "python", "linux", "amd64").set(1)
    m.cluster_enabled.set(0)
    storage = Path(opts.storage_path)
    # Signals are caught from before start-up, so a SIGTERM right after readiness is
    # handled gracefully, not by the default action.
    with trio.open_signal_receiver(signal.SIGTERM, signal.SIGINT, signal.SIGHUP) as signals:
        await _serve(
            opts,
            config,
            templates,
            socks,
            web_config,
            clock,
            storage,
            signals,
            rules or RuleSets(),
            kube_api,
            tenancy,
        )


async def _serve(
    opts: Options,
    config: Config,
    templates: Templates,
    socks: list[socket.socket],
    web_config: tuple[WebConfigFile, ssl.SSLContext | None] | None,
    clock: Clock,
    storage: Path,
    signals: AsyncIterator[int],
    rules: RuleSets,
    kube_api: ApiServer | None,
    tenancy: TenancyConfig | None = None,
) -> None:
    # Imported here so that the pure core never imports quart or hypercorn.
    from daemon.api.app import create_app
    from daemon.api.debug import stall_routes
    from daemon.api.events import event_routes
    from daemon.api.history import history_routes
    from daemon.api.receivers import receiver_test_routes
    from daemon.api.server import serve_api
    from daemon.api.tenancy import (
        RequestBackend,
        install_gate,
        request_tenant,
        tenant_silence_routes,
        tenants_routes,
        v1_alert_routes,
    )
    from daemon.api.why import why_routes
    from daemon.ui.pages import is_shell, ui_routes

    address, port = socks[0].getsockname()[:2]
    # One client per distinct http_config (TLS, proxy, OAuth2), all behind one limit on
    # requests in flight: httpcore's pool queue is quadratic under a burst of flushes.
    async with (
        HttpClients(
            timeout=HTTP_TIMEOUT,
            max_in_flight=MAX_HTTP_IN_FLIGHT,
            sender_process=opts.notify_sender_process,
        ) as clients,
        trio.open_nursery() as nursery,
    ):
        if clients.process is not None:
            # In the background: notifications go in-process until the child is ready.
            await nursery.start(clients.process.serve)
        history: History | None = None
        if opts.history_retention > 0:
            # Before the instance, so its first notification has a place to go.
            history = await start_history(
                nursery,
                storage,
                retention=opts.history_retention,
                max_rows=opts.history_max_rows,
                export_file=opts.history_export_file or None,
                webhook_url=opts.history_webhook_url or None,
                webhook_format=opts.history_webhook_format,
                http_client=clients.default,
                instance=f"{socket.gethostname()}:{port}",
                clock=clock,
            )
        instance = Instance(
            config,
            clock=clock,
            http=clients.default,
            external_url=external_url(opts, port),
            retention=opts.data_retention,
            storage=StorageSettings(storage, opts.data_maintenance_interval),
            gc_interval=opts.alerts_gc_interval,
            templates=templates,
            clients=clients,
            history=history.for_tenant() if history is not None else None,
        )
        instances: dict[str, Instance] = {DEFAULT_INSTANCE: instance}
        # Kubernetes events and audit events: the HTTP intakes below put through it.
        events = EventIntake(
            rules,
            clock,
            default_resolve_after=opts.events_resolve_after,
            sinks=[NotificationSink(u, clients.default) for u in opts.events_notification_webhooks],
        )
        sources: list[Source] = [events]
        if kube_api is not None:
            sources.append(
                EventWatch(kube_api, events, clock, resolve_window=opts.events_resolve_after)
            )
        peer = create_peer(opts, instance.silences, instance.nflog, clock)
        if peer is not None:
            instance.use_cluster(peer.wait_settled, peer.peer_wait)
        notifier = Notifier()
        reloader = Reloader(
            instance, opts.config_file, notifier, RuleReload(rule_files(opts), events)
        )
        for each in instances.values():
            await nursery.start(each.run)
        if peer is not None:
            # After the instances loaded their state, so the first push/pull has it.
            await nursery.start(peer.run)
        facts = ProcessFacts(
            route_prefix=route_prefix(opts),
            started=clock.now(),
            version_info=VERSION_INFO,
            cluster_status=functools.partial(_cluster_status, peer),
            reload=reloader.reload,
        )
        tenants: TenantMap | None = None
        if tenancy is not None:
            tenants = await start_tenants(
                nursery, opts, tenancy, instance, facts, clients, history, peer
            )
            reloader.tenancy_file, reloader.tenants = opts.tenancy_config_file, tenants
        # Alert producers besides the API; with tenancy they feed the global intake,
        # which fans out.
        await start_sources(nursery, sources, tenants.put_global if tenants else instance.put)
        record_config(config)
        backend = InstanceBackend(instance, facts)
        extra_routes = dict(receiver_test_routes())
        extra_routes.update(event_routes(events))
        extra_routes.update(v1_alert_routes(tenants))
        if tenants is not None:
            extra_routes.update(tenants_routes(tenants))
        pin = request_tenant if tenants is not None else None
        if history is not None:
            extra_routes.update(history_routes(history.store, request_tenant=pin))
        extra_routes.update(
            why_routes(history.store if history is not None else None, request_tenant=pin)
        )
        extra_routes.update(ui_routes())
        if opts.debug_stall_endpoint:
            extra_routes.update(stall_routes())
        app = create_app(
            backend if tenants is None else RequestBackend(tenants),
            api_routes=api_routes()
            if tenants is None
            else tenant_silence_routes(api_routes(), tenants),
            extra_routes=extra_routes,
            get_concurrency=opts.web_get_concurrency,
            timeout_ns=opts.web_timeout,
        )
        if tenants is not None:
            install_gate(app, tenants, open_read=is_shell)
        web, tls = web_config if web_config is not None else (None, None)
        await nursery.start(
            functools.partial(
                serve_api,
                app,
                "",
                0,
                sock=socks[0],
                more_socks=socks[1:],
                web_config=web,
                tls=tls,
            )
        )
        await nursery.start(loop_monitor.run_probe)
        log.info(
            "web.listening",
            address=f"{address}:{port}",
            external_url=instance.external_url,
            version=__version__,
            pid=os.getpid(),
        )
        tune_gc()
        nursery.start_soon(notifier.feed_watchdog)
        nursery.start_soon(_announce_ready, notifier, peer, instance)
        await _handle_signals(signals, reloader, notifier, nursery.cancel_scope)


async def start_tenants(
    nursery: trio.Nursery,
    opts: Options,
    tenancy: TenancyConfig,
    instance: Instance,
    facts: ProcessFacts,
    clients: HttpClients,
    history: History | None,
    peer: ClusterPeer | None,
) -> TenantMap:
    """Start one instance per tenant beside the global ``instance`` (issue 11); with a
    cluster peer, each tenant's silences and nflog gossip under its own keys."""
    storage = Path(opts.storage_path)

    def make_tenant(
        tenant: str, config: Config, templates: Templates, limits: TenantLimits
    ) -> Instance:
        made = Instance(
            config,
            clock=instance.clock,
            http=clients.default,
            external_url=instance.external_url,
            retention=opts.data_retention,
            storage=StorageSettings(tenant_dir(storage, tenant), opts.data_maintenance_interval),
            gc_interval=opts.alerts_gc_interval,
            templates=templates,
            clients=clients,
            tenant=tenant,
            history=history.for_tenant(tenant) if history is not None else None,
            limits=limits,
            global_silences=instance.silences,
        )
        if peer is not None:
            made.use_cluster(peer.wait_settled, peer.peer_wait)
        return made

    def gossip(tenant: str, made: Instance) -> Callable[[], None]:
        assert peer is not None
        return peer.add_tenant(tenant, made.silences, made.nflog)

    def load_fallback() -> tuple[Config, Templates]:
        return load_config_and_templates(tenants.tenancy.fallback_config_file or opts.config_file)

    tenants = TenantMap(
        instance,
        tenancy,
        storage=storage,
        make_instance=make_tenant,
        load_fallback=load_fallback,
        process=facts,
        sidecar_http=clients.default,
        gossip=gossip if peer is not None else None,
    )
    await nursery.start(tenants.run)
    if peer is not None:
        # After the stored configs loaded, so the first push/pull carries them.
        tenants.publish = peer.add_state(CONFIG_KEY, ConfigGossip(tenants))
    return tenants


def _cluster_status(peer: ClusterPeer | None) -> Mapping[str, Any]:
    return peer.cluster_status() if peer is not None else disabled_cluster_status()


def _status_line(instance: Instance, peer: ClusterPeer | None) -> str:
    """systemd's STATUS=: what a person checking ``systemctl status`` wants to see."""
    # A count, not len(groups()): snapshots sort every group's alerts (70 ms at 100k).
    text = f"{len(instance.store)} alerts, {instance.group_count()} groups"
    if peer is not None:
        node = peer.running_node
        text += f", {len(node.members()) if node is not None else 0} cluster members"
    return text


async def _announce_ready(notifier: Notifier, peer: ClusterPeer | None, instance: Instance) -> None:
    """READY=1 once the cluster settled (the rest is up already), then a STATUS= line
    every few seconds."""
    if peer is not None:
        await peer.wait_settled()
    notifier.ready(_status_line(instance, peer))
    log.info("daemon.ready")
    while True:
        await trio.sleep(STATUS_INTERVAL)
        notifier.status(_status_line(instance, peer))


async def _handle_signals(
    signals: AsyncIterator[int],
    reloader: Reloader,
    notifier: Notifier,
    scope: trio.CancelScope,
) -> None:
    async for signum in signals:
        if signum == signal.SIGHUP:
            await reloader.reload()
            continue
        log.info("daemon.stopping", signal=signal.Signals(signum).name)
        notifier.stopping()
        scope.cancel()
        return
