"""The AWS SNS integration: a ``Publish`` call signed with AWS Signature Version 4.

The request is what aws-sdk-go (used by Alertmanager 0.25) sends: ``POST`` to the
rendered ``api_url`` (default ``https://sns.<region>.amazonaws.com/``; like aws-sdk-go, a
"/" is appended to a path that lacks one) with an
``application/x-www-form-urlencoded; charset=utf-8`` body of sorted query-protocol
parameters: ``Action=Publish``, ``Message``, ``MessageAttributes.entry.<n>.Name`` /
``.Value.DataType`` / ``.Value.StringValue`` (attributes by sorted name, from 1),
``MessageDeduplicationId`` and ``MessageGroupId`` (SHA-256 of the group key, for
``.fifo`` topics only), ``PhoneNumber``, ``Subject``, ``TargetArn``, ``TopicArn``,
``Version=2010-03-31``.

The message is cut to 256 KiB, or 1600 bytes for SMS, byte-wise as upstream does (no
marker; a cut character is kept as its leading bytes) and then gains the attribute
``truncated=true``.

Credentials: ``sigv4.access_key``/``secret_key``, else the ``AWS_ACCESS_KEY_ID``,
``AWS_SECRET_ACCESS_KEY`` and ``AWS_SESSION_TOKEN`` environment variables. Region:
``sigv4.region`` else ``AWS_REGION``. Shared-profile files and ``role_arn`` (STS) are
not supported: such configs fail every send, permanently.

Error handling: 2xx is success; 5xx and transport errors are retryable; other statuses
are permanent with the ``<Message>`` of AWS's XML error as details.
"""

from __future__ import annotations

import datetime
import hashlib
import hmac
import os
import re
import urllib.parse
from collections.abc import Mapping, Sequence
from typing import Any

import attrs
import structlog

from daemon.alert import Alert
from daemon.config.model import HTTPConfig
from daemon.notify.context import NotifyContext
from daemon.notify.receivers._http import (
    FieldRenderer,
    HTTPReply,
    key_hash,
    raise_for_status,
    send_request,
)
from daemon.notify.receivers.base import ConfiguredIntegration
from daemon.notify.retry import NotifyError

INTEGRATION_TYPE = "sns"
SERVICE = "sns"
API_VERSION = "2010-03-31"
MAX_MESSAGE_BYTES = 256 * 1024
MAX_SMS_BYTES = 1600
CONTENT_TYPE = "application/x-www-form-urlencoded; charset=utf-8"
_ERROR_MESSAGE = re.compile(rb"<Message>(.*?)</Message>", re.S)

log = structlog.get_logger(__name__)


@attrs.frozen
class Credentials:
    access_key: str
    secret_key: str
    session_token: str = ""


def _hmac(key: bytes, text: str) -> bytes:
    return hmac.new(key, text.encode(), hashlib.sha256).digest()


