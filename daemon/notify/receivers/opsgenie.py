"""The OpsGenie integration (Alert API v2), as Alertmanager 0.25 sends it.

A firing group creates an alert (``POST v2/alerts``) whose alias is the SHA-256 hex of
the group key; with ``update_alerts`` two more requests follow, updating the message and
the description of an existing alert by alias. A resolved group closes the alert
(``POST v2/alerts/<alias>/close?identifierType=alias``). Requests go out in that order
and the first failure stops the rest.

The create body follows upstream's struct order: ``alias``, ``message`` (cut to 130
runes with ``…``), ``description`` (omitted when empty), ``details`` (the common labels
overlaid by the rendered ``details``, always present), ``source``, then the optional
``responders``, ``tags``, ``note``, ``priority``, ``entity`` and ``actions``. A
responder whose rendered fields are all empty is dropped; type ``teams`` expands its
comma-separated ``name`` into one ``team`` responder per name.

Error handling: 2xx is success; 5xx, 429 and transport errors are retryable; other
statuses and template errors are permanent.
"""

from __future__ import annotations

import urllib.parse
from collections.abc import Sequence

import attrs
import structlog

from daemon.alert import Alert
from daemon.config.model import HTTPConfig
from daemon.notify import gojson
from daemon.notify.context import NotifyContext
from daemon.notify.receivers._http import (
    FieldRenderer,
    gojson_list,
    group_status,
    inline_or_file,
    key_hash,
    raise_for_status,
    send_request,
    truncate_in_runes,
)
from daemon.notify.receivers.base import ConfiguredIntegration
from daemon.template.data import build_data

INTEGRATION_TYPE = "opsgenie"
MAX_MESSAGE_RUNES = 130
RETRY_CODES = (429,)

log = structlog.get_logger(__name__)


def safe_split(text: str, sep: str) -> list[str]:
    """Upstream's ``safeSplit``: split the trimmed text, dropping empty parts."""
    return [part for part in text.strip().split(sep) if part]


def endpoint(api_url: str, path: str, alias_query: bool = False) -> str:
    """``api_url`` with ``path`` appended to its path (Go's ``URL.Path +=``)."""
    parts = urllib.parse.urlsplit(api_url)
    query = urllib.parse.parse_qsl(parts.query, keep_blank_values=True)
    if alias_query:
        query = [(k, v) for k, v in query if k != "identifierType"]
        query.append(("identifierType", "alias"))
        # Go's Values.Encode sorts by key.
        query.sort(key=lambda kv: kv[0])
        new_query = urllib.parse.urlencode(query)
    else:
        new_query = parts.query
    return urllib.parse.urlunsplit(
        (parts.scheme, parts.netloc, parts.path + path, new_query, parts.fragment)
    )


@attrs.frozen
class Request:
    """One planned OpsGenie API call."""

    method: str
    url: str
    body: bytes


@attrs.define
class OpsGenieIntegration(ConfiguredIntegration):
    """One ``opsgenie_configs`` entry.

    Cancellation: the request in flight is abandoned when the caller's scope is cancelled;
    later requests of the same notification are not sent.
    """

    name: str = INTEGRATION_TYPE

    def plan(self, ctx: NotifyContext, alerts: Sequence[Alert]) -> list[Request]:
        """The requests for this notification, in sending order."""
        f = self.fields
        tmpl = FieldRenderer(self.env, ctx, alerts)
        alias = key_hash(ctx.group_key)
        api_url = str(f.get("api_url") or "")
        if group_status(alerts, ctx.now) == "resolved":
            body = gojson.obj([("source", gojson.string(tmpl(f.get("source") or "")))])
            return [
                Request(
                    "POST",
                    endpoint(api_url, f"v2/alerts/{alias}/close", alias_query=True),
                    (body + "\n").encode(),
                )
            ]
        data = build_data(ctx.receiver, ctx.group_labels, alerts, self.env.external_url, ctx.now)
        details = dict(data.CommonLabels)
        for key, value in (f.get("details") or {}).items():
            details[key] = tmpl(value)
        message, cut = truncate_in_runes(tmpl(f.get("message") or ""), MAX_MESSAGE_RUNES)
        if cut:
            log.warning("notify.truncated", integration=self.name, field="message")
        responders: list[str] = []
        for r in f.get("responders") or ():
            rid, rname = tmpl(r.get("id") or ""), tmpl(r.get("name") or "")
            ruser, rtype = tmpl(r.get("username") or ""), tmpl(r.get("type") or "")
            if not (rid or rname or ruser or rtype):
                # Lets responders be filled from labels that may be absent.
                continue
            if rtype == "teams":
                for team in safe_split(rname, ","):
                    responders.append(_responder("", tmpl(team), "", "team"))
                continue
            responders.append(_responder(rid, rname, ruser, rtype))
        description = tmpl(f.get("description") or "")
        fields = [
            ("alias", gojson.string(alias)),
            ("message", gojson.string(message)),
        ]
        if description:
            fields.append(("description", gojson.string(description)))
        fields.append(("details", gojson.string_map(details)))
        fields.append(("source", gojson.string(tmpl(f.get("source") or ""))))
        if responders:
            fields.append(("responders", gojson_list(responders)))
        tags = safe_split(tmpl(f.get("tags") or ""), ",")
        if tags:
            fields.append(("tags", gojson_list([gojson.string(t) for t in tags])))
        for key in ("note", "priority", "entity"):
            value = tmpl(f.get(key) or "")
            if value:
                fields.append((key, gojson.string(value)))
        actions = safe_split(tmpl(f.get("actions") or ""), ",")
        if actions:
            fields.append(("actions", gojson_list([gojson.string(a) for a in actions])))
        requests = [
            Request("POST", endpoint(api_url, "v2/alerts"), (gojson.obj(fields) + "\n").encode())
        ]
        if f.get("update_alerts"):
            for path, key, value in (
                ("message", "message", message),
                ("description", "description", description),
            ):
                pairs = [(key, gojson.string(value))] if value else []
                requests.append(
                    Request(
                        "PUT",
                        endpoint(api_url, f"v2/alerts/{alias}/{path}", alias_query=True),
                        (gojson.obj(pairs) + "\n").encode(),
                    )
                )
        return requests

    async def api_key(self, ctx: NotifyContext, alerts: Sequence[Alert]) -> str:
        """The key, inline or from its file, rendered as a template like upstream."""
        key = await inline_or_file(self.fields, "api_key", "api key")
        return FieldRenderer(self.env, ctx, alerts)(key)

    async def notify(self, ctx: NotifyContext, alerts: Sequence[Alert]) -> None:
        """Send the planned requests in order; raises :class:`NotifyError` on failure."""
        requests = self.plan(ctx, alerts)
        key = await self.api_key(ctx, alerts)
        http_config = self.fields.get("http_config") or HTTPConfig()
        for request in requests:
            reply = await send_request(
                self.env.http,
                request.method,
                request.url,
                http_config,
                content=request.body,
                content_type="application/json",
                headers={"Authorization": f"GenieKey {key}"},
            )
            raise_for_status(reply, RETRY_CODES)


def _responder(rid: str, name: str, username: str, rtype: str) -> str:
    pairs = [
        (k, gojson.string(v)) for k, v in (("id", rid), ("name", name), ("username", username)) if v
    ]
    pairs.append(("type", gojson.string(rtype)))
    return gojson.obj(pairs)


build = OpsGenieIntegration.from_config


__all__ = ["INTEGRATION_TYPE", "OpsGenieIntegration", "Request", "build", "endpoint", "safe_split"]
