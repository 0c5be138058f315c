"""The Webex integration: Alertmanager 0.25's message body, POSTed as JSON.

Body: ``{"markdown":…,"roomId":…}`` (``roomId`` omitted when empty) to ``api_url``
with ``http_config.authorization`` (required by the config). Webex takes at most 7439
bytes of markdown: with ``split_long_messages`` (default on) a longer message goes out
as several; without it, it is truncated like Alertmanager's (``…``).

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
    fit_message,
    post_each,
)
from daemon.notify.receivers.base import ConfiguredIntegration

INTEGRATION_TYPE = "webex"
API_URL = "https://webexapis.com/v1/messages"
MAX_MESSAGE_BYTES = 7439


def encode(markdown: str, room_id: str) -> bytes:
    """One message body, as Go's encoder writes it."""
    fields = [("markdown", gojson.string(markdown))]
    if room_id:
        fields.append(("roomId", gojson.string(room_id)))
    return (gojson.obj(fields) + "\n").encode()


@attrs.define
class WebexIntegration(ConfiguredIntegration):
    """One ``webex_configs`` entry.

    Cancellation: a request in flight is abandoned with the caller's scope.
    """

    name: str = INTEGRATION_TYPE

    def bodies(self, ctx: NotifyContext, alerts: Sequence[Alert]) -> list[bytes]:
        """The request bodies of one notification."""
        message = FieldRenderer(self.env, ctx, alerts)(str(self.fields.get("message") or ""))
        room_id = str(self.fields.get("room_id") or "")
        parts = fit_message(self.fields, message, MAX_MESSAGE_BYTES, in_bytes=True)
        return [encode(part, room_id) for part in parts]

    async def notify(self, ctx: NotifyContext, alerts: Sequence[Alert]) -> None:
        """POST each body in order; raises ``NotifyError`` on the first failure."""
        url = str(self.fields.get("api_url") or API_URL)
        await post_each(self.env, url, self.bodies(ctx, alerts), self.fields)


build = WebexIntegration.from_config
