"""The WeChat Work integration, as Alertmanager 0.25 sends it.

Theory of operation: an access token is fetched with ``GET <api_url>gettoken?corpid=…&
corpsecret=…`` and cached for two hours (wall time from the injected clock); then
``POST <api_url>message/send?access_token=…`` carries the message. The body follows
upstream's struct order, where Go's ``omitempty`` cannot drop the two content structs:
``{"text":{"content":…},"touser":…,"toparty":…,"totag":…,"agentid":…,"safe":"0",
"msgtype":…,"markdown":{"content":…}}`` with empty strings omitted; the rendered
message goes in ``text`` or ``markdown`` by ``message_type``.

Error handling (upstream's, quirks included): a token reply that is not JSON or has no
``access_token`` is permanent; a send answered with any status but 200, or with a body
that is not JSON, is retryable. The reply's ``code`` (upstream reads ``code``/``error``,
not WeChat's ``errcode``) 0 is success, 42001 (token expired) drops the cached token and
retries, any other code is permanent. Transport errors are retryable.
"""

from __future__ import annotations

import json
import urllib.parse
from collections.abc import Sequence

import attrs
import structlog

from daemon.alert import Alert
from daemon.config.model import HTTPConfig
from daemon.notify import gojson
from daemon.notify.context import NotifyContext
from daemon.notify.receivers._http import FieldRenderer, send_request
from daemon.notify.receivers.base import ConfiguredIntegration
from daemon.notify.retry import NotifyError, failure_reason

INTEGRATION_TYPE = "wechat"
TOKEN_LIFETIME_NS = 2 * 3600 * 1_000_000_000
TOKEN_EXPIRED_CODE = 42001

log = structlog.get_logger(__name__)


def _with_path(api_url: str, path: str, query: list[tuple[str, str]]) -> str:
    parts = urllib.parse.urlsplit(api_url)
    merged = [
        (k, v)
        for k, v in urllib.parse.parse_qsl(parts.query, keep_blank_values=True)
        if k not in {q[0] for q in query}
    ]
    merged += query
    merged.sort(key=lambda kv: kv[0])
    return urllib.parse.urlunsplit(
        (parts.scheme, parts.netloc, parts.path + path, urllib.parse.urlencode(merged), "")
    )


def encode_message(
    message: str, message_type: str, to_user: str, to_party: str, to_tag: str, agent_id: str
) -> bytes:
    """The ``message/send`` body as upstream's ``json.Encoder`` writes it."""
    text, markdown = ("", message) if message_type == "markdown" else (message, "")
    fields = [("text", gojson.obj([("content", gojson.string(text))]))]
    for key, value in (
        ("touser", to_user),
        ("toparty", to_party),
        ("totag", to_tag),
        ("agentid", agent_id),
        ("safe", "0"),
        ("msgtype", message_type),
    ):
        if value:
            fields.append((key, gojson.string(value)))
    fields.append(("markdown", gojson.obj([("content", gojson.string(markdown))])))
    return (gojson.obj(fields) + "\n").encode()


@attrs.define
class WeChatIntegration(ConfiguredIntegration):
    """One ``wechat_configs`` entry; owns its cached access token.

    Cancellation: the request is abandoned when the caller's scope is cancelled; a token
    fetched before that stays cached.
    """

    name: str = INTEGRATION_TYPE
    access_token: str = ""
    access_token_at: int = 0

    async def _token(self, ctx: NotifyContext, alerts: Sequence[Alert]) -> str:
        now = self.env.clock.now()
        if self.access_token and now - self.access_token_at <= TOKEN_LIFETIME_NS:
            return self.access_token
        f = self.fields
        tmpl = FieldRenderer(self.env, ctx, alerts)
        try:
            query = [
                ("corpsecret", tmpl(str(f.get("api_secret") or ""))),
                ("corpid", tmpl(str(f.get("corp_id") or ""))),
            ]
        except NotifyError as exc:
            raise NotifyError(f"templating error: {exc}", retryable=False) from None
        url = _with_path(str(f.get("api_url") or ""), "gettoken", query)
        reply = await send_request(self.env.http, "GET", url, f.get("http_config") or HTTPConfig())
        try:
            parsed = json.loads(reply.body)
        except ValueError as exc:
            raise NotifyError(str(exc), retryable=False) from None
        token = parsed.get("access_token") if isinstance(parsed, dict) else None
        if not isinstance(token, str) or not token:
            raise NotifyError(
                f"invalid APISecret for CorpID: {f.get('corp_id') or ''}", retryable=False
            )
        self.access_token, self.access_token_at = token, self.env.clock.now()
        return token

    def build_body(self, ctx: NotifyContext, alerts: Sequence[Alert]) -> bytes:
        """The rendered message body."""
        f = self.fields
        tmpl = FieldRenderer(self.env, ctx, alerts)
        try:
            return encode_message(
                tmpl(str(f.get("message") or "")),
                str(f.get("message_type") or "text"),
                tmpl(str(f.get("to_user") or "")),
                tmpl(str(f.get("to_party") or "")),
                tmpl(str(f.get("to_tag") or "")),
                tmpl(str(f.get("agent_id") or "")),
            )
        except NotifyError as exc:
            raise NotifyError(f"templating error: {exc}", retryable=False) from None

    async def notify(self, ctx: NotifyContext, alerts: Sequence[Alert]) -> None:
        """Fetch a token if needed, then send; raises :class:`NotifyError` on failure."""
        token = await self._token(ctx, alerts)
        body = self.build_body(ctx, alerts)
        url = _with_path(
            str(self.fields.get("api_url") or ""), "message/send", [("access_token", token)]
        )
        reply = await send_request(
            self.env.http,
            "POST",
            url,
            self.fields.get("http_config") or HTTPConfig(),
            content=body,
            content_type="application/json",
        )
        if reply.status_code != 200:
            raise NotifyError(
                f"unexpected status code {reply.status_code}",
                retryable=True,
                reason=failure_reason(reply.status_code),
            )
        try:
            parsed = json.loads(reply.body)
        except ValueError as exc:
            raise NotifyError(str(exc), retryable=True) from None
        if not isinstance(parsed, dict):
            raise NotifyError("unexpected response body", retryable=True)
        code = parsed.get("code") or 0
        error = str(parsed.get("error") or "")
        if code == 0:
            return
        if code == TOKEN_EXPIRED_CODE:
            self.access_token = ""
            raise NotifyError(error, retryable=True)
        raise NotifyError(error, retryable=False)


build = WeChatIntegration.from_config


__all__ = ["INTEGRATION_TYPE", "WeChatIntegration", "build", "encode_message"]
