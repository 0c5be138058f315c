"""The webhook integration: Alertmanager's version-4 JSON payload, POSTed (spec §12).

The payload is built as Go writes it (key order, HTML-safe escaping, RFC3339Nano times,
trailing newline) because receivers and tests compare it byte for byte.

Error handling: 2xx is success; 5xx and transport errors are retryable; any other status
is permanent (``unexpected status code <n>: <body excerpt>``). Transport errors never
carry the URL, which may hold credentials.
"""

from __future__ import annotations

import base64
from collections.abc import Sequence
from typing import Any

import attrs
import structlog
import trio

from daemon.alert import Alert, untrack
from daemon.clock import ZERO_TIME
from daemon.config.model import HTTPConfig, WebhookConfig
from daemon.gocompat.timestamp import format_nano
from daemon.notify import gojson
from daemon.notify.context import NotifyContext
from daemon.notify.http1 import HttpSender
from daemon.notify.httpclient import as_sender
from daemon.notify.retry import BODY_EXCERPT_BYTES, check_status
from daemon.template.data import TemplateData, common_entries, quote_meta

USER_AGENT = "Alertmanager/0.25.0"
PAYLOAD_VERSION = "4"

#: ``http_config`` keys that need a client of their own: honoured when the pipeline is
#: built with :class:`daemon.notify.httpclient.HttpClients`, ignored (and logged) without.
UNSUPPORTED_HTTP_KEYS = ("tls_config", "proxy_url", "oauth2", "proxy_from_environment")

log = structlog.get_logger(__name__)


def truncate(alerts: Sequence[Alert], max_alerts: int) -> tuple[Sequence[Alert], int]:
    """The first ``max_alerts`` alerts (all when 0) and how many were dropped."""
    if max_alerts > 0 and len(alerts) > max_alerts:
        return alerts[:max_alerts], len(alerts) - max_alerts
    return alerts, 0


def encode_payload(data: TemplateData, group_key: str, truncated_alerts: int) -> bytes:
    """The version-4 webhook body, newline-terminated, as Alertmanager 0.25 sends it.

    The definition :func:`build_payload` is tested against: every string escaped on
    its own, no fast paths.
    """
    alerts = ",".join(
        gojson.obj(
            [
                ("status", gojson.string(a.Status)),
                ("labels", gojson.escaped_string_map(a.Labels)),
                ("annotations", gojson.escaped_string_map(a.Annotations)),
                ("startsAt", gojson.string(format_nano(a.StartsAt))),
                ("endsAt", gojson.string(format_nano(a.EndsAt))),
                ("generatorURL", gojson.string(a.GeneratorURL)),
                ("fingerprint", gojson.string(a.Fingerprint)),
            ]
        )
        for a in data.Alerts
    )
    body = gojson.obj(
        [
            ("receiver", gojson.string(data.Receiver)),
            ("status", gojson.string(data.Status)),
            ("alerts", f"[{alerts}]"),
            ("groupLabels", gojson.escaped_string_map(data.GroupLabels)),
            ("commonLabels", gojson.escaped_string_map(data.CommonLabels)),
            ("commonAnnotations", gojson.escaped_string_map(data.CommonAnnotations)),
            ("externalURL", gojson.string(data.ExternalURL)),
            ("version", gojson.string(PAYLOAD_VERSION)),
            ("groupKey", gojson.string(group_key)),
            ("truncatedAlerts", str(truncated_alerts)),
        ]
    )
    return (body + "\n").encode()


#: fingerprint -> (alert, status, encoded webhook alert object). Alerts are immutable
#: values, so a group's unchanged alerts are not re-encoded on every flush.
_fragments: dict[int, tuple[Alert, str, str]] = {}
#: Start over beyond this many entries (drops departed alerts).
_FRAGMENT_LIMIT = 200_000


#: text -> its Go JSON string literal, for the few strings every payload of a group
#: repeats (external URL, group key) and the generator URLs its alerts share; receiver
#: names (written quote_meta'd) have their own. Keyed by the text alone: a (text, flag)
#: key cost a tuple and its hash per alert.
_literals: dict[str, str] = {}
_receiver_literals: dict[str, str] = {}


def _literal(text: str, receiver: bool = False) -> str:
    cache = _receiver_literals if receiver else _literals
    encoded = cache.get(text)
    if encoded is None:
        if len(cache) >= 4096:
            cache.clear()
        encoded = cache[text] = gojson.string(quote_meta(text) if receiver else text)
    return encoded


#: Wall time (ns) -> its RFC3339Nano text; alerts posted together share start times.
_times: dict[int, str] = {ZERO_TIME: format_nano(ZERO_TIME)}


def _time_text(ns: int) -> str:
    text = _times.get(ns)
    if text is None:
        if len(_times) >= 4096:
            _times.clear()
            _times[ZERO_TIME] = format_nano(ZERO_TIME)
        text = _times[ns] = format_nano(ns)
    return text


