"""Finds every integration module in :mod:`daemon.notify.receivers` and builds by type.

A module takes part when it defines ``INTEGRATION_TYPE`` (a string) and a callable
``build(config, index, env)`` (see :mod:`daemon.notify.receivers.base`). Discovery runs
once, lazily, so that adding a type never touches this file.

Error handling: a module that fails to import is a bug and the import error propagates;
two modules claiming one type is a bug too (``RuntimeError``).
"""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Callable, Mapping, Sequence
from types import ModuleType

import attrs
import httpx
import structlog
import trio

from daemon.alert import Alert
from daemon.clock import Clock, SystemClock
from daemon.config.model import HTTPConfig, IntegrationConfig, Receiver
from daemon.notify.context import NotifyContext
from daemon.notify.http1 import HttpSender
from daemon.notify.httpclient import HttpClients, as_sender
from daemon.notify.receivers.base import Integration, IntegrationEnv, Templater
from daemon.notify.receivers.webhook import WebhookIntegration, unsupported_http_keys
from daemon.notify.retry import NotifyError
from daemon.template.render import Templates

log = structlog.get_logger(__name__)

BuildFn = Callable[[IntegrationConfig, int, IntegrationEnv], Integration]

#: Modules of the package that are not integrations (skipped without importing).
_NOT_INTEGRATIONS = frozenset({"base", "registry"})

_builders: dict[str, BuildFn] | None = None


def _scan(package: ModuleType) -> dict[str, BuildFn]:
    found: dict[str, BuildFn] = {}
    for info in pkgutil.iter_modules(package.__path__):
        if info.name in _NOT_INTEGRATIONS or info.name.startswith("_"):
            continue
        module = importlib.import_module(f"{package.__name__}.{info.name}")
        kind = getattr(module, "INTEGRATION_TYPE", None)
        build = getattr(module, "build", None)
        if not isinstance(kind, str) or not callable(build):
            continue
        if kind in found:
            raise RuntimeError(f"two integration modules claim type {kind!r}")
        found[kind] = build
    return found


def builders() -> Mapping[str, BuildFn]:
    """Every discovered type and its ``build`` function."""
    global _builders
    if _builders is None:
        from daemon.notify import receivers

        _builders = _scan(receivers)
    return _builders


def integration_types() -> frozenset[str]:
    """The integration types tocsin can send."""
    return frozenset(builders())


def build_integration(
    config: IntegrationConfig, index: int, env: IntegrationEnv
) -> Integration | None:
    """The integration for one config entry, or None when no module handles its type."""
    build = builders().get(config.type)
    if build is None:
        return None
    return build(config, index, env)


@attrs.define
class UnsupportedIntegration:
    """An integration type tocsin cannot send yet: every send fails, loudly, not silently."""

    name: str
    index: int
    send_resolved: bool

    async def notify(self, ctx: NotifyContext, alerts: Sequence[Alert]) -> None:
        await trio.lowlevel.checkpoint()
        raise NotifyError(
            f"integration type {self.name!r} is not implemented by tocsin", retryable=False
        )


def build_integrations(
    receiver: Receiver,
    http: httpx.AsyncClient | HttpSender,
    external_url: str,
    templater: Templater | None = None,
    clock: Clock | None = None,
    clients: HttpClients | None = None,
) -> list[Integration]:
    """The integrations of one receiver; unknown types become failing placeholders.

    With ``clients``, each entry gets the sender its ``http_config`` needs (the
    default one, or httpx for TLS, proxy, OAuth2; raises ``HttpClientConfigError`` on
    unusable TLS files) and ``http`` is not used; without, all share ``http`` and
    those settings are logged as ignored.
    """
    default = as_sender(http) if clients is None else clients.default_sender
    built: list[Integration] = []
    for idx, webhook in enumerate(receiver.webhook_configs):
        if clients is None:
            _warn_ignored(receiver.name, f"webhook[{idx}]", webhook.http_config)
        sender = default if clients is None else clients.sender_for(webhook.http_config)
        built.append(WebhookIntegration(webhook, idx, sender, external_url))
    env = IntegrationEnv(
        http=default,
        templater=templater or Templates.load((), external_url),
        external_url=external_url,
        clock=clock or SystemClock(),
        receiver=receiver.name,
    )
    per_type: dict[str, int] = {}
    for other in receiver.other_configs:
        idx = per_type.get(other.type, 0)
        per_type[other.type] = idx + 1
        integration = build_integration(other, idx, _env_for(env, other, clients))
        if integration is None:
            log.warning(
                "notify.integration_unsupported",
                receiver=receiver.name,
                integration=f"{other.type}[{idx}]",
            )
            integration = UnsupportedIntegration(other.type, idx, other.send_resolved)
        built.append(integration)
    return built


def _warn_ignored(receiver: str, integration: str, config: HTTPConfig) -> None:
    ignored = unsupported_http_keys(config)
    if ignored:
        log.warning(
            "notify.config_ignored", receiver=receiver, integration=integration, keys=ignored
        )


def _env_for(
    env: IntegrationEnv, other: IntegrationConfig, clients: HttpClients | None
) -> IntegrationEnv:
    """``env`` with the HTTP sender this entry's ``http_config`` asks for."""
    config = other.fields.get("http_config")
    if clients is None or not isinstance(config, HTTPConfig):
        return env
    sender = clients.sender_for(config)
    return env if sender is env.http else attrs.evolve(env, http=sender)


__all__ = [
    "BuildFn",
    "UnsupportedIntegration",
    "build_integration",
    "build_integrations",
    "builders",
    "integration_types",
]
