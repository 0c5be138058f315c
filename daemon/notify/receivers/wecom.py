"""The WeCom (WeChat Work) group robot (KubeSphere's channel; Alertmanager has none).

``POST <webhook_url>`` (the URL carries the robot key) with ``{"msgtype":"text",
"text":{"content":…,"mentioned_list":[…],"mentioned_mobile_list":[…]}}`` or, with
``message_type: markdown``, ``{"msgtype":"markdown","markdown":{"content":…}}`` where
mentions are appended as ``<@userid>`` (markdown has no mention lists).

WeCom caps text at 2048 and markdown at 4096 bytes: longer messages are sent as
several when ``split_long_messages`` (default on), else truncated.

Error handling: non-2xx as in :mod:`._http`; a reply with ``errcode`` non-zero fails,
retryable only for the rate limit (45009).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import attrs

from daemon.alert import Alert
from daemon.notify.context import NotifyContext
from daemon.notify.receivers._http import (
    FieldRenderer,
    bot_reply_checker,
    fit_message,
    inline_or_file,
    json_body,
    post_each,
    string_list,
    utf8_bytes,
)
from daemon.notify.receivers.base import ConfiguredIntegration

INTEGRATION_TYPE = "wecom"
MAX_TEXT_BYTES = 2048
MAX_MARKDOWN_BYTES = 4096
RATE_LIMITED = 45009

check_reply = bot_reply_checker(("errcode",), {RATE_LIMITED}, "wecom")


@attrs.define
class WeComIntegration(ConfiguredIntegration):
    """One ``wecom_configs`` entry.

    Cancellation: a request in flight is abandoned with the caller's scope.
    """

    name: str = INTEGRATION_TYPE

    def bodies(self, ctx: NotifyContext, alerts: Sequence[Alert]) -> list[bytes]:
        """The request bodies of one notification."""
        f = self.fields
        text = FieldRenderer(self.env, ctx, alerts)(str(f.get("message") or ""))
        users = string_list(f.get("mentioned_list"))
        mobiles = string_list(f.get("mentioned_mobile_list"))
        markdown = f.get("message_type") == "markdown"
        suffix = ""
        if markdown and users:
            suffix = "\n" + "".join(f"<@{u}>" for u in users)
        limit = MAX_MARKDOWN_BYTES if markdown else MAX_TEXT_BYTES
        room = limit - utf8_bytes(suffix)
        parts = fit_message(f, text, room, in_bytes=True)
        out = []
        for part in parts:
            if markdown:
                body: dict[str, Any] = {
                    "msgtype": "markdown",
                    "markdown": {"content": part + suffix},
                }
            else:
                content: dict[str, Any] = {"content": part}
                if users:
                    content["mentioned_list"] = users
                if mobiles:
                    content["mentioned_mobile_list"] = mobiles
                body = {"msgtype": "text", "text": content}
            out.append(json_body(body))
        return out

    async def notify(self, ctx: NotifyContext, alerts: Sequence[Alert]) -> None:
        """POST each message in order; raises ``NotifyError`` on the first failure."""
        url = await inline_or_file(self.fields, "webhook_url", "webhook_url")
        await post_each(self.env, url, self.bodies(ctx, alerts), self.fields, check=check_reply)


build = WeComIntegration.from_config
