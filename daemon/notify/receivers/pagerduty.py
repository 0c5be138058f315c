"""The PagerDuty integration: Events API v2 (``routing_key``) or v1 (``service_key``).

Requests are Alertmanager 0.25's byte for byte: Go's ``json.Encoder`` output in struct
field order (``omitempty`` honoured, a v1 event carries ``"event_action":""`` and
``"payload":null`` as upstream's shared struct does), newline-terminated. The dedup /
incident key is the SHA-256 hex of the group key.

Limits: the summary (v2) / description (v1) is cut to 1024 runes with ``…``; an event
over 512000 bytes has its details replaced by one ``error`` entry.

Error handling: 2xx is success; 5xx, transport errors and 429 (v2) / 403 (v1) are
retryable; other statuses are permanent, and a 400 quotes PagerDuty's
``message: errors``. Template errors and an empty key after templating are permanent.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

import attrs
import structlog

from daemon.alert import Alert
from daemon.config.model import HTTPConfig
from daemon.gocompat.strconv import go_quote
from daemon.notify import gojson
from daemon.notify.context import NotifyContext
from daemon.notify.receivers._http import (
    FieldRenderer,
    HTTPReply,
    gojson_list,
    group_status,
    inline_or_file,
    key_hash,
    raise_for_status,
    read_key_file,
    send_request,
    truncate_in_bytes,
    truncate_in_runes,
)
from daemon.notify.receivers.base import ConfiguredIntegration
from daemon.notify.retry import NotifyError

INTEGRATION_TYPE = "pagerduty"

log = structlog.get_logger(__name__)

#: Upstream's hard-coded v1 endpoint (``url`` only applies to v2).
V1_URL = "https://events.pagerduty.com/generic/2010-04-15/create_event.json"
MAX_EVENT_SIZE = 512000
MAX_SUMMARY_RUNES = 1024
#: ``units.MetricBytes(512000).String()`` in Go.
_MAX_EVENT_SIZE_TEXT = "512KB"


def _error_details(reply: HTTPReply) -> str:
    # PagerDuty explains a 400 in JSON; every other failure gets no details at all.
    if reply.status_code != 400:
        return ""
    try:
        parsed = json.loads(reply.body)
    except ValueError:
        return ""
    if not isinstance(parsed, dict):
        return ""
    errors = parsed.get("errors")
    errors_list = [str(e) for e in errors] if isinstance(errors, list) else []
    return f"{parsed.get('message') or ''}: {','.join(errors_list)}"


@attrs.frozen
class Event:
    """The fields of upstream's ``pagerDutyMessage`` that a send sets (strings rendered)."""

    event_action: str = ""
    routing_key: str = ""
    service_key: str = ""
    dedup_key: str = ""
    incident_key: str = ""
    event_type: str = ""
    description: str = ""
    #: v2 only: (summary, source, severity, class, component, group).
    payload: tuple[str, str, str, str, str, str] | None = None
    client: str = ""
    client_url: str = ""
    details: Mapping[str, str] = attrs.field(factory=dict)
    images: tuple[tuple[str, str, str], ...] = ()
    links: tuple[tuple[str, str], ...] = ()


def encode_event(event: Event, details: Mapping[str, str]) -> bytes:
    """The JSON body; ``details`` goes to the payload (v2) or the top level (v1)."""
    fields: list[tuple[str, str]] = []

    def opt(name: str, value: str) -> None:
        if value:
            fields.append((name, gojson.string(value)))

    opt("routing_key", event.routing_key)
    opt("service_key", event.service_key)
    opt("dedup_key", event.dedup_key)
    opt("incident_key", event.incident_key)
    opt("event_type", event.event_type)
    opt("description", event.description)
    fields.append(("event_action", gojson.string(event.event_action)))
    if event.payload is None:
        fields.append(("payload", "null"))
    else:
        summary, source, severity, class_, component, group = event.payload
        payload = [
            ("summary", gojson.string(summary)),
            ("source", gojson.string(source)),
            ("severity", gojson.string(severity)),
        ]
        payload += [
            (k, gojson.string(v))
            for k, v in (("class", class_), ("component", component), ("group", group))
            if v
        ]
        if details:
            payload.append(("custom_details", gojson.string_map(details)))
        fields.append(("payload", gojson.obj(payload)))
    opt("client", event.client)
    opt("client_url", event.client_url)
    if event.payload is None and details:
        fields.append(("details", gojson.string_map(details)))
    if event.images:
        fields.append(
            (
                "images",
                gojson_list(
                    [
                        gojson.obj(
                            [
                                ("src", gojson.string(s)),
                                ("alt", gojson.string(a)),
                                ("href", gojson.string(h)),
                            ]
                        )
                        for s, a, h in event.images
                    ]
                ),
            )
        )
    if event.links:
        fields.append(
            (
                "links",
                gojson_list(
                    [
                        gojson.obj([("href", gojson.string(h)), ("text", gojson.string(t))])
                        for h, t in event.links
                    ]
                ),
            )
        )
    return (gojson.obj(fields) + "\n").encode()


