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
import struct
from collections.abc import AsyncIterator, Mapping
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import structlog
import trio

from daemon import __version__, loop_monitor, thread_limits
from daemon import metrics as m
from daemon.api.backend import ApiBackend
from daemon.clock import Clock, SystemClock
from daemon.config.errors import ConfigError
from daemon.config.load import load_config_file
from daemon.config.model import Config
from daemon.ha.peer import ClusterPeer, PeerSetupError, create_peer, disabled_cluster_status
from daemon.history.service import History, start_history
from daemon.instance import Instance, InstanceBackend, ProcessFacts, StorageSettings
from daemon.log import configure as configure_logging
from daemon.notify.httpclient import HttpClientConfigError, HttpClients
from daemon.options import Options
from daemon.persist import DurableState, flush_after
from daemon.sources import Source, start_sources
from daemon.store import tune_gc
from daemon.template.errors import TemplateError
from daemon.template.render import Templates

log = structlog.get_logger("tocsin")

#: Seconds a notification HTTP request may take (Alertmanager's notifiers have no
#: default per-request timeout, only the flush deadline; this bounds a hung peer).
HTTP_TIMEOUT = 30.0
#: Notification requests in flight at once, across all receivers.
MAX_HTTP_IN_FLIGHT = 64
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

    def __init__(self, instance: Instance, config_file: str) -> None:
        self.instance = instance
        self.config_file = config_file
        self._lock = trio.Lock()

    async def reload(self) -> str | None:
        """The error text, or None once the new config runs."""
        async with self._lock:
            try:
                config, templates = await trio.to_thread.run_sync(
                    load_config_and_templates,
                    self.config_file,
                    limiter=thread_limits.config_reload(),
                )
                await self.instance.reload(config, templates)
            except (ConfigError, TemplateError, OSError, ValueError) as exc:
                m.config_last_reload_successful.set(0)
                log.error("config.reload_failed", file=self.config_file, err=str(exc))
                return str(exc)
            record_config(config)
            log.info("config.reloaded", file=self.config_file)
            return None


def _silence_state(backend: ApiBackend) -> DurableState:
    assert isinstance(backend, InstanceBackend) and backend.silence_state is not None
    return backend.silence_state


def api_routes(durable: bool) -> dict[str, dict[str, Any]]:
    """API v2 routes; with durable state, silence writes answer only once on disk."""
    from daemon.api.app import default_api_routes
    from daemon.api.silences import silence_routes

    silences = silence_routes()
    if durable:
        for methods in silences.values():
            for method in ("POST", "DELETE"):
                if method in methods:
                    methods[method] = flush_after(methods[method], _silence_state)
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
    # Host name look-ups get their own threads, so a slow resolver starves nothing else.
    thread_limits.install_resolver()
    thread_limits.share_the_gil()
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
    from daemon.api.history import history_routes
    from daemon.api.receivers import receiver_test_routes
    from daemon.api.server import serve_api

    address, port = sock.getsockname()[:2]
    # One client per distinct http_config (TLS, proxy, OAuth2), all behind one limit on
    # requests in flight: httpcore's pool queue is quadratic under a burst of flushes.
    async with (
        HttpClients(timeout=HTTP_TIMEOUT, max_in_flight=MAX_HTTP_IN_FLIGHT) as clients,
        trio.open_nursery() as nursery,
    ):
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
        sources: list[Source] = []
        peer = create_peer(opts, instance.silences, instance.nflog, clock)
        if peer is not None:
            instance.use_cluster(peer.wait_settled, peer.peer_wait)
        reloader = Reloader(instance, opts.config_file)
        for each in instances.values():
            await nursery.start(each.run)
        if peer is not None:
            # After the instances loaded their state, so the first push/pull has it.
            await nursery.start(peer.run)
        # Alert producers besides the API (none yet: the Kubernetes sources plug in here).
        await start_sources(nursery, sources, instance.put)
        record_config(config)
        backend = InstanceBackend(
            instance,
            ProcessFacts(
                route_prefix=route_prefix(opts),
                started=clock.now(),
                version_info=VERSION_INFO,
                cluster_status=functools.partial(_cluster_status, peer),
                reload=reloader.reload,
            ),
        )
        extra_routes = dict(receiver_test_routes())
        if history is not None:
            extra_routes.update(history_routes(history.store))
        app = create_app(
            backend,
            api_routes=api_routes(instance.silence_state is not None),
            extra_routes=extra_routes,
        )
        await nursery.start(loop_monitor.run_probe)
        await nursery.start(functools.partial(serve_api, app, "", 0, sock=sock))
        log.info(
            "web.listening",
            address=f"{address}:{port}",
            external_url=instance.external_url,
            version=__version__,
            pid=os.getpid(),
        )
        tune_gc()
        await _handle_signals(signals, reloader, nursery.cancel_scope)


def _cluster_status(peer: ClusterPeer | None) -> Mapping[str, Any]:
    return peer.cluster_status() if peer is not None else disabled_cluster_status()


async def _handle_signals(
    signals: AsyncIterator[int], reloader: Reloader, scope: trio.CancelScope
) -> None:
    async for signum in signals:
        if signum == signal.SIGHUP:
            await reloader.reload()
            continue
        log.info("daemon.stopping", signal=signal.Signals(signum).name)
        scope.cancel()
        return
