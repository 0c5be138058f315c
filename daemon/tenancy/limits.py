"""Per-tenant limits, with Grafana Mimir's names and meaning (``pkg/util/validation/limits.go``).

The tenancy file sets them under ``default_limits:`` and each tenant's ``limits:``, by
Mimir's full names (``alertmanager_max_alerts_count``, ...). :class:`TenantLimits`
holds them without the ``alertmanager_`` prefix; that shorter name is also the
``limit`` label of ``tocsin_tenant_limit_exceeded_total``.

Rules:

* Every count and size is an int, and 0 means unlimited (as in Mimir).
* ``notification_rate_limit`` is notifications per second for each integration type
  (``webhook``, ``email``, ...) of the tenant, 0 meaning unlimited;
  ``notification_rate_limit_per_integration`` overrides it for the integrations it
  names. A negative rate lets no notification through, as in Mimir. The burst is the
  rate rounded down, at least 1 (Mimir's ``NotificationBurstSize``).
* A tenant's ``limits:`` override ``default_limits:`` key by key; a per-integration map
  replaces the default map whole.
* Alert sizes are Mimir's: the bytes of every label and annotation name and value,
  plus the generator URL. Re-posting a stored alert is an update: it never counts as
  one more alert, and only its change in size counts.

Where each limit is enforced is listed in README's Multi-tenancy section; this module
holds only the values, the parser and the pure decisions.

Pure: no trio, no I/O.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import math
from collections.abc import Iterable, Mapping
from typing import Any, TypeAlias

from prometheus_client import Counter

from daemon import metrics
from daemon.alert import Alert

Network: TypeAlias = ipaddress.IPv4Network | ipaddress.IPv6Network

#: Mimir's key prefix; :class:`TenantLimits` fields and the metric's label go without it.
PREFIX = "alertmanager_"

limit_exceeded_total = Counter(
    "tocsin_tenant_limit_exceeded",
    "Requests refused, alerts not grouped and notifications dropped because a tenant "
    "reached one of its limits (Mimir's limit name without the alertmanager_ prefix).",
    ["tenant", "limit"],
    registry=metrics.REGISTRY,
)


def count_breach(tenant: str | None, limit: str) -> None:
    """Count one breach of ``limit`` (a :class:`TenantLimits` field name)."""
    limit_exceeded_total.labels(tenant or "", limit).inc()


class LimitsError(ValueError):
    """A limits mapping that cannot be used; the message names the key and where it is."""


class LimitExceeded(Exception):
    """A request that would take a tenant past a limit; nothing of it was applied.

    ``limit`` is the :class:`TenantLimits` field name, ``str()`` the message for the
    client.
    """

    def __init__(self, limit: str, message: str) -> None:
        super().__init__(message)
        self.limit = limit
        self.message = message

    def __str__(self) -> str:
        return self.message


@dataclasses.dataclass(frozen=True, slots=True)
class TenantLimits:
    """One tenant's limits; 0 (and empty) means unlimited."""

    notification_rate_limit: float = 0.0
    notification_rate_limit_per_integration: Mapping[str, float] = dataclasses.field(
        default_factory=dict
    )
    max_config_size_bytes: int = 0
    max_templates_count: int = 0
    max_template_size_bytes: int = 0
    max_silences_count: int = 0
    max_silence_size_bytes: int = 0
    max_dispatcher_aggregation_groups: int = 0
    max_alerts_count: int = 0
    max_alerts_size_bytes: int = 0
    receivers_firewall_block_cidr_networks: tuple[Network, ...] = ()
    receivers_firewall_block_private_addresses: bool = False

    def notification_rate(self, integration: str) -> float:
        """Notifications per second allowed for ``integration`` (0: unlimited)."""
        return self.notification_rate_limit_per_integration.get(
            integration, self.notification_rate_limit
        )

    @property
    def limits_notifications(self) -> bool:
        return bool(self.notification_rate_limit or self.notification_rate_limit_per_integration)

    @property
    def has_firewall(self) -> bool:
        return bool(
            self.receivers_firewall_block_cidr_networks
            or self.receivers_firewall_block_private_addresses
        )


