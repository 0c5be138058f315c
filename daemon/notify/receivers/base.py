"""The plug-in contract for integrations other than the webhook.

Each integration type lives in its own module ``daemon/notify/receivers/<type>.py``
that defines::

    INTEGRATION_TYPE = "slack"          # Alertmanager's integration name

    def build(config: IntegrationConfig, index: int, env: IntegrationEnv) -> Integration:
        ...

where ``Integration`` is the protocol in :mod:`daemon.notify.pipeline` (``name``,
``index``, ``send_resolved``, ``async notify(ctx, alerts)`` raising ``NotifyError``).
The registry discovers modules by that attribute, so adding a type touches no
shared file.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

import attrs
import httpx

from daemon.alert import Alert
from daemon.clock import Clock
from daemon.notify.context import NotifyContext


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
    """What every integration may use, shared by all integrations of one config."""

    http: httpx.AsyncClient
    templater: Templater
    external_url: str
    clock: Clock
    receiver: str
