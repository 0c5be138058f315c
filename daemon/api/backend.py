"""What the HTTP API needs from the rest of the daemon: one Protocol the app implements.

The API never reaches into the dispatcher, silences or cluster directly; the
process shell (``daemon.app``) hands ``create_app`` one per instance
(:class:`daemon.instance.InstanceBackend`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Protocol, runtime_checkable

import attrs

from daemon.alert import Alert
from daemon.clock import Clock
from daemon.config.model import Config
from daemon.dispatch.snapshot import GroupSnapshot
from daemon.store import AlertStore


@attrs.frozen
class AlertStatus:
    """An alert's suppression status as of a query (spec §1.5)."""

    #: IDs of the active silences matching the alert, sorted.
    silenced_by: Sequence[str] = ()
    #: Fingerprint (16 hex) of one inhibiting alert, or empty.
    inhibited_by: Sequence[str] = ()

    @property
    def state(self) -> str:
        return "suppressed" if self.silenced_by or self.inhibited_by else "active"


#: Neither silenced nor inhibited (a frozen value, so one is shared).
UNSUPPRESSED = AlertStatus()


@runtime_checkable
class AdmitsAlerts(Protocol):
    """A backend with per-tenant alert limits (``daemon.instance.InstanceBackend``)."""

    def admit_alerts(self, alerts: Sequence[Alert]) -> bool:
        """Raise ``daemon.tenancy.limits.LimitExceeded`` if storing the whole batch would
        break a limit; changes nothing. True when limits are in force: the caller then
        stores the batch in one ``put_alerts`` call, so no other request's alerts come
        between this check and the store."""
        ...


_IMPLEMENTS: dict[tuple[type, type], bool] = {}


def implements(obj: object, protocol: type) -> bool:
    """``isinstance(obj, protocol)`` for a runtime-checkable Protocol, asked once per class.

    The check walks the Protocol's members with ``hasattr`` on every call: 8-18 us each,
    twice on every alert POST's way to the dispatcher. The backends implement these
    Protocols with methods and properties of their class, never per instance, so the
    first object of a class answers for the class.
    """
    key = (type(obj), protocol)
    found = _IMPLEMENTS.get(key)
    if found is None:
        found = _IMPLEMENTS[key] = isinstance(obj, protocol)
    return found


@runtime_checkable
class KnowsTenant(Protocol):
    """A backend that knows whose pipeline it is (``daemon.instance.InstanceBackend``,
    and, per request, ``daemon.api.tenancy.RequestBackend``), for the intake's metrics."""

    @property
    def tenant(self) -> str | None:
        """The tenant whose pipeline this is; None for the global one."""
        ...


class ApiBackend(Protocol):
    """The daemon as the API sees it. All calls are synchronous and cheap."""

    @property
    def config(self) -> Config:
        """The currently loaded configuration (re-read on every request: reloads swap it)."""
        ...

    @property
    def store(self) -> AlertStore:
        """The stored alerts, for reading; writes go through :meth:`put_alerts`."""
        ...

    def put_alerts(self, alerts: Sequence[Alert], now: int) -> None:
        """The one intake: store ``alerts`` and hand them to inhibition and dispatch."""
        ...

    @property
    def clock(self) -> Clock: ...

    @property
    def uptime(self) -> int:
        """Process start time, Unix nanoseconds."""
        ...

    @property
    def route_prefix(self) -> str:
        """``/`` or ``/some/prefix`` (no trailing slash), spec §1.1."""
        ...

    @property
    def version_info(self) -> Mapping[str, str]:
        """``branch, buildDate, buildUser, goVersion, revision, version`` for /status."""
        ...

    def receivers_for(self, labels: Mapping[str, str]) -> list[str]:
        """Receiver names of the routes the current tree matches, in match order."""
        ...

    def groups(self) -> list[GroupSnapshot]:
        """The dispatcher's aggregation groups right now."""
        ...

    def alert_status(self, alert: Alert, now: int) -> AlertStatus:
        """Run the inhibitor and silencer for ``alert`` now (updating markers) and report."""
        ...

    def cluster_status(self) -> Mapping[str, Any]:
        """``{"name"?: str, "status": str, "peers": [{"name", "address"}]}`` (spec §1.3)."""
        ...

    def ready(self) -> bool:
        """False makes ``/-/ready`` answer 503 (Alertmanager 0.25 is always ready)."""
        ...

    async def reload(self) -> str | None:
        """Reload the configuration; the error text, or None on success (for /-/reload)."""
        ...
