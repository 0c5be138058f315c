"""The Slack integration: Alertmanager 0.25's incoming-webhook body, POSTed as JSON.

Body (Go's encoding, key order of upstream's structs, trailing newline): ``channel``,
``username``, ``icon_emoji``, ``icon_url``, ``link_names`` (each omitted when empty)
and one attachment with ``title`` (≤1024 runes, then ``…``), ``title_link``,
``pretext``, ``text``, ``fallback``, ``callback_id``, ``fields``, ``actions``,
``image_url``, ``thumb_url``, ``footer``, ``color`` and ``mrkdwn_in`` (default
``fallback, pretext, text``). With ``split_long_messages`` (default on) an attachment
text over 8000 runes (Slack's own cut-off) goes out as several messages; Alertmanager
sends it whole.

Error handling: see :mod:`._http`; the URL is never in an error.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import attrs
import structlog

from daemon.alert import Alert
from daemon.gocompat.strconv import go_quote
from daemon.notify import gojson
from daemon.notify.context import NotifyContext
from daemon.notify.receivers._http import (
    FieldRenderer,
    http_config,
    inline_or_file,
    post_json,
    split_enabled,
    split_message,
    truncate_in_runes,
)
from daemon.notify.receivers.base import ConfiguredIntegration
from daemon.notify.retry import NotifyError

INTEGRATION_TYPE = "slack"
MAX_TITLE_RUNES = 1024
MAX_TEXT_RUNES = 8000
DEFAULT_MRKDWN_IN = ("fallback", "pretext", "text")

log = structlog.get_logger(__name__)


def _str(value: Any) -> str:
    return "" if value is None else str(value)


def _opt(out: list[tuple[str, str]], key: str, value: str) -> None:
    if value:
        out.append((key, gojson.string(value)))


def _strings(values: Sequence[str]) -> str:
    return "[" + ",".join(gojson.string(v) for v in values) + "]"


def encode_fields(fields: Sequence[tuple[str, str, bool]]) -> str:
    """``config.SlackField`` list: title, value (omitempty) and short (always set)."""
    items = []
    for title, value, short in fields:
        out: list[tuple[str, str]] = []
        _opt(out, "title", title)
        _opt(out, "value", value)
        out.append(("short", "true" if short else "false"))
        items.append(gojson.obj(out))
    return "[" + ",".join(items) + "]"


def encode_action(action: dict[str, Any]) -> str:
    """``config.SlackAction``, every key omitempty, ``confirm`` nested."""
    out: list[tuple[str, str]] = []
    for key in ("type", "text", "url", "style", "name", "value"):
        _opt(out, key, _str(action.get(key)))
    confirm = action.get("confirm")
    if isinstance(confirm, dict):
        inner: list[tuple[str, str]] = []
        for key in ("text", "title", "ok_text", "dismiss_text"):
            _opt(inner, key, _str(confirm.get(key)))
        out.append(("confirm", gojson.obj(inner)))
    return gojson.obj(out)


@attrs.define
class SlackIntegration(ConfiguredIntegration):
    """One ``slack_configs`` entry.

    Cancellation: a request in flight is abandoned with the caller's scope; messages of
    a split body already sent stay sent.
    """

    name: str = INTEGRATION_TYPE

    def bodies(self, ctx: NotifyContext, alerts: Sequence[Alert]) -> list[bytes]:
        """The request bodies of one notification (several when the text is split)."""
        f = self.fields
        tmpl = FieldRenderer(self.env, ctx, alerts)
        title, truncated = truncate_in_runes(tmpl(_str(f.get("title"))), MAX_TITLE_RUNES)
        if truncated:
            log.warning("notify.truncated", integration="slack", group_key=ctx.group_key)
        attachment_fields: list[tuple[str, str, bool]] = []
        for field in f.get("fields") or []:
            short = field.get("short")
            attachment_fields.append(
                (
                    tmpl(_str(field.get("title"))),
                    tmpl(_str(field.get("value"))),
                    bool(f.get("short_fields")) if short is None else bool(short),
                )
            )
        actions = []
        for action in f.get("actions") or []:
            rendered: dict[str, Any] = {
                k: tmpl(_str(action.get(k)))
                for k in ("type", "text", "url", "style", "name", "value")
            }
            confirm = action.get("confirm")
            if isinstance(confirm, dict):
                rendered["confirm"] = {
                    k: tmpl(_str(confirm.get(k)))
                    for k in ("title", "text", "ok_text", "dismiss_text")
                }
            actions.append(encode_action(rendered))
        title_link = tmpl(_str(f.get("title_link")))
        pretext = tmpl(_str(f.get("pretext")))
        text = tmpl(_str(f.get("text")))
        fallback = tmpl(_str(f.get("fallback")))
        callback_id = tmpl(_str(f.get("callback_id")))
        image_url = tmpl(_str(f.get("image_url")))
        thumb_url = tmpl(_str(f.get("thumb_url")))
        footer = tmpl(_str(f.get("footer")))
        color = tmpl(_str(f.get("color")))
        mrkdwn_in = list(f.get("mrkdwn_in") or DEFAULT_MRKDWN_IN)
        head: list[tuple[str, str]] = []
        _opt(head, "channel", tmpl(_str(f.get("channel"))))
        _opt(head, "username", tmpl(_str(f.get("username"))))
        _opt(head, "icon_emoji", tmpl(_str(f.get("icon_emoji"))))
        _opt(head, "icon_url", tmpl(_str(f.get("icon_url"))))
        if f.get("link_names"):
            head.append(("link_names", "true"))
        texts = split_message(text, MAX_TEXT_RUNES) if split_enabled(f) else [text]
        bodies = []
        for part in texts:
            att: list[tuple[str, str]] = []
            _opt(att, "title", title)
            _opt(att, "title_link", title_link)
            _opt(att, "pretext", pretext)
            att.append(("text", gojson.string(part)))
            att.append(("fallback", gojson.string(fallback)))
            att.append(("callback_id", gojson.string(callback_id)))
            if attachment_fields:
                att.append(("fields", encode_fields(attachment_fields)))
            if actions:
                att.append(("actions", "[" + ",".join(actions) + "]"))
            _opt(att, "image_url", image_url)
            _opt(att, "thumb_url", thumb_url)
            att.append(("footer", gojson.string(footer)))
            _opt(att, "color", color)
            if mrkdwn_in:
                att.append(("mrkdwn_in", _strings(mrkdwn_in)))
            body = gojson.obj([*head, ("attachments", "[" + gojson.obj(att) + "]")])
            bodies.append((body + "\n").encode())
        return bodies

    async def notify(self, ctx: NotifyContext, alerts: Sequence[Alert]) -> None:
        """POST each body in order; raises ``NotifyError`` on the first failure."""
        url = await inline_or_file(self.fields, "api_url", "api_url")
        channel = FieldRenderer(self.env, ctx, alerts)(_str(self.fields.get("channel")))
        for body in self.bodies(ctx, alerts):
            try:
                await post_json(self.env, url, body, http_config(self.fields))
            except NotifyError as err:
                if str(err).startswith("Post "):
                    raise
                # Upstream wraps status failures with the channel they were for.
                raise NotifyError(
                    f"channel {go_quote(channel)}: {err}",
                    retryable=err.retryable,
                    reason=err.reason,
                ) from None


build = SlackIntegration.from_config
