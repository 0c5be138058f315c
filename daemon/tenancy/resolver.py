"""The namespace resolver: which tenants get a copy of a global alert.

Rules:

* Only an alert with a non-empty ``namespace`` label fans out; with ``rule_level_only``
  only one also labelled ``rule_level="namespace"`` does (NM after #302).
* ``static``: every tenant whose ``namespaces`` globs match the namespace (an alert may
  belong to several tenants, as in NM). ``identity``: the tenant named like the
  namespace, if there is one. ``sidecar``: NM's tenant sidecar, ``GET
  url?cluster=<c>&namespace=<ns>`` answering a JSON array of tenant ids; ids that are
  not tenants of the file are dropped.
* The sidecar's answers are cached for ``cache``; an expired answer is still used
  while a fresh one is fetched, and a sidecar that is down keeps the last answer (logged).
  A (cluster, namespace) never asked before has no answer yet: :meth:`tenants_of`
  returns None and the fan-out holds those alerts until :class:`SidecarResolver.run`
  has asked.

The decisions (:func:`static_tenants`, :meth:`SidecarCache.lookup`) are pure and take
``now``; :class:`SidecarResolver.run` is the trio shell that does the HTTP.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Mapping
from typing import Protocol

import attrs
import httpx
import structlog
import trio

from daemon.alert import Alert
from daemon.clock import Clock
from daemon.tenancy.tenants import ResolverSpec, TenancyConfig

log = structlog.get_logger("tocsin")

#: Keys a sidecar resolver may be asked about at once (more are dropped, and logged).
MAX_PENDING_KEYS = 10_000
#: Seconds one sidecar request may take.
SIDECAR_TIMEOUT = 5.0

#: (cluster, namespace)
Key = tuple[str, str]


def fan_out_key(labels: Mapping[str, str], spec: ResolverSpec) -> Key | None:
    """The (cluster, namespace) that decides an alert's tenants, or None: no fan-out."""
    namespace = labels.get("namespace", "")
    if not namespace:
        return None
    if spec.rule_level_only and labels.get("rule_level") != "namespace":
        return None
    return labels.get("cluster", ""), namespace


def static_tenants(config: TenancyConfig, namespace: str) -> tuple[str, ...]:
    """The tenants whose namespace globs match ``namespace``, in file order."""
    return tuple(t.id for t in config.tenants.values() if t.owns_namespace(namespace))


def identity_tenants(config: TenancyConfig, namespace: str) -> tuple[str, ...]:
    return (namespace,) if namespace in config.tenants else ()


def plan_fan_out(
    alerts: Iterable[Alert],
    spec: ResolverSpec,
    tenants_of: Callable[[Key], tuple[str, ...] | None],
) -> tuple[dict[str, list[Alert]], dict[Key, list[Alert]]]:
    """Which tenant gets a copy of which of ``alerts``, and which alerts wait for an
    answer the resolver does not have yet (by key). Order within a tenant is kept."""
    by_tenant: dict[str, list[Alert]] = {}
    held: dict[Key, list[Alert]] = {}
    for alert in alerts:
        key = fan_out_key(alert.labels, spec)
        if key is None:
            continue
        tenants = tenants_of(key)
        if tenants is None:
            held.setdefault(key, []).append(alert)
            continue
        for tenant in tenants:
            by_tenant.setdefault(tenant, []).append(alert)
    return by_tenant, held


class Resolver(Protocol):
    """What the fan-out asks."""

    def tenants_of(self, key: Key) -> tuple[str, ...] | None:
        """The tenants of ``key``; None if not known yet (only a sidecar says that)."""
        ...


@attrs.define
class FileResolver:
    """``static`` and ``identity``: answers from the tenancy file alone."""

    config: TenancyConfig
    _memo: dict[str, tuple[str, ...]] = attrs.field(factory=dict)

    def tenants_of(self, key: Key) -> tuple[str, ...]:
        namespace = key[1]
        found = self._memo.get(namespace)
        if found is None:
            if self.config.resolver.type == "identity":
                found = identity_tenants(self.config, namespace)
            else:
                found = static_tenants(self.config, namespace)
            if len(self._memo) > 100_000:
                self._memo.clear()  # bounded: namespaces come from alert labels
            self._memo[namespace] = found
        return found


