"""The Microsoft Teams integration: Alertmanager 0.26's MessageCard, POSTed as JSON.

Body: ``{"@context":"http://schema.org/extensions","type":"MessageCard","title":…,
"text":…,"themeColor":…}`` with colour ``8C1A1A`` firing and ``2DC72D`` resolved.
A ``summary``, when configured non-empty, is added after ``themeColor`` (0.27 sends
it; 0.26 has no such field). Teams cards take about 28 KB: with
``split_long_messages`` (default on) a longer text goes out as several cards.

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
    utf8_bytes,
)
from daemon.notify.receivers.base import ConfiguredIntegration

INTEGRATION_TYPE = "msteams"
COLOR_RED = "8C1A1A"
COLOR_GREEN = "2DC72D"
MAX_TEXT_BYTES = 28000


def encode(title: str, text: str, color: str, summary: str = "") -> bytes:
    """One card, as Go's encoder writes it."""
    fields = [
        ("@context", gojson.string("http://schema.org/extensions")),
        ("type", gojson.string("MessageCard")),
        ("title", gojson.string(title)),
        ("text", gojson.string(text)),
        ("themeColor", gojson.string(color)),
    ]
    if summary:
        fields.append(("summary", gojson.string(summary)))
    return (gojson.obj(fields) + "\n").encode()


@attrs.define
class MSTeamsIntegration(ConfiguredIntegration):
    """One ``msteams_configs`` entry.

    Cancellation: a request in flight is abandoned with the caller's scope.
    """

    name: str = INTEGRATION_TYPE

    def bodies(self, ctx: NotifyContext, alerts: Sequence[Alert]) -> list[bytes]:
        """The request bodies of one notification."""
        tmpl = FieldRenderer(self.env, ctx, alerts)
        title = tmpl(str(self.fields.get("title") or ""))
        text = tmpl(str(self.fields.get("text") or ""))
        # The config default for summary is a template; only an explicit one is sent.
        summary_src = str(self.fields.get("summary") or "")
        summary = "" if "msteams.default.summary" in summary_src else tmpl(summary_src)
        color = COLOR_RED if group_status(alerts, ctx.now) == "firing" else COLOR_GREEN
        parts = [text]
        if split_enabled(self.fields):
            parts = split_message(text, MAX_TEXT_BYTES, utf8_bytes)
        return [encode(title, part, color, summary) for part in parts]

    async def notify(self, ctx: NotifyContext, alerts: Sequence[Alert]) -> None:
        """POST each body in order; raises ``NotifyError`` on the first failure."""
        url = await inline_or_file(self.fields, "webhook_url", "webhook_url")
        await post_each(self.env, url, self.bodies(ctx, alerts), self.fields)


build = MSTeamsIntegration.from_config
