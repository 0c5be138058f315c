"""The map of instances: one Alertmanager pipeline per tenant beside the global one,
and the fan-out of the global intake.

Theory of operation:

* The global instance runs ``--config.file`` and gets every alert posted without a
  tenant, exactly as without tenancy. :meth:`TenantMap.put_global` then hands a copy of
  each alert to every tenant the resolver maps its ``namespace`` (and ``cluster``) to.
* A tenant's instance runs its own config (stored by Mimir's config API under
  ``<storage>/tenants/<id>/config/``) or, without one, ``fallback_config_file`` (or the
  global config file when the tenancy file names none). Its silences and nflog live
  under ``<storage>/tenants/<id>/``. Its silence stage consults its own silences and
  the global ones; the global inhibit rules do not reach it.
* Alerts posted by a tenant, or with its ``X-Scope-OrgID``, go to that tenant's
  instance alone (:meth:`TenantMap.put_tenant`).
* The map is an actor: :meth:`run` owns the tenants' tasks, each in its own cancel
  scope; a new tenancy file (:meth:`apply`) starts the new tenants and stops the ones
  that went. A removed tenant's files stay on disk, so a tenant removed by mistake
  comes back with its silences when it is put back.
* Tenant config writes are serialised per map (one lock): staged and loaded in a
  thread, built (so a config the pipeline cannot run is refused with nothing changed),
  committed to disk, then swapped in.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import attrs
import structlog
import trio

from cluster.errors import DecodeError
from daemon import metrics, thread_limits
from daemon.alert import Alert
from daemon.config.errors import ConfigError
from daemon.config.model import Config
from daemon.instance import Instance, InstanceBackend, ProcessFacts
from daemon.template.errors import TemplateError
from daemon.template.render import Templates
from daemon.tenancy import configstore
from daemon.tenancy.configstore import TenantConfigDoc, TenantConfigError
from daemon.tenancy.limits import (
    LimitExceeded,
    TenantLimits,
    check_config_limits,
    config_limit_breached,
    count_breach,
)
from daemon.tenancy.resolver import FileResolver, Key, Resolver, SidecarResolver, plan_fan_out
from daemon.tenancy.tenants import TenancyConfig, check_tenant_id

log = structlog.get_logger("tocsin")

#: Alerts held while the sidecar has not answered for their namespace, at most.
MAX_HELD_ALERTS = 100_000

#: Builds a tenant's instance from its id, config and limits (the shell knows the rest).
MakeInstance = Callable[[str, Config, Templates, TenantLimits], Instance]
#: Loads the fallback config (blocking; run in a thread).
LoadFallback = Callable[[], tuple[Config, Templates]]


@attrs.define
class _Running:
    instance: Instance
    scope: trio.CancelScope
    custom: bool
    #: Stops gossiping this tenant's state (HA), if it does.
    detach: Callable[[], None] | None = None


class FanOutBackend(InstanceBackend):
    """The global instance as the API sees it: what is posted to it fans out."""

    def __init__(self, instance: Instance, process: ProcessFacts, tenants: TenantMap) -> None:
        super().__init__(instance, process)
        self.tenants = tenants

    def put_alerts(self, alerts: Sequence[Alert], now: int) -> None:
        self.tenants.put_global(alerts, now)


class TenantMap:
    """The tenants' instances, keyed by tenant id, and the global intake's fan-out."""

    def __init__(
        self,
        global_instance: Instance,
        tenancy: TenancyConfig,
        *,
        storage: Path,
        make_instance: MakeInstance,
        load_fallback: LoadFallback,
        process: ProcessFacts,
        sidecar_http: Any = None,
        gossip: Callable[[str, Instance], Callable[[], None]] | None = None,
    ) -> None:
        self.global_instance = global_instance
        self.tenancy = tenancy
        self.storage = storage
        self.make_instance = make_instance
        self.load_fallback = load_fallback
        self.process = process
        self.sidecar_http = sidecar_http
        #: With HA: starts gossiping a tenant's silences and nflog, returns the undo.
        self.gossip = gossip
        self.running: dict[str, _Running] = {}
        self.global_backend = FanOutBackend(global_instance, process, self)
        self._backends: dict[str, InstanceBackend] = {}
        self._resolver: Resolver = FileResolver(tenancy)
        self._held: dict[Key, list[Alert]] = {}
        self._held_count = 0
        self._nursery: trio.Nursery | None = None
        self._sidecar_scope: trio.CancelScope | None = None
        self._lock = trio.Lock()
        self._fallback: tuple[Config, Templates] | None = None
        #: Each tenant's config version (Unix ns of its last change, and whether that
        #: was a delete) and its own config, as HA peers exchange them (last writer wins).
        self.versions: dict[str, tuple[int, bool]] = {}
        self.docs: dict[str, TenantConfigDoc | None] = {}
        #: Broadcasts one tenant's config change to HA peers (see ConfigGossip).
        self.publish: Callable[[bytes], None] | None = None
        self._remote_out, self._remote_in = trio.open_memory_channel[ConfigEntry](REMOTE_QUEUE)

    # --- the intake ---------------------------------------------------------------------

    def put_global(self, alerts: Iterable[Alert], now: int) -> None:
        """The global pipeline's intake: store there, then copy to the resolved tenants."""
        batch = list(alerts)
        self.global_instance.put(batch, now)
        by_tenant, held = plan_fan_out(batch, self.tenancy.resolver, self._resolver.tenants_of)
        for tenant, copies in by_tenant.items():
            self.put_tenant(tenant, copies, now)
        for key, waiting in held.items():
            if self._held_count + len(waiting) > MAX_HELD_ALERTS:
                log.warning(
                    "tenancy.fan_out_dropped", cluster=key[0], namespace=key[1], count=len(waiting)
                )
                continue
            self._held.setdefault(key, []).extend(waiting)
            self._held_count += len(waiting)

    def put_tenant(self, tenant: str, alerts: Sequence[Alert], now: int) -> None:
        """Alerts for ``tenant`` alone (an unknown or stopped tenant gets nothing)."""
        running = self.running.get(tenant)
        if running is None:
            return
        try:
            running.instance.put(alerts, now)
        except LimitExceeded as exc:
            # As in Mimir: the tenant's copies are dropped and logged (and counted by
            # the instance); the global pipeline and other tenants are not affected.
            log.warning("tenant.alerts_dropped", tenant=tenant, count=len(alerts), err=str(exc))

    def _answered(self, key: Key, tenants: tuple[str, ...]) -> None:
        """The sidecar answered for ``key``: deliver the alerts held for it."""
        waiting = self._held.pop(key, [])
        self._held_count -= len(waiting)
        if waiting:
            now = self.global_instance.clock.now()
            for tenant in tenants:
                self.put_tenant(tenant, waiting, now)

    # --- the API's view -----------------------------------------------------------------

    def backend_for(self, tenant: str | None) -> InstanceBackend | None:
        """The backend of ``tenant``'s pipeline (None: the global one), or None."""
        if tenant is None:
            return self.global_backend
        if tenant not in self.running:
            return None
        backend = self._backends.get(tenant)
        if backend is None or backend.instance is not self.running[tenant].instance:
            backend = InstanceBackend(self.running[tenant].instance, self.process)
            self._backends[tenant] = backend
        return backend

    def tenant_list(self) -> list[dict[str, Any]]:
        """``GET /api/v1/tenants``: every tenant with its counts and config status."""
        out: list[dict[str, Any]] = []
        for tenant, running in sorted(self.running.items()):
            instance = running.instance
            out.append(
                {
                    "id": tenant,
                    "alerts": len(instance.store),
                    "silences": len(instance.silences.query([], instance.clock.now())),
                    "groups": instance.generation.dispatcher.group_count(),
                    "config": "custom" if running.custom else "fallback",
                }
            )
        return out

    async def get_config(self, tenant: str) -> TenantConfigDoc | None:
        return await trio.to_thread.run_sync(
            configstore.read, self.storage, tenant, limiter=thread_limits.disk()
        )

    async def set_config(self, tenant: str, doc: TenantConfigDoc) -> None:
        """Validate, store and run ``doc`` as ``tenant``'s config, and tell HA peers.

        Raises:
            TenantConfigError: refused (the 400); the old config stays.
            KeyError: no such tenant.
        """
        version = self._next_version(tenant)
        await self._set(tenant, doc, version)
        self._announce(tenant)

    async def delete_config(self, tenant: str) -> None:
        """Drop ``tenant``'s own config (it runs the fallback again), and tell HA peers."""
        version = self._next_version(tenant)
        await self._delete(tenant, version)
        self._announce(tenant)

    def _next_version(self, tenant: str) -> int:
        return max(self.global_instance.clock.now(), self.versions.get(tenant, (0, False))[0] + 1)

    def _announce(self, tenant: str) -> None:
        if self.publish is not None:
            self.publish(encode_entries([self.entry(tenant)]))

    def entry(self, tenant: str) -> ConfigEntry:
        version, deleted = self.versions.get(tenant, (0, False))
        return ConfigEntry(tenant, version, deleted, self.docs.get(tenant))

    async def _set(self, tenant: str, doc: TenantConfigDoc, version: int) -> None:
        async with self._lock:
            running = self.running[tenant]
            problem = check_config_limits(
                running.instance.limits, doc.alertmanager_config, doc.template_files
            )
            if problem is not None:
                count_breach(tenant, config_limit_breached(problem))
                raise TenantConfigError(problem)
            config, templates = await trio.to_thread.run_sync(
                configstore.stage, self.storage, tenant, doc, limiter=thread_limits.config_reload()
            )
            try:
                # Built once here so a config the pipeline cannot run is a 400, not a
                # half-applied change.
                running.instance.build(config, templates)
            except Exception as exc:
                await trio.to_thread.run_sync(configstore.discard, self.storage, tenant)
                raise TenantConfigError(f"alertmanager_config: {exc}") from None
            await trio.to_thread.run_sync(
                configstore.commit, self.storage, tenant, limiter=thread_limits.disk()
            )
            await trio.to_thread.run_sync(
                configstore.write_version, self.storage, tenant, version, False
            )
            self.versions[tenant], self.docs[tenant] = (version, False), doc
            await running.instance.reload(config, templates)
            running.custom = True
            log.info("tenant.config_set", tenant=tenant, version=version)

    async def _delete(self, tenant: str, version: int) -> None:
        async with self._lock:
            running = self.running[tenant]
            await trio.to_thread.run_sync(
                configstore.delete, self.storage, tenant, limiter=thread_limits.disk()
            )
            await trio.to_thread.run_sync(
                configstore.write_version, self.storage, tenant, version, True
            )
            self.versions[tenant], self.docs[tenant] = (version, True), None
            config, templates = await self._fallback_config()
            await running.instance.reload(config, templates)
            running.custom = False
            log.info("tenant.config_deleted", tenant=tenant, version=version)

    # --- HA: tenant configs from peers --------------------------------------------------

    def offer(self, entry: ConfigEntry) -> None:
        """A peer's config of a tenant: applied (by :meth:`_apply_remote`) if newer than
        ours. Taken as ours at once, so what we gossip on is the newest we know, even if
        this node cannot run it (then it logs why)."""
        if entry.tenant not in self.running:
            return
        if entry.version <= self.versions.get(entry.tenant, (0, False))[0]:
            return
        try:
            self._remote_out.send_nowait(entry)
        except trio.WouldBlock:
            log.warning("tenant.config_gossip_dropped", tenant=entry.tenant)
            return
        self.versions[entry.tenant] = (entry.version, entry.deleted)
        self.docs[entry.tenant] = entry.doc

    async def _apply_remote(self) -> None:
        async for entry in self._remote_in:
            try:
                if entry.deleted or entry.doc is None:
                    await self._delete(entry.tenant, entry.version)
                else:
                    await self._set(entry.tenant, entry.doc, entry.version)
            except (TenantConfigError, KeyError, OSError) as exc:
                log.error("tenant.config_gossip_failed", tenant=entry.tenant, err=str(exc))

    # --- lifecycle ----------------------------------------------------------------------

    async def _fallback_config(self) -> tuple[Config, Templates]:
        if self._fallback is None:
            self._fallback = await trio.to_thread.run_sync(
                self.load_fallback, limiter=thread_limits.config_reload()
            )
        return self._fallback

    async def _config_of(self, tenant: str) -> tuple[tuple[Config, Templates], bool]:
        """The tenant's own stored config, or the fallback; and whether it is its own."""
        folder = configstore.tenant_dir(self.storage, tenant) / "config"

        def load_own() -> tuple[Config, Templates] | None:
            self.versions[tenant] = configstore.read_version(self.storage, tenant)
            self.docs[tenant] = configstore.read(self.storage, tenant)
            if not configstore.has_own(self.storage, tenant):
                return None
            return configstore.load_dir(folder)

        try:
            own = await trio.to_thread.run_sync(load_own, limiter=thread_limits.config_reload())
        except (ConfigError, TemplateError, OSError) as exc:
            # A stored config that no longer loads must not keep the daemon down.
            log.error("tenant.config_load_failed", tenant=tenant, err=str(exc))
            own = None
        if own is not None:
            return own, True
        return await self._fallback_config(), False

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Run every tenant's instance until cancelled; ready once all are."""
        async with trio.open_nursery() as nursery:
            self._nursery = nursery
            await self._start_resolver(nursery)
            await self._sync(nursery)
            nursery.start_soon(self._apply_remote)
            task_status.started()
            await trio.sleep_forever()

    async def apply(self, tenancy: TenancyConfig, fallback: tuple[Config, Templates]) -> None:
        """Switch to a re-read tenancy file and fallback config: tenants that went stop,
        new ones start, and tenants on the fallback reload it."""
        assert self._nursery is not None, "map not running"
        async with self._lock:
            self.tenancy = tenancy
            self._fallback = fallback
            if self._sidecar_scope is not None:
                self._sidecar_scope.cancel()
                self._sidecar_scope = None
            await self._start_resolver(self._nursery)
            for tenant, running in self.running.items():
                spec = tenancy.tenants.get(tenant)
                if spec is None:
                    continue
                running.instance.set_limits(spec.limits)
                if not running.custom:
                    await running.instance.reload(*fallback)
            await self._sync(self._nursery)

    async def _start_resolver(self, nursery: trio.Nursery) -> None:
        if self.tenancy.resolver.type != "sidecar":
            self._resolver = FileResolver(self.tenancy)
            return
        sidecar = SidecarResolver(
            self.tenancy, self.global_instance.clock, self.sidecar_http, self._answered
        )
        self._resolver = sidecar
        scope = trio.CancelScope()
        self._sidecar_scope = scope

        async def run_sidecar(
            *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED
        ) -> None:
            with scope:
                await sidecar.run(task_status=task_status)

        await nursery.start(run_sidecar)

    async def _sync(self, nursery: trio.Nursery) -> None:
        """Start the tenants the file names that are not running; stop the others."""
        wanted: Mapping[str, object] = self.tenancy.tenants
        for tenant in [t for t in self.running if t not in wanted]:
            gone = self.running.pop(tenant)
            if gone.detach is not None:
                gone.detach()
            gone.scope.cancel()
            self._backends.pop(tenant, None)
            log.info("tenant.stopped", tenant=tenant)
        for tenant in wanted:
            if tenant in self.running:
                continue
            (config, templates), custom = await self._config_of(tenant)
            instance = self.make_instance(
                tenant, config, templates, self.tenancy.tenants[tenant].limits
            )
            scope = trio.CancelScope()
            await nursery.start(functools.partial(_run_in, scope, instance))
            # After its state loaded, so the first push/pull carries it.
            detach = self.gossip(tenant, instance) if self.gossip is not None else None
            self.running[tenant] = _Running(instance, scope, custom, detach)
            log.info("tenant.started", tenant=tenant, config="custom" if custom else "fallback")


