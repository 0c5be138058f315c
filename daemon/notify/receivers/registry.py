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
from collections.abc import Callable, Mapping
from types import ModuleType
from typing import TYPE_CHECKING

from daemon.config.model import IntegrationConfig

if TYPE_CHECKING:
    from daemon.notify.pipeline import Integration
    from daemon.notify.receivers.base import IntegrationEnv

BuildFn = Callable[[IntegrationConfig, int, "IntegrationEnv"], "Integration"]

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


__all__ = ["BuildFn", "build_integration", "builders", "integration_types"]
