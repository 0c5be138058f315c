"""The plug-in contract for integrations other than the webhook.

Each integration type lives in its own module ``daemon/notify/receivers/<type>.py``
that defines::

    INTEGRATION_TYPE = "slack"          # Alertmanager's integration name

    def build(config: IntegrationConfig, index: int, env: IntegrationEnv) -> Integration:
        ...

where :class:`Integration` is the protocol below (``name``,
``index``, ``send_resolved``, ``async notify(ctx, alerts)`` raising ``NotifyError``).
The registry discovers modules by that attribute, so adding a type touches no
shared file. Most integrations subclass :class:`ConfiguredIntegration` and set
``build = TheIntegration.from_config``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol, Self

import attrs

from daemon.alert import Alert
from daemon.clock import Clock
from daemon.config.model import IntegrationConfig
from daemon.notify.context import NotifyContext
from daemon.notify.http1 import HttpSender
from daemon.notify.httpclient import as_sender


class Integration(Protocol):
    """One configured integration (e.g. one ``webhook_configs`` entry).

    ``notify`` returns on success and raises :class:`~daemon.notify.retry.NotifyError`
    otherwise.
    """

    @property
    def name(self) -> str: ...

    @property
    def index(self) -> int: ...

    @property
    def send_resolved(self) -> bool: ...

    async def notify(self, ctx: NotifyContext, alerts: Sequence[Alert]) -> None: ...


class Templater(Protocol):
    """Renders one config field as Alertmanager does (an anonymous template executed
    in a clone of the loaded template set, with the notification's data)."""

    def render(
        self, text: str, ctx: NotifyContext, alerts: Sequence[Alert], *, html: bool = False
    ) -> str:
        """Raise ``daemon.template.errors.TemplateError`` on failure."""
        ...


@attrs.frozen
class IntegrationEnv:
    """What every integration may use, shared by all integrations of one config.

    ``http`` accepts an ``httpx.AsyncClient`` too, wrapped on the way in.
    """

    http: HttpSender = attrs.field(converter=as_sender)
    templater: Templater
    external_url: str
    clock: Clock
    receiver: str


@attrs.define
class ConfiguredIntegration:
    """The state every config-driven integration keeps: its entry's fields, its index
    among the receiver's entries of that type, the shared environment and
    ``send_resolved``.

    A subclass adds ``name: str = INTEGRATION_TYPE`` (after these fields, as it has a
    default) and its own ``notify``.
    """

    fields: dict[str, Any]
    index: int
    env: IntegrationEnv
    send_resolved: bool

    @classmethod
    def from_config(cls, config: IntegrationConfig, index: int, env: IntegrationEnv) -> Self:
        """The integration for one config entry (a module's ``build``)."""
        return cls(dict(config.fields), index, env, config.send_resolved)
