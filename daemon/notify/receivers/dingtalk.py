"""The DingTalk group robot (KubeSphere's channel; Alertmanager has none).

``POST <webhook_url>[&timestamp=<ms>&sign=<sig>]`` where, when ``secret`` is set,
``sig`` = base64(HMAC-SHA256(key=secret, msg="<ms>\\n<secret>")), percent-encoded
exactly once (KubeSphere encodes it twice). Body: ``{"msgtype":"text","text":
{"content":…},"at":{…}}`` or, with ``message_type: markdown``, ``{"msgtype":
"markdown","markdown":{"title":…,"text":…},"at":{…}}``; ``at`` carries
``atMobiles``, ``atUserIds`` and ``isAtAll``. Configured ``keywords`` are appended on
a ``[Keywords]`` line (robots with keyword security reject messages without one);
markdown messages also name the mentioned mobiles (``@<mobile>``), which DingTalk
needs to highlight them.

A message over ``max_message_bytes`` (default 19960; DingTalk's cap is 20000) is sent
as several messages when ``split_long_messages`` (default on), else truncated.

Error handling: non-2xx as in :mod:`._http`; a 200 reply with ``errcode`` non-zero
fails, retryable only for the rate limit (130101).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Sequence

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
    with_query,
)
from daemon.notify.receivers.base import ConfiguredIntegration

INTEGRATION_TYPE = "dingtalk"
MAX_MESSAGE_BYTES = 19960
RATE_LIMITED = 130101
_NS_PER_MS = 1_000_000

check_reply = bot_reply_checker(("errcode",), {RATE_LIMITED}, "dingtalk")


def sign(timestamp_ms: int, secret: str) -> str:
    """DingTalk's signature of a request at ``timestamp_ms`` (base64, not URL-encoded)."""
    message = f"{timestamp_ms}\n{secret}".encode()
    digest = hmac.new(secret.encode(), message, hashlib.sha256).digest()
    return base64.b64encode(digest).decode()


def signed_url(url: str, secret: str, timestamp_ms: int) -> str:
    """The webhook URL with ``timestamp`` and ``sign`` when a secret is configured."""
    if not secret:
        return url
    return with_query(url, [("timestamp", str(timestamp_ms)), ("sign", sign(timestamp_ms, secret))])


@attrs.define
class DingTalkIntegration(ConfiguredIntegration):
    """One ``dingtalk_configs`` entry.

    Cancellation: a request in flight is abandoned with the caller's scope.
    """

    name: str = INTEGRATION_TYPE

    def bodies(self, ctx: NotifyContext, alerts: Sequence[Alert]) -> list[bytes]:
        """The request bodies of one notification."""
        f = self.fields
        tmpl = FieldRenderer(self.env, ctx, alerts)
        text = tmpl(str(f.get("message") or ""))
        limit = int(f.get("max_message_bytes") or MAX_MESSAGE_BYTES)
        mobiles = string_list(f.get("at_mobiles"))
        at = {
            "atMobiles": mobiles,
            "atUserIds": string_list(f.get("at_user_ids")),
            "isAtAll": bool(f.get("at_all")),
        }
        markdown = f.get("message_type") == "markdown"
        suffix = append_keywords("", string_list(f.get("keywords")))
        if markdown and mobiles:
            suffix += "\n" + " ".join(f"@{m}" for m in mobiles)
        room = limit - utf8_bytes(suffix)
        parts = fit_message(f, text, room, in_bytes=True)
        title = tmpl(str(f.get("title") or "")) if markdown else ""
        out = []
        for part in parts:
            content = part + suffix
            if markdown:
                body = {"msgtype": "markdown", "markdown": {"title": title, "text": content}}
            else:
                body = {"msgtype": "text", "text": {"content": content}}
            out.append(json_body({**body, "at": at}))
        return out

    async def notify(self, ctx: NotifyContext, alerts: Sequence[Alert]) -> None:
        """POST each message in order; raises ``NotifyError`` on the first failure."""
        url = await inline_or_file(self.fields, "webhook_url", "webhook_url")
        secret = str(self.fields.get("secret") or "")
        for body in self.bodies(ctx, alerts):
            # Signatures expire after an hour: sign each request when it is sent.
            target = signed_url(url, secret, self.env.clock.now() // _NS_PER_MS)
            await post_json(self.env, target, body, http_config(self.fields), check=check_reply)


build = DingTalkIntegration.from_config
