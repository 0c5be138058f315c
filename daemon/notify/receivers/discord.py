"""The Discord integration: Alertmanager 0.25's webhook body, POSTed as JSON.

Body: ``{"content":"","embeds":[{"title":…,"description":…,"color":…}]}`` with colour
0x992D22 when the group fires and 0x2ECC71 when resolved. Discord caps an embed title
at 256 and a description at 4096 runes: the title is truncated with ``…`` and, with
``split_long_messages`` (default on), a long description goes out as several messages
(Alertmanager 0.25 sends both whole and Discord rejects them).

Error handling: see :mod:`._http`.
"""

from __future__ import annotations

from collections.abc import Sequence

import attrs

from daemon.alert import Alert
from daemon.notify import gojson
from daemon.notify.context import NotifyContext
from daemon.notify.receivers._http import (
    FieldRenderer,
    group_status,
    inline_or_file,
    post_each,
    split_enabled,
    split_message,
    truncate_in_runes,
)
from daemon.notify.receivers.base import ConfiguredIntegration

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
class DiscordIntegration(ConfiguredIntegration):
    """One ``discord_configs`` entry.

    Cancellation: a request in flight is abandoned with the caller's scope.
    """

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
        url = await inline_or_file(self.fields, "webhook_url", "webhook_url")
        await post_each(self.env, url, self.bodies(ctx, alerts), self.fields)


build = DiscordIntegration.from_config