@attrs.define
class SidecarCache:
    """The sidecar's answers and what to ask next (pure: takes ``now``)."""

    ttl: int
    known: frozenset[str]
    answers: dict[Key, tuple[tuple[str, ...], int]] = attrs.field(factory=dict)
    wanted: dict[Key, None] = attrs.field(factory=dict)

    def lookup(self, key: Key, now: int) -> tuple[str, ...] | None:
        """The cached answer (even expired: the last answer is kept), or None; a miss or
        an expired answer puts ``key`` on the list to ask."""
        found = self.answers.get(key)
        if found is None or found[1] <= now:
            if len(self.wanted) < MAX_PENDING_KEYS:
                self.wanted[key] = None
        return None if found is None else found[0]

    def store(self, key: Key, tenants: list[str], now: int) -> tuple[str, ...]:
        kept = tuple(t for t in dict.fromkeys(tenants) if t in self.known)
        self.answers[key] = (kept, now + self.ttl)
        return kept

    def take_wanted(self) -> list[Key]:
        keys = list(self.wanted)
        self.wanted.clear()
        return keys


def parse_sidecar_answer(content: bytes) -> list[str]:
    """NM's answer: a JSON array of tenant ids; raises ValueError on anything else."""
    data = json.loads(content)
    if not isinstance(data, list) or not all(isinstance(t, str) for t in data):
        raise ValueError("the tenant sidecar did not answer a JSON array of strings")
    return data


class SidecarResolver:
    """``sidecar``: NM's tenant sidecar over HTTP, cached; run by :meth:`run`."""

    def __init__(
        self,
        config: TenancyConfig,
        clock: Clock,
        http: httpx.AsyncClient,
        on_answer: Callable[[Key, tuple[str, ...]], None],
    ) -> None:
        self.config = config
        self.clock = clock
        self.http = http
        self.on_answer = on_answer
        self.cache = SidecarCache(config.resolver.cache, frozenset(config.tenants))
        self._wake = trio.Event()

    def tenants_of(self, key: Key) -> tuple[str, ...] | None:
        found = self.cache.lookup(key, self.clock.now())
        if self.cache.wanted:
            self._wake.set()
        return found

    async def ask(self, key: Key) -> tuple[str, ...] | None:
        """One sidecar call; None (logged) if it failed: the last answer stays."""
        cluster, namespace = key
        try:
            with trio.fail_after(SIDECAR_TIMEOUT):
                resp = await self.http.get(
                    self.config.resolver.url, params={"cluster": cluster, "namespace": namespace}
                )
            resp.raise_for_status()
            tenants = parse_sidecar_answer(resp.content)
        except (httpx.HTTPError, trio.TooSlowError, ValueError) as exc:
            log.warning(
                "tenancy.sidecar_failed", cluster=cluster, namespace=namespace, err=str(exc)
            )
            return None
        return self.cache.store(key, tenants, self.clock.now())

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Ask the sidecar about every wanted key, one at a time, until cancelled."""
        task_status.started()
        while True:
            await self._wake.wait()
            self._wake = trio.Event()
            for key in self.cache.take_wanted():
                answer = await self.ask(key)
                if answer is None:
                    # Down: the last answer (if any) stays; held alerts wait for the next try.
                    answer = self.cache.answers.get(key, ((), 0))[0]
                    if key not in self.cache.answers:
                        continue
                self.on_answer(key, answer)
            # Not a busy loop against a sidecar that is down: at most one round a second.
            await trio.sleep(1.0)


__all__ = [
    "FileResolver",
    "Key",
    "Resolver",
    "SidecarCache",
    "SidecarResolver",
    "fan_out_key",
    "identity_tenants",
    "parse_sidecar_answer",
    "plan_fan_out",
    "static_tenants",
]
