"""The Feishu (Lark) custom bot (KubeSphere's channel; Alertmanager has none).

``POST <webhook_url>`` with ``{"timestamp":"<s>","sign":…,"msg_type":"text",
"content":{"text":…}}``; ``timestamp`` and ``sign`` only when ``secret`` is set, with
``sign`` = base64(HMAC-SHA256(key="<s>\\n<secret>", msg="")) as Feishu specifies.
Configured ``keywords`` are appended on a ``[Keywords]`` line.

A message over ``max_message_bytes`` (default 20000; Feishu rejects bodies over
about 20 KB) is sent as several messages when ``split_long_messages`` (default on).

Error handling: non-2xx as in :mod:`._http`; a reply whose ``code`` (or older
``StatusCode``) is non-zero fails, retryable only for the rate limit (9499).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Sequence
from typing import Any

import attrs

from daemon.alert import Alert
from daemon.notify.context import NotifyContext
from daemon.notify.receivers._http import (
    FieldRenderer,
    append_keywords,
    bot_reply_checker,
    fit_message,
    http_config,
    inline_or_file,
    json_body,
    post_json,
    string_list,
    utf8_bytes,
)
from daemon.notify.receivers.base import ConfiguredIntegration

INTEGRATION_TYPE = "feishu"
MAX_MESSAGE_BYTES = 20000
RATE_LIMITED = 9499
_NS_PER_SECOND = 1_000_000_000

check_reply = bot_reply_checker(("code", "StatusCode"), {RATE_LIMITED}, "feishu")


def sign(timestamp_s: int, secret: str) -> str:
    """Feishu's signature: the key is ``"<timestamp>\\n<secret>"``, the message empty."""
    key = f"{timestamp_s}\n{secret}".encode()
    return base64.b64encode(hmac.new(key, b"", hashlib.sha256).digest()).decode()


@attrs.define
class FeishuIntegration(ConfiguredIntegration):
    """One ``feishu_configs`` entry.

    Cancellation: a request in flight is abandoned with the caller's scope.
    """

    name: str = INTEGRATION_TYPE

    def texts(self, ctx: NotifyContext, alerts: Sequence[Alert]) -> list[str]:
        """The message texts of one notification (keywords included)."""
        f = self.fields
        text = FieldRenderer(self.env, ctx, alerts)(str(f.get("message") or ""))
        suffix = append_keywords("", string_list(f.get("keywords")))
        room = int(f.get("max_message_bytes") or MAX_MESSAGE_BYTES) - utf8_bytes(suffix)
        parts = fit_message(f, text, room, in_bytes=True)
        return [p + suffix for p in parts]

    def body(self, text: str, now: int) -> bytes:
        """One request body, signed at ``now`` when a secret is configured."""
        secret = str(self.fields.get("secret") or "")
        head: dict[str, Any] = {}
        if secret:
            ts = now // _NS_PER_SECOND
            head = {"timestamp": str(ts), "sign": sign(ts, secret)}
        return json_body({**head, "msg_type": "text", "content": {"text": text}})

    async def notify(self, ctx: NotifyContext, alerts: Sequence[Alert]) -> None:
        """POST each message in order; raises ``NotifyError`` on the first failure."""
        url = await inline_or_file(self.fields, "webhook_url", "webhook_url")
        for text in self.texts(ctx, alerts):
            body = self.body(text, self.env.clock.now())
            await post_json(self.env, url, body, http_config(self.fields), check=check_reply)


build = FeishuIntegration.from_config