UNLIMITED = TenantLimits()
_FIELDS = frozenset(f.name for f in dataclasses.fields(TenantLimits))


def _int(key: str, value: Any, where: str) -> int:
    # bool is an int in Python; `true` is no size.
    if isinstance(value, bool) or not isinstance(value, int):
        raise LimitsError(f"{where}: {key}: want a whole number, got {value!r}")
    if value < 0:
        raise LimitsError(f"{where}: {key}: must not be negative (0 means unlimited), got {value}")
    return value


def _rate(key: str, value: Any, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise LimitsError(
            f"{where}: {key}: want a number of notifications per second, got {value!r}"
        )
    rate = float(value)
    if math.isnan(rate):
        raise LimitsError(f"{where}: {key}: want a number of notifications per second, got NaN")
    return rate


def _networks(key: str, value: Any, where: str) -> tuple[Network, ...]:
    # Mimir's runtime config spells the list as one comma-separated string; accept both.
    items: Iterable[Any]
    if isinstance(value, str):
        items = [part for part in (p.strip() for p in value.split(",")) if part]
    elif isinstance(value, list):
        items = value
    else:
        raise LimitsError(f"{where}: {key}: want a list of CIDR strings, got {value!r}")
    networks = []
    for item in items:
        if not isinstance(item, str):
            raise LimitsError(f"{where}: {key}: want a CIDR string, got {item!r}")
        try:
            networks.append(ipaddress.ip_network(item.strip(), strict=False))
        except ValueError as exc:
            raise LimitsError(f"{where}: {key}: {item!r} is not a CIDR network: {exc}") from None
    return tuple(networks)


def parse_limits(raw: Mapping[str, Any], *, defaults: TenantLimits, where: str) -> TenantLimits:
    """``defaults`` overridden by ``raw`` (Mimir's full key names).

    Error handling: :class:`LimitsError` naming the key and ``where`` for an unknown
    key or a value of the wrong kind.
    """
    if not isinstance(raw, Mapping):
        raise LimitsError(f"{where}: want a mapping of Mimir limit names, got {raw!r}")
    changes: dict[str, Any] = {}
    for key, value in raw.items():
        name = key[len(PREFIX) :] if isinstance(key, str) and key.startswith(PREFIX) else None
        if name is None or name not in _FIELDS:
            known = ", ".join(PREFIX + f for f in sorted(_FIELDS))
            raise LimitsError(f"{where}: unknown limit {key!r} (known: {known})")
        if name == "notification_rate_limit":
            changes[name] = _rate(key, value, where)
        elif name == "notification_rate_limit_per_integration":
            if value is None:
                value = {}
            if not isinstance(value, Mapping):
                raise LimitsError(
                    f"{where}: {key}: want a mapping of integration to rate, got {value!r}"
                )
            rates = {}
            for integration, rate in value.items():
                if integration not in metrics.INTEGRATIONS:
                    raise LimitsError(
                        f"{where}: {key}: unknown integration {integration!r} "
                        f"(known: {', '.join(metrics.INTEGRATIONS)})"
                    )
                rates[integration] = _rate(f"{key}.{integration}", rate, where)
            changes[name] = rates
        elif name == "receivers_firewall_block_cidr_networks":
            changes[name] = _networks(key, value, where)
        elif name == "receivers_firewall_block_private_addresses":
            if not isinstance(value, bool):
                raise LimitsError(f"{where}: {key}: want true or false, got {value!r}")
            changes[name] = value
        else:
            changes[name] = _int(key, value, where)
    return dataclasses.replace(defaults, **changes)


def check_config_limits(
    limits: TenantLimits, config_text: str, templates: Mapping[str, str]
) -> str | None:
    """The 400 message for a tenant config past its size or template limits, else None.

    Sizes are bytes of UTF-8, as Mimir measures Go strings.
    """
    size = len(config_text.encode())
    if limits.max_config_size_bytes and size > limits.max_config_size_bytes:
        return (
            f"Alertmanager configuration is too big: {size} bytes "
            f"(limit: {limits.max_config_size_bytes} bytes)"
        )
    if limits.max_templates_count and len(templates) > limits.max_templates_count:
        return (
            f"too many templates in the configuration: {len(templates)} "
            f"(limit: {limits.max_templates_count})"
        )
    if limits.max_template_size_bytes:
        for name in sorted(templates):
            size = len(templates[name].encode())
            if size > limits.max_template_size_bytes:
                return (
                    f"template {name} is too big: {size} bytes "
                    f"(limit: {limits.max_template_size_bytes} bytes)"
                )
    return None


def config_limit_breached(message: str) -> str:
    """Which limit a :func:`check_config_limits` message is about (for the metric)."""
    if message.startswith("Alertmanager configuration"):
        return "max_config_size_bytes"
    if message.startswith("too many templates"):
        return "max_templates_count"
    return "max_template_size_bytes"


def _bytes(text: str) -> int:
    return len(text) if text.isascii() else len(text.encode())


def alert_size(alert: Alert) -> int:
    """Mimir's size of an alert: label and annotation names and values, generator URL."""
    size = _bytes(alert.generator_url)
    for name, value in alert.labels.items():
        size += _bytes(name) + _bytes(value)
    for name, value in alert.annotations.items():
        size += _bytes(name) + _bytes(value)
    return size


class AlertsLedger:
    """The count and total size of one store's alerts, to decide a batch whole.

    The owner calls :meth:`admit` before storing a batch, :meth:`stored` with what it
    stored, and :meth:`forget` with what garbage collection removed.
    """

    __slots__ = ("_sizes", "total")

    def __init__(self) -> None:
        self._sizes: dict[int, int] = {}
        self.total = 0

    def __len__(self) -> int:
        return len(self._sizes)

    def admit(self, limits: TenantLimits, alerts: Iterable[Alert]) -> None:
        """Raise :class:`LimitExceeded` if storing ``alerts`` breaks a limit; changes nothing."""
        max_count, max_bytes = limits.max_alerts_count, limits.max_alerts_size_bytes
        if not max_count and not max_bytes:
            return
        sizes = self._sizes
        count, total = len(sizes), self.total
        # A batch may post one fingerprint twice: the later copy is an update.
        batch: dict[int, int] = {}
        for alert in alerts:
            fp = alert.fingerprint
            size = alert_size(alert)
            if max_bytes and size > max_bytes:
                raise LimitExceeded(
                    "max_alerts_size_bytes",
                    f"alert {alert.labels.get('alertname', '')!r} is too big: {size} bytes "
                    f"(limit for all alerts: {max_bytes} bytes)",
                )
            old = batch.get(fp, sizes.get(fp))
            if old is None:
                count += 1
                old = 0
            total += size - old
            batch[fp] = size
        if max_count and count > max_count and count > len(sizes):
            raise LimitExceeded(
                "max_alerts_count",
                f"too many alerts: storing this batch would make {count} (limit: {max_count})",
            )
        if max_bytes and total > max_bytes and total > self.total:
            raise LimitExceeded(
                "max_alerts_size_bytes",
                f"alerts too big: storing this batch would make {total} bytes "
                f"(limit: {max_bytes} bytes)",
            )

    def stored(self, alerts: Iterable[Alert]) -> None:
        sizes = self._sizes
        for alert in alerts:
            size = alert_size(alert)
            self.total += size - sizes.get(alert.fingerprint, 0)
            sizes[alert.fingerprint] = size

    def forget(self, alerts: Iterable[Alert]) -> None:
        sizes = self._sizes
        for alert in alerts:
            self.total -= sizes.pop(alert.fingerprint, 0)


__all__ = [
    "UNLIMITED",
    "AlertsLedger",
    "LimitExceeded",
    "LimitsError",
    "TenantLimits",
    "alert_size",
    "check_config_limits",
    "config_limit_breached",
    "count_breach",
    "parse_limits",
]