def _amz_date(now_ns: int) -> str:
    moment = datetime.datetime.fromtimestamp(now_ns // 1_000_000_000, tz=datetime.UTC)
    return moment.strftime("%Y%m%dT%H%M%SZ")


def _uri_encode(text: str, *, keep_slash: bool) -> str:
    # SigV4 escapes everything but unreserved characters (and '/' in paths).
    return urllib.parse.quote(text, safe="-_.~" + ("/" if keep_slash else ""))


def sign_v4(
    method: str,
    url: str,
    headers: Mapping[str, str],
    body: bytes,
    credentials: Credentials,
    region: str,
    service: str,
    now_ns: int,
) -> dict[str, str]:
    """The headers to add (``X-Amz-Date``, maybe ``X-Amz-Security-Token``, ``Authorization``).

    Pure: every header in ``headers`` plus ``host`` and the added ones is signed.
    """
    parts = urllib.parse.urlsplit(url)
    amz_date = _amz_date(now_ns)
    added = {"X-Amz-Date": amz_date}
    if credentials.session_token:
        added["X-Amz-Security-Token"] = credentials.session_token
    host = parts.netloc.rsplit("@", 1)[-1]
    default_port = {"http": ":80", "https": ":443"}.get(parts.scheme, "")
    if default_port and host.endswith(default_port):
        host = host[: -len(default_port)]
    signed = {"host": host}
    for name, value in {**headers, **added}.items():
        signed[name.lower()] = " ".join(value.split())
    names = sorted(signed)
    canonical_headers = "".join(f"{n}:{signed[n]}\n" for n in names)
    signed_headers = ";".join(names)
    query = sorted(urllib.parse.parse_qsl(parts.query, keep_blank_values=True))
    canonical_query = "&".join(
        f"{_uri_encode(k, keep_slash=False)}={_uri_encode(v, keep_slash=False)}" for k, v in query
    )
    path = _uri_encode(urllib.parse.unquote(parts.path or "/"), keep_slash=True)
    canonical_request = "\n".join(
        [
            method,
            path,
            canonical_query,
            canonical_headers,
            signed_headers,
            hashlib.sha256(body).hexdigest(),
        ]
    )
    date = amz_date[:8]
    scope = f"{date}/{region}/{service}/aws4_request"
    to_sign = "\n".join(
        [
            "AWS4-HMAC-SHA256",
            amz_date,
            scope,
            hashlib.sha256(canonical_request.encode()).hexdigest(),
        ]
    )
    key = _hmac(f"AWS4{credentials.secret_key}".encode(), date)
    key = _hmac(_hmac(_hmac(key, region), service), "aws4_request")
    signature = hmac.new(key, to_sign.encode(), hashlib.sha256).hexdigest()
    added["Authorization"] = (
        f"AWS4-HMAC-SHA256 Credential={credentials.access_key}/{scope}, "
        f"SignedHeaders={signed_headers}, Signature={signature}"
    )
    return added


def encode_form(params: Sequence[tuple[str, str | bytes]]) -> bytes:
    """Go's ``url.Values.Encode``: keys sorted, ``+`` for spaces."""
    ordered = sorted(params, key=lambda kv: kv[0])
    return "&".join(
        f"{urllib.parse.quote_plus(k)}={urllib.parse.quote_plus(v)}" for k, v in ordered
    ).encode()


def _error_details(reply: HTTPReply) -> str:
    match = _ERROR_MESSAGE.search(reply.body)
    if match is None:
        return reply.body[:1024].decode("utf-8", "replace")
    return match.group(1).decode("utf-8", "replace")


@attrs.define
class SNSIntegration(ConfiguredIntegration):
    """One ``sns_configs`` entry.

    Cancellation: the request is abandoned when the caller's scope is cancelled.
    """

    name: str = INTEGRATION_TYPE
    environ: Mapping[str, str] = attrs.field(factory=lambda: dict(os.environ))

    def sigv4(self) -> dict[str, Any]:
        value = self.fields.get("sigv4")
        return value if isinstance(value, dict) else {}

    def credentials(self) -> Credentials:
        """Static keys from the config, else from the environment."""
        sig = self.sigv4()
        if sig.get("role_arn") or sig.get("profile"):
            raise NotifyError(
                "sns: sigv4 profile and role_arn are not supported by tocsin", retryable=False
            )
        if sig.get("access_key") and sig.get("secret_key"):
            return Credentials(str(sig["access_key"]), str(sig["secret_key"]))
        access = self.environ.get("AWS_ACCESS_KEY_ID") or self.environ.get("AWS_ACCESS_KEY", "")
        secret = self.environ.get("AWS_SECRET_ACCESS_KEY") or self.environ.get("AWS_SECRET_KEY", "")
        if not access or not secret:
            raise NotifyError("NoCredentialProviders: no valid providers in chain", retryable=True)
        return Credentials(access, secret, self.environ.get("AWS_SESSION_TOKEN", ""))

    def region(self) -> str:
        region = str(self.sigv4().get("region") or "") or self.environ.get("AWS_REGION", "")
        if not region:
            raise NotifyError(
                "region not configured in sns.sigv4.region or in default credentials chain",
                retryable=True,
            )
        return region

    def endpoint(self, tmpl: FieldRenderer, region: str) -> str:
        """The rendered ``api_url``, or the regional default."""
        url = tmpl(str(self.fields.get("api_url") or ""))
        if not url:
            return f"https://sns.{region}.amazonaws.com/"
        if "://" not in url:
            url = "https://" + url
        # aws-sdk-go appends the operation's HTTP path "/" to the endpoint's path unless
        # that already ends with "/": ".../path" is posted to as ".../path/".
        parts = urllib.parse.urlsplit(url)
        if not parts.path.endswith("/"):
            url = urllib.parse.urlunsplit(parts._replace(path=parts.path + "/"))
        return url

    def parameters(
        self, ctx: NotifyContext, alerts: Sequence[Alert], tmpl: FieldRenderer
    ) -> list[tuple[str, str | bytes]]:
        """The ``Publish`` parameters for this notification."""
        f = self.fields
        attributes = {tmpl(k): tmpl(v) for k, v in (f.get("attributes") or {}).items()}
        params: list[tuple[str, str | bytes]] = [("Action", "Publish"), ("Version", API_VERSION)]
        limit = MAX_MESSAGE_BYTES
        if f.get("topic_arn"):
            topic = tmpl(str(f["topic_arn"]))
            params.append(("TopicArn", topic))
            if topic.endswith(".fifo"):
                # Only FIFO topics take (and require) these.
                params.append(("MessageDeduplicationId", key_hash(ctx.group_key)))
                params.append(("MessageGroupId", key_hash(ctx.group_key)))
        if f.get("phone_number"):
            params.append(("PhoneNumber", tmpl(str(f["phone_number"]))))
            limit = MAX_SMS_BYTES
        if f.get("target_arn"):
            params.append(("TargetArn", tmpl(str(f["target_arn"]))))
        message = tmpl(str(f.get("message") or "")).encode("utf-8", "surrogatepass")
        if len(message) > limit:
            log.warning("notify.truncated", integration=self.name, field="message", limit=limit)
            message = message[:limit]
            attributes["truncated"] = "true"
        params.append(("Message", message))
        for n, name in enumerate(sorted(attributes), start=1):
            prefix = f"MessageAttributes.entry.{n}"
            params.append((f"{prefix}.Name", name))
            params.append((f"{prefix}.Value.DataType", "String"))
            params.append((f"{prefix}.Value.StringValue", attributes[name]))
        if f.get("subject"):
            params.append(("Subject", tmpl(str(f["subject"]))))
        return params

    async def notify(self, ctx: NotifyContext, alerts: Sequence[Alert]) -> None:
        """Publish the message; raises :class:`NotifyError` on failure."""
        tmpl = FieldRenderer(self.env, ctx, alerts)
        region = self.region()
        credentials = self.credentials()
        url = self.endpoint(tmpl, region)
        body = encode_form(self.parameters(ctx, alerts, tmpl))
        headers = {"Content-Type": CONTENT_TYPE, "Content-Length": str(len(body))}
        headers.update(
            sign_v4("POST", url, headers, body, credentials, region, SERVICE, self.env.clock.now())
        )
        reply = await send_request(
            self.env.http,
            "POST",
            url,
            self.fields.get("http_config") or HTTPConfig(),
            content=body,
            headers=headers,
        )
        raise_for_status(reply, details=_error_details)


build = SNSIntegration.from_config


__all__ = ["INTEGRATION_TYPE", "Credentials", "SNSIntegration", "build", "encode_form", "sign_v4"]