def _alert_json(alert: Alert, status: str) -> str:
    """One element of the payload's ``alerts`` array (``template.Alert`` in Go's field order)."""
    cached = _fragments.get(alert.fingerprint)
    if cached is not None and cached[0] is alert and cached[1] == status:
        return cached[2]
    # Status, times and the hex fingerprint never need escaping. A generator URL is one
    # per rule, so its literal comes from the cache (the escaping regex cost more than
    # the labels).
    text = gojson.write(
        (
            '{"status":"',
            status,
            '","labels":',
            alert.labels,
            ',"annotations":',
            alert.annotations,
            ',"startsAt":"',
            _time_text(alert.starts_at),
            '","endsAt":"',
            _time_text(alert.ends_at),
            '","generatorURL":',
            _literal(alert.generator_url),
            ',"fingerprint":"',
            alert.fingerprint,
            '"}',
        )
    )
    if len(_fragments) >= _FRAGMENT_LIMIT:
        _fragments.clear()
    # An alert and two str: never in a cycle, so kept out of the collector's walk.
    _fragments[alert.fingerprint] = untrack((alert, status, text))
    return text


def build_payload(
    ctx: NotifyContext, alerts: Sequence[Alert], max_alerts: int, external_url: str, now: int
) -> bytes:
    """Truncate and encode: the whole body for one send.

    Same bytes as :func:`encode_payload` of :func:`build_data`, without building the
    template data; each alert's object comes from a cache.
    """
    kept, dropped = truncate(alerts, max_alerts)
    statuses = [a.status(now) for a in kept]
    status = "firing" if "firing" in statuses else "resolved"
    body = (
        f'{{"receiver":{_literal(ctx.receiver, receiver=True)},"status":"{status}",'
        f'"alerts":[{",".join(map(_alert_json, kept, statuses))}],'
        f'"groupLabels":{gojson.string_map(ctx.group_labels)},'
        f'"commonLabels":{gojson.string_map(common_entries([a.labels for a in kept]))},'
        f'"commonAnnotations":{gojson.string_map(common_entries([a.annotations for a in kept]))},'
        f'"externalURL":{_literal(external_url)},"version":"{PAYLOAD_VERSION}",'
        f'"groupKey":{_literal(ctx.group_key)},"truncatedAlerts":{dropped}}}\n'
    )
    return body.encode()


def unsupported_http_keys(http_config: HTTPConfig) -> list[str]:
    """The ``http_config`` keys that are set but ignored by this implementation."""
    return [k for k in UNSUPPORTED_HTTP_KEYS if _is_set(http_config.raw.get(k))]


def _is_set(value: Any) -> bool:
    # The config loader fills defaults in (tls_config: {insecure_skip_verify: false}),
    # which is not the operator asking for anything.
    if isinstance(value, dict):
        return any(_is_set(v) for v in value.values())
    return bool(value)


async def _secret(inline: Any, path: Any) -> str:
    # Files are re-read on every send, as Prometheus' HTTP client does, so rotated
    # credentials apply without a reload.
    if path:
        return (await trio.Path(str(path)).read_text()).strip()
    return str(inline or "")


async def auth_headers(http_config: HTTPConfig) -> dict[str, str]:
    """``Authorization`` from basic_auth, authorization or bearer_token, if configured."""
    raw = http_config.raw
    basic = raw.get("basic_auth")
    if isinstance(basic, dict):
        password = await _secret(basic.get("password"), basic.get("password_file"))
        token = base64.b64encode(f"{basic.get('username') or ''}:{password}".encode()).decode()
        return {"Authorization": f"Basic {token}"}
    authz = raw.get("authorization")
    if isinstance(authz, dict):
        credentials = await _secret(authz.get("credentials"), authz.get("credentials_file"))
        return {"Authorization": f"{authz.get('type') or 'Bearer'} {credentials}"}
    if raw.get("bearer_token") or raw.get("bearer_token_file"):
        token = await _secret(raw.get("bearer_token"), raw.get("bearer_token_file"))
        return {"Authorization": f"Bearer {token}"}
    return {}


@attrs.define
class WebhookIntegration:
    """One ``webhook_configs`` entry of a receiver.

    ``http`` accepts an ``httpx.AsyncClient`` too, wrapped on the way in.

    Cancellation: the request is abandoned when the caller's scope is cancelled.
    """

    config: WebhookConfig
    index: int
    http: HttpSender = attrs.field(converter=as_sender)
    external_url: str
    name: str = "webhook"

    @property
    def send_resolved(self) -> bool:
        return self.config.send_resolved

    async def notify(self, ctx: NotifyContext, alerts: Sequence[Alert]) -> None:
        """POST the payload; raises :class:`NotifyError` on failure."""
        body = build_payload(ctx, alerts, self.config.max_alerts, self.external_url, ctx.now)
        headers = {"Content-Type": "application/json", "User-Agent": USER_AGENT}
        http_config = self.config.http_config
        headers.update(await auth_headers(http_config))
        reply = await self.http.send(
            "POST",
            self.config.url,
            headers,
            body,
            follow_redirects=http_config.follow_redirects,
            max_body=BODY_EXCERPT_BYTES,
        )
        error = check_status(reply.status_code, reply.body)
        if error is not None:
            raise error
