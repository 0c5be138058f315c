"""A generic SMS-over-HTTP receiver: any gateway that takes one templated request.

``<method> <url>`` (default POST) with the ``body`` template rendered (default
``{{ template "sms.default.message" . }}``: the subject line), ``content_type``
(default ``text/plain; charset=utf-8``) and ``headers`` whose values are templates
too. ``url`` is a template as well, so a gateway taking the text in the query string
works (``{{ template "sms.default.message" . | urlquery }}``). Not a chat channel:
no splitting.

Error handling: any 2xx succeeds; 5xx and transport errors are retryable; other
statuses and template errors are permanent.
"""

from __future__ import annotations

from collections.abc import Sequence

import attrs

from daemon.alert import Alert
from daemon.notify.context import NotifyContext
from daemon.notify.receivers._http import FieldRenderer, http_config, raise_for_status, send_request
from daemon.notify.receivers.base import ConfiguredIntegration

INTEGRATION_TYPE = "sms"
DEFAULT_CONTENT_TYPE = "text/plain; charset=utf-8"


@attrs.define
class SmsIntegration(ConfiguredIntegration):
    """One ``sms_configs`` entry.

    Cancellation: a request in flight is abandoned with the caller's scope.
    """

    name: str = INTEGRATION_TYPE

    def request(
        self, ctx: NotifyContext, alerts: Sequence[Alert]
    ) -> tuple[str, str, dict[str, str], bytes]:
        """Method, URL, headers and body of one notification."""
        f = self.fields
        tmpl = FieldRenderer(self.env, ctx, alerts)
        method = str(f.get("method") or "POST").upper()
        url = tmpl(str(f.get("url") or ""))
        headers = {str(k): tmpl(str(v)) for k, v in (f.get("headers") or {}).items()}
        body = tmpl(str(f.get("body") or "")).encode()
        return method, url, headers, body

    async def notify(self, ctx: NotifyContext, alerts: Sequence[Alert]) -> None:
        """Send the request; raises ``NotifyError`` on failure."""
        method, url, headers, body = self.request(ctx, alerts)
        reply = await send_request(
            self.env.http,
            method,
            url,
            http_config(self.fields),
            content=body if method not in ("GET", "HEAD") else None,
            content_type=str(self.fields.get("content_type") or DEFAULT_CONTENT_TYPE),
            headers=headers,
        )
        raise_for_status(reply)


build = SmsIntegration.from_config
