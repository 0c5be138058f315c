"""The Telegram integration: ``sendMessage`` as Alertmanager 0.25's bot client sends it.

``POST <api_url>/bot<token>/sendMessage`` with a JSON object of string values, keys
sorted (the bot library encodes a ``map[string]string``): ``chat_id``,
``disable_notification`` (only when set), ``disable_web_page_preview`` ``"true"``,
``message_thread_id`` (only when set: a forum topic), ``parse_mode`` (omitted when
empty) and ``text``. With ``parse_mode: HTML`` the message renders with HTML escaping,
as upstream's. The User-Agent is Go's default, as the bot library does not set one.

A message over 4096 runes is split into several messages (``split_long_messages``,
default on) or truncated with ``…`` as Alertmanager does.

Error handling: any 2xx whose JSON reply is not ``"ok": false`` succeeds; 5xx and
transport errors are retryable; everything else is permanent. The URL holds the bot
token, so it never appears in errors.
"""

from __future__ import annotations

import json
from collections.abc import Sequence

import attrs

from daemon.alert import Alert
from daemon.notify import gojson
from daemon.notify.context import NotifyContext
from daemon.notify.receivers._http import (
    FieldRenderer,
    HTTPReply,
    fit_message,
    http_config,
    post_json,
    read_key_file,
)
from daemon.notify.receivers.base import ConfiguredIntegration
from daemon.notify.retry import NotifyError

INTEGRATION_TYPE = "telegram"
API_URL = "https://api.telegram.org"
MAX_MESSAGE_RUNES = 4096
GO_USER_AGENT = "Go-http-client/1.1"


def encode(params: dict[str, str]) -> bytes:
    """A ``map[string]string`` as Go encodes it: keys sorted, trailing newline."""
    return (gojson.obj([(k, gojson.string(params[k])) for k in sorted(params)]) + "\n").encode()


def check_reply(reply: HTTPReply) -> None:
    """A 2xx reply saying ``"ok": false`` is a permanent failure."""
    try:
        parsed = json.loads(reply.body)
    except ValueError:
        return
    if isinstance(parsed, dict) and parsed.get("ok") is False:
        description = parsed.get("description") or "unknown error"
        raise NotifyError(f"telegram: {description}", retryable=False)


@attrs.define
class TelegramIntegration(ConfiguredIntegration):
    """One ``telegram_configs`` entry.

    Cancellation: a request in flight is abandoned with the caller's scope.
    """

    name: str = INTEGRATION_TYPE

    def bodies(self, ctx: NotifyContext, alerts: Sequence[Alert]) -> list[bytes]:
        """The request bodies of one notification."""
        f = self.fields
        parse_mode = str(f.get("parse_mode") or "")
        text = FieldRenderer(self.env, ctx, alerts)(
            str(f.get("message") or ""), html=parse_mode == "HTML"
        )
        parts = fit_message(f, text, MAX_MESSAGE_RUNES, in_bytes=False)
        base = {"chat_id": str(f.get("chat_id") or 0), "disable_web_page_preview": "true"}
        if f.get("disable_notifications"):
            base["disable_notification"] = "true"
        if f.get("message_thread_id"):
            base["message_thread_id"] = str(f["message_thread_id"])
        if parse_mode:
            base["parse_mode"] = parse_mode
        return [encode({**base, "text": part}) for part in parts]

    async def notify(self, ctx: NotifyContext, alerts: Sequence[Alert]) -> None:
        """POST each message in order; raises ``NotifyError`` on the first failure."""
        token = str(self.fields.get("bot_token") or "")
        if not token and self.fields.get("bot_token_file"):
            token = await read_key_file(str(self.fields["bot_token_file"]), "bot_token")
        base = str(self.fields.get("api_url") or API_URL).rstrip("/")
        url = f"{base}/bot{token}/sendMessage"
        for body in self.bodies(ctx, alerts):
            await post_json(
                self.env,
                url,
                body,
                http_config(self.fields),
                headers={"User-Agent": GO_USER_AGENT},
                check=check_reply,
            )


build = TelegramIntegration.from_config