def encode_limited(event: Event) -> bytes:
    """The body, with details swapped for an error note when it exceeds 512000 bytes."""
    body = encode_event(event, event.details)
    if len(body) > MAX_EVENT_SIZE:
        log.warning(
            "notify.truncated",
            integration=INTEGRATION_TYPE,
            field="details",
            size=len(body),
            limit=MAX_EVENT_SIZE,
        )
        note = (
            "Custom details have been removed because the original event exceeds the "
            f"maximum size of {_MAX_EVENT_SIZE_TEXT}"
        )
        body = encode_event(event, {"error": note})
    return body


def _as_list(value: Any) -> list[dict[str, Any]]:
    return [v for v in (value or ()) if isinstance(v, dict)]


@attrs.define
class PagerDutyIntegration(ConfiguredIntegration):
    """One ``pagerduty_configs`` entry.

    Cancellation: the request is abandoned when the caller's scope is cancelled.
    """

    name: str = INTEGRATION_TYPE

    @property
    def is_v1(self) -> bool:
        return bool(self.fields.get("service_key") or self.fields.get("service_key_file"))

    async def build_body(self, ctx: NotifyContext, alerts: Sequence[Alert]) -> bytes:
        """Render and encode the event for this notification."""
        f = self.fields
        tmpl = FieldRenderer(self.env, ctx, alerts)
        resolved = group_status(alerts, ctx.now) == "resolved"
        action = "resolve" if resolved else "trigger"
        details: dict[str, str] = {}
        for key, value in (f.get("details") or {}).items():
            try:
                details[key] = tmpl(value)
            except NotifyError as exc:
                raise NotifyError(
                    f"{go_quote(key)}: failed to template {go_quote(value)}: {exc}",
                    retryable=False,
                ) from None
        dedup = key_hash(ctx.group_key)
        if self.is_v1:
            description, cut = truncate_in_runes(tmpl(f.get("description") or ""), 1024)
            if cut:
                log.warning("notify.truncated", integration=self.name, field="description")
            key = await inline_or_file(f, "service_key", "service key")
            event = Event(
                service_key=tmpl(key),
                event_type=action,
                incident_key=dedup,
                description=description,
                details=details,
                client="" if resolved else tmpl(f.get("client") or ""),
                client_url="" if resolved else tmpl(f.get("client_url") or ""),
            )
            if not event.service_key:
                raise NotifyError("service key cannot be empty", retryable=False)
            return encode_limited(event)
        summary, cut = truncate_in_runes(tmpl(f.get("description") or ""), MAX_SUMMARY_RUNES)
        if cut:
            log.warning("notify.truncated", integration=self.name, field="summary")
        key = await inline_or_file(f, "routing_key", "routing key")
        images = []
        for item in _as_list(f.get("images")):
            image = (
                tmpl(item.get("src") or ""),
                tmpl(item.get("alt") or ""),
                tmpl(item.get("href") or ""),
            )
            if image[0]:
                images.append(image)
        links = []
        for item in _as_list(f.get("links")):
            link = (tmpl(item.get("href") or ""), tmpl(item.get("text") or ""))
            if link[0]:
                links.append(link)
        event = Event(
            client=tmpl(f.get("client") or ""),
            client_url=tmpl(f.get("client_url") or ""),
            routing_key=tmpl(key),
            event_action=action,
            dedup_key=dedup,
            payload=(
                summary,
                tmpl(f.get("source") or ""),
                tmpl(f.get("severity") or "error"),
                tmpl(f.get("class") or ""),
                tmpl(f.get("component") or ""),
                tmpl(f.get("group") or ""),
            ),
            details=details,
            images=tuple(images),
            links=tuple(links),
        )
        if not event.routing_key:
            raise NotifyError("routing key cannot be empty", retryable=False)
        return encode_limited(event)

    async def notify(self, ctx: NotifyContext, alerts: Sequence[Alert]) -> None:
        """Send one event; raises :class:`NotifyError` on failure."""
        body = await self.build_body(ctx, alerts)
        url = V1_URL if self.is_v1 else str(self.fields.get("url") or "")
        # Rate limiting: v1 answers 403, v2 answers 429; both are worth a retry.
        retry_codes = (403,) if self.is_v1 else (429,)
        reply = await send_request(
            self.env.http,
            "POST",
            url,
            self.fields.get("http_config") or HTTPConfig(),
            content=body,
            content_type="application/json",
        )
        raise_for_status(reply, retry_codes, _error_details)


build = PagerDutyIntegration.from_config


__all__ = [
    "INTEGRATION_TYPE",
    "FieldRenderer",
    "HTTPReply",
    "PagerDutyIntegration",
    "build",
    "encode_event",
    "group_status",
    "key_hash",
    "raise_for_status",
    "read_key_file",
    "send_request",
    "truncate_in_bytes",
    "truncate_in_runes",
]
