"""The Discord integration: Alertmanager 0.25's webhook body, POSTed as JSON.

Body: ``{"content":"","embeds":[{"title":…,"description":…,"color":…}]}`` with colour
0x992D22 when the group fires and 0x2ECC71 when resolved. Discord caps an embed title
at 256 and a description at 4096 runes: the title is truncated with ``…`` and, with
``split_long_messages`` (default on), a long description goes out as several messages
(Alertmanager 0.25 sends both whole and Discord rejects them).

Error handling: see :mod:`._chat`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import attrs

from daemon.alert import Alert
from daemon.config.model import IntegrationConfig
from daemon.notify import gojson
from daemon.notify.context import NotifyContext
from daemon.notify.receivers._chat import http_config, post_json, split_enabled, split_message
from daemon.notify.receivers.base import IntegrationEnv
from daemon.notify.receivers.pagerduty import (
    FieldRenderer,
    group_status,
    read_key_file,
    truncate_in_runes,
)

INTEGRATION_TYPE = "discord"
COLOR_RED = 0x992D22
COLOR_GREEN = 0x2ECC71
MAX_TITLE_RUNES = 256
MAX_DESCRIPTION_RUNES = 4096


def encode(title: str, description: str, color: int) -> bytes:
    """One webhook body, as Go's encoder writes it."""
    embed = gojson.obj(
        [
            ("title", gojson.string(title)),
            ("description", gojson.string(description)),
            ("color", str(color)),
        ]
    )
    return (gojson.obj([("content", '""'), ("embeds", f"[{embed}]")]) + "\n").encode()


@attrs.define
class DiscordIntegration:
    """One ``discord_configs`` entry.

    Cancellation: a request in flight is abandoned with the caller's scope.
    """

    fields: dict[str, Any]
    index: int
    env: IntegrationEnv
    send_resolved: bool
    name: str = INTEGRATION_TYPE

    def bodies(self, ctx: NotifyContext, alerts: Sequence[Alert]) -> list[bytes]:
        """The request bodies of one notification."""
        tmpl = FieldRenderer(self.env, ctx, alerts)
        title = tmpl(str(self.fields.get("title") or ""))
        description = tmpl(str(self.fields.get("message") or ""))
        color = COLOR_RED if group_status(alerts, ctx.now) == "firing" else COLOR_GREEN
        if not split_enabled(self.fields):
            return [encode(title, description, color)]
        title, _ = truncate_in_runes(title, MAX_TITLE_RUNES)
        parts = split_message(description, MAX_DESCRIPTION_RUNES)
        return [encode(title, part, color) for part in parts]

    async def notify(self, ctx: NotifyContext, alerts: Sequence[Alert]) -> None:
        """POST each body in order; raises ``NotifyError`` on the first failure."""
        url = str(self.fields.get("webhook_url") or "")
        if not url:
            url = await read_key_file(str(self.fields.get("webhook_url_file") or ""), "webhook_url")
        for body in self.bodies(ctx, alerts):
            await post_json(self.env, url, body, http_config(self.fields))


def build(config: IntegrationConfig, index: int, env: IntegrationEnv) -> DiscordIntegration:
    """The integration for one ``discord_configs`` entry."""
    return DiscordIntegration(dict(config.fields), index, env, config.send_resolved)
