"""The VictorOps (Splunk On-Call) REST integration, as Alertmanager 0.25 sends it.

One POST to ``<api_url><api_key>/<routing_key>`` with a flat JSON object (a Go
``map[string]string``, so keys sorted): ``entity_display_name``, ``entity_id`` (SHA-256
hex of the group key), ``message_type``, ``monitoring_tool``, ``state_message`` (cut
to 20480 runes with ``…``) and the rendered ``custom_fields``. A resolved group sends
``RECOVERY``; a firing one sends the rendered ``message_type`` when it is ``INFO``,
``WARNING`` or ``CRITICAL``, else ``CRITICAL``.

Error handling: 2xx is success; 5xx and transport errors are retryable; other statuses
are permanent. A template error in the routing key is permanent, but, as upstream,
one in the body is reported retryable.
"""

from __future__ import annotations

import urllib.parse
from collections.abc import Sequence

import attrs
import structlog

from daemon.alert import Alert
from daemon.notify import gojson
from daemon.notify.context import NotifyContext
from daemon.notify.receivers._http import (
    FieldRenderer,
    group_status,
    http_config,
    inline_or_file,
    key_hash,
    post_json,
    truncate_in_runes,
)
from daemon.notify.receivers.base import ConfiguredIntegration
from daemon.notify.retry import NotifyError

INTEGRATION_TYPE = "victorops"
MAX_MESSAGE_RUNES = 20480
ALLOWED_MESSAGE_TYPES = frozenset({"INFO", "WARNING", "CRITICAL"})
#: Characters Go's ``URL.EscapedPath`` leaves alone besides letters and digits.
_PATH_SAFE = "/-_.~$&+,:;=@!*'()"

log = structlog.get_logger(__name__)


@attrs.define
class VictorOpsIntegration(ConfiguredIntegration):
    """One ``victorops_configs`` entry.

    Cancellation: the request is abandoned when the caller's scope is cancelled.
    """

    name: str = INTEGRATION_TYPE

    async def url(self, ctx: NotifyContext, alerts: Sequence[Alert]) -> str:
        """The endpoint: the API URL's path extended by ``<api key>/<routing key>``."""
        key = await inline_or_file(self.fields, "api_key", "API key")
        try:
            routing = FieldRenderer(self.env, ctx, alerts)(
                str(self.fields.get("routing_key") or "")
            )
        except NotifyError as exc:
            raise NotifyError(f"templating error: {exc}", retryable=False) from None
        parts = urllib.parse.urlsplit(str(self.fields.get("api_url") or ""))
        path = urllib.parse.unquote(parts.path) + f"{key}/{routing}"
        return urllib.parse.urlunsplit(
            (
                parts.scheme,
                parts.netloc,
                urllib.parse.quote(path, safe=_PATH_SAFE),
                parts.query,
                parts.fragment,
            )
        )

    def build_body(self, ctx: NotifyContext, alerts: Sequence[Alert]) -> bytes:
        """The JSON body for this notification."""
        f = self.fields
        tmpl = FieldRenderer(self.env, ctx, alerts)
        try:
            message_type = tmpl(str(f.get("message_type") or ""))
            state_message = tmpl(str(f.get("state_message") or ""))
            if group_status(alerts, ctx.now) == "resolved":
                message_type = "RECOVERY"
            elif message_type not in ALLOWED_MESSAGE_TYPES:
                message_type = "CRITICAL"
            state_message, cut = truncate_in_runes(state_message, MAX_MESSAGE_RUNES)
            if cut:
                log.warning("notify.truncated", integration=self.name, field="state_message")
            msg = {
                "message_type": message_type,
                "entity_id": key_hash(ctx.group_key),
                "entity_display_name": tmpl(str(f.get("entity_display_name") or "")),
                "state_message": state_message,
                "monitoring_tool": tmpl(str(f.get("monitoring_tool") or "")),
            }
            for key, value in (f.get("custom_fields") or {}).items():
                msg[key] = tmpl(value)
        except NotifyError as exc:
            raise NotifyError(f"templating error: {exc}", retryable=True) from None
        return (gojson.string_map(msg) + "\n").encode()

    async def notify(self, ctx: NotifyContext, alerts: Sequence[Alert]) -> None:
        """POST the event; raises :class:`NotifyError` on failure."""
        url = await self.url(ctx, alerts)
        body = self.build_body(ctx, alerts)
        await post_json(self.env, url, body, http_config(self.fields))


build = VictorOpsIntegration.from_config


__all__ = ["INTEGRATION_TYPE", "VictorOpsIntegration", "build"]
