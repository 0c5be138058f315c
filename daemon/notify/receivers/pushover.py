"""The Pushover integration, as Alertmanager 0.25 sends it.

One POST to ``https://api.pushover.net/1/messages.json`` with every parameter in the
query string (Go's ``url.Values.Encode``: keys sorted, ``+`` for spaces) and an empty
``text/plain`` body. Parameters: ``token``, ``user``, ``title`` (≤250 runes),
``message`` (≤1024 runes, then trimmed; ``(no details)`` when empty; rendered as HTML
with ``html=1`` when ``html`` is set), ``url`` (≤512 runes), ``url_title``,
``priority``, ``retry`` and ``expire`` (whole seconds) and ``sound``. Truncation ends
in ``…``.

Error handling: 2xx is success; 5xx and transport errors are retryable; other statuses
and template errors are permanent. The URL carries the token, so it never appears in
errors or logs.
"""

from __future__ import annotations

import urllib.parse
from collections.abc import Sequence
from typing import Any

import attrs
import structlog

from daemon.alert import Alert
from daemon.config.model import HTTPConfig
from daemon.notify.context import NotifyContext
from daemon.notify.receivers._http import (
    FieldRenderer,
    raise_for_status,
    send_request,
    truncate_in_runes,
)
from daemon.notify.receivers.base import ConfiguredIntegration

INTEGRATION_TYPE = "pushover"
API_URL = "https://api.pushover.net/1/messages.json"
MAX_TITLE_RUNES = 250
MAX_MESSAGE_RUNES = 1024
MAX_URL_RUNES = 512
_NS_PER_SECOND = 1_000_000_000

log = structlog.get_logger(__name__)


def _seconds(ns: Any) -> str:
    # Go's int64(d.Seconds()) truncates toward zero.
    value = int(ns or 0)
    return str(abs(value) // _NS_PER_SECOND * (1 if value >= 0 else -1))


@attrs.define
class PushoverIntegration(ConfiguredIntegration):
    """One ``pushover_configs`` entry.

    Cancellation: the request is abandoned when the caller's scope is cancelled.
    """

    name: str = INTEGRATION_TYPE
    api_url: str = API_URL

    def parameters(self, ctx: NotifyContext, alerts: Sequence[Alert]) -> list[tuple[str, str]]:
        """The request parameters, in upstream's insertion order."""
        f = self.fields
        tmpl = FieldRenderer(self.env, ctx, alerts)

        def cut(field: str, text: str, limit: int) -> str:
            text, truncated = truncate_in_runes(text, limit)
            if truncated:
                log.warning("notify.truncated", integration=self.name, field=field, limit=limit)
            return text

        params = [
            ("token", tmpl(str(f.get("token") or ""))),
            ("user", tmpl(str(f.get("user_key") or ""))),
            ("title", cut("title", tmpl(str(f.get("title") or "")), MAX_TITLE_RUNES)),
        ]
        html = bool(f.get("html"))
        if html:
            params.append(("html", "1"))
        message = cut("message", tmpl(str(f.get("message") or ""), html=html), MAX_MESSAGE_RUNES)
        # Pushover rejects an empty message.
        params.append(("message", message.strip() or "(no details)"))
        params.append(("url", cut("url", tmpl(str(f.get("url") or "")), MAX_URL_RUNES)))
        params.append(("url_title", tmpl(str(f.get("url_title") or ""))))
        params.append(("priority", tmpl(str(f.get("priority") or ""))))
        params.append(("retry", _seconds(f.get("retry"))))
        params.append(("expire", _seconds(f.get("expire"))))
        params.append(("sound", tmpl(str(f.get("sound") or ""))))
        return params

    def request_url(self, ctx: NotifyContext, alerts: Sequence[Alert]) -> str:
        """The API URL with the encoded parameters as its query."""
        params = sorted(self.parameters(ctx, alerts), key=lambda kv: kv[0])
        return f"{self.api_url}?{urllib.parse.urlencode(params)}"

    async def notify(self, ctx: NotifyContext, alerts: Sequence[Alert]) -> None:
        """POST the message; raises :class:`NotifyError` on failure."""
        url = self.request_url(ctx, alerts)
        reply = await send_request(
            self.env.http,
            "POST",
            url,
            self.fields.get("http_config") or HTTPConfig(),
            content=b"",
            content_type="text/plain",
        )
        raise_for_status(reply)


build = PushoverIntegration.from_config


__all__ = ["API_URL", "INTEGRATION_TYPE", "PushoverIntegration", "build"]