@attrs.frozen
class ConfigEntry:
    """One tenant's config as HA peers exchange it."""

    tenant: str
    version: int
    deleted: bool
    doc: TenantConfigDoc | None


def encode_entries(entries: Iterable[ConfigEntry]) -> bytes:
    return json.dumps(
        [
            {
                "tenant": e.tenant,
                "version": e.version,
                "deleted": e.deleted,
                "config": None if e.doc is None else e.doc.alertmanager_config,
                "templates": None if e.doc is None else dict(e.doc.template_files),
            }
            for e in entries
        ]
    ).encode()


def decode_entries(data: bytes) -> list[ConfigEntry]:
    """Raises DecodeError for anything but a list of well-formed entries."""
    try:
        raw = json.loads(data)
        if not isinstance(raw, list):
            raise TypeError("not a list of entries")
        out = []
        for item in raw:
            tenant = check_tenant_id(str(item["tenant"]))
            version, deleted = int(item["version"]), bool(item["deleted"])
            doc = None
            if item["config"] is not None:
                templates = dict(item["templates"] or {})
                if not all(isinstance(v, str) for v in [item["config"], *templates.values()]):
                    raise TypeError("config and templates must be strings")
                doc = TenantConfigDoc(item["config"], templates)
            out.append(ConfigEntry(tenant, version, deleted, doc))
    except (ValueError, TypeError, KeyError, RecursionError) as exc:
        raise DecodeError(f"tenant configs: {exc}") from None
    return out


#: The tocsin-only channel key of tenant configs.
CONFIG_KEY = "tocsin/cfg"
#: Peer config changes waiting to be applied, at most.
REMOTE_QUEUE = 1_000


class ConfigGossip:
    """Tenant configs as a replicated state (``cluster.state.State``): a push/pull
    carries every tenant's newest config and version; the newest wins everywhere."""

    def __init__(self, tenants: TenantMap) -> None:
        self.tenants = tenants

    def marshal(self) -> bytes:
        known = [self.tenants.entry(t) for t in sorted(self.tenants.versions)]
        return encode_entries(e for e in known if e.version)

    def merge(self, data: bytes) -> None:
        for entry in decode_entries(data):
            self.tenants.offer(entry)


async def _run_in(
    scope: trio.CancelScope,
    instance: Instance,
    *,
    task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
) -> None:
    try:
        with scope:
            await instance.run(task_status=task_status)
    finally:
        # After the final snapshot, whose metrics would otherwise bring series back.
        if instance.tenant is not None:
            metrics.close_pipeline(instance.tenant)


__all__ = ["CONFIG_KEY", "ConfigEntry", "ConfigGossip", "FanOutBackend", "TenantMap"]
