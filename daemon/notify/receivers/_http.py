"""What this package's HTTP integrations share: the request shell, Alertmanager's
truncation and key helpers, field rendering, and the chat channels' message splitting.

Request shell: :func:`send_request` sends with Alertmanager's User-Agent and the
``http_config`` credentials; :func:`raise_for_status` classifies the reply as upstream's
``Retrier.Check``: any 2xx is success; 5xx, transport errors (timeouts included) and a
caller's ``retry_codes`` are retryable; other statuses and template errors are
permanent (``NotifyError``).

Splitting: when ``split_long_messages`` is on (the default for chat channels), a body
over the channel's limit is sent as several messages, cut at line ends where possible,
instead of Alertmanager's truncation with ``…``.
"""

from __future__ import annotations

import hashlib
import json
import urllib.parse
from collections.abc import Callable, Container, Mapping, Sequence
from typing import Any

import attrs
import httpx
import trio

from daemon.alert import Alert
from daemon.config.model import HTTPConfig
from daemon.notify.context import NotifyContext
from daemon.notify.http1 import HTTPReply as HTTPReply  # the integrations import it from here
from daemon.notify.http1 import HttpSender
from daemon.notify.httpclient import as_sender
from daemon.notify.receivers.base import IntegrationEnv
from daemon.notify.receivers.webhook import USER_AGENT, auth_headers
from daemon.notify.retry import REASON_CLIENT_ERROR, REASON_OTHER, NotifyError, check_status
from daemon.template.errors import TemplateError

TRUNCATION_MARKER = "…"
#: A response body read beyond this is not needed by any integration.
_MAX_RESPONSE_BYTES = 64 * 1024

# --- requests, truncation, keys --------------------------------------------------------


def truncate_in_runes(text: str, limit: int) -> tuple[str, bool]:
    """Go's ``notify.TruncateInRunes``: at most ``limit`` code points, ending in ``…``."""
    if len(text) <= limit:
        return text, False
    if limit <= 3:
        return text[:limit], True
    return text[: limit - 1] + TRUNCATION_MARKER, True


def truncate_in_bytes(text: str, limit: int) -> tuple[str, bool]:
    """Go's ``notify.TruncateInBytes``: at most ``limit`` UTF-8 bytes, ending in ``…``."""
    raw = text.encode("utf-8", "surrogatepass")
    if len(raw) <= limit:
        return text, False
    if limit <= 3:
        return (TRUNCATION_MARKER if limit == 3 else "." * limit), True
    # The marker is three bytes; never cut inside a character.
    cut = raw[: limit - 3].decode("utf-8", "ignore")
    return cut + TRUNCATION_MARKER, True


def key_hash(group_key: str) -> str:
    """Upstream's ``notify.Key.Hash``: SHA-256 hex of the group key."""
    return hashlib.sha256(group_key.encode("utf-8", "surrogatepass")).hexdigest()


async def read_key_file(path: str, what: str, *, strip: bool = True) -> str:
    """A secret from a file, re-read on every send so rotation needs no reload."""
    try:
        text = await trio.Path(path).read_text()
    except OSError as exc:
        raise NotifyError(f"failed to read {what} from file: {exc}", retryable=False) from None
    return text.strip() if strip else text


async def inline_or_file(fields: Mapping[str, Any], key: str, what: str) -> str:
    """The ``key`` field, else ``<key>_file``'s content (re-read on every send)."""
    value = str(fields.get(key) or "")
    if value:
        return value
    return await read_key_file(str(fields.get(f"{key}_file") or ""), what)


@attrs.frozen
class FieldRenderer:
    """Renders config fields for one notification; template errors become permanent.

    Text without ``{{`` is returned as is, as Go's template of it would be.
    """

    env: IntegrationEnv
    ctx: NotifyContext
    alerts: Sequence[Alert]

    def __call__(self, text: str, *, html: bool = False) -> str:
        if "{{" not in text:
            return text
        try:
            return self.env.templater.render(text, self.ctx, self.alerts, html=html)
        except TemplateError as exc:
            raise NotifyError(str(exc), retryable=False) from None


def group_status(alerts: Sequence[Alert], now: int) -> str:
    """``firing`` if any alert fires at ``now``, else ``resolved``."""
    return "firing" if any(not a.resolved(now) for a in alerts) else "resolved"


async def send_request(
    http: HttpSender | httpx.AsyncClient,
    method: str,
    url: str,
    http_config: HTTPConfig,
    *,
    content: bytes | None = None,
    content_type: str | None = None,
    headers: Mapping[str, str] | None = None,
) -> HTTPReply:
    """One request with Alertmanager's User-Agent and the http_config credentials.

    Error handling: transport errors (timeouts included) raise a retryable
    :class:`NotifyError` reading like Go's, ``Post "<redacted>": …`` (URLs often hold
    keys); any status is returned for the caller to classify.
    """
    all_headers = {"User-Agent": USER_AGENT}
    if content_type is not None:
        all_headers["Content-Type"] = content_type
    all_headers.update(await auth_headers(http_config))
    all_headers.update(headers or {})
    return await as_sender(http).send(
        method,
        url,
        all_headers,
        content,
        follow_redirects=http_config.follow_redirects,
        max_body=_MAX_RESPONSE_BYTES,
    )


def raise_for_status(
    reply: HTTPReply,
    retry_codes: tuple[int, ...] = (),
    details: Callable[[HTTPReply], str] | None = None,
) -> None:
    """Upstream's ``Retrier.Check``: 2xx passes; 5xx and ``retry_codes`` retry."""
    body = reply.body if details is None else details(reply).encode()
    error = check_status(reply.status_code, body, retry_codes)
    if error is not None:
        raise error


def gojson_list(items: Sequence[str]) -> str:
    """A JSON array of already-encoded values."""
    return "[" + ",".join(items) + "]"


# --- chat channels -------------------------------------------------------------------

Measure = Callable[[str], int]


def runes(text: str) -> int:
    """Length in Unicode code points (Go's runes)."""
    return len(text)


def utf8_bytes(text: str) -> int:
    """Length in UTF-8 bytes."""
    return len(text.encode("utf-8", "surrogatepass"))


def _hard_cut(line: str, limit: int, measure: Measure) -> list[str]:
    pieces: list[str] = []
    current = ""
    for ch in line:
        if current and measure(current + ch) > limit:
            pieces.append(current)
            current = ""
        current += ch
    if current:
        pieces.append(current)
    return pieces


def split_message(text: str, limit: int, measure: Measure = runes) -> list[str]:
    """``text`` in chunks of at most ``limit``, cut after newlines where possible.

    Joining the chunks gives back ``text``; one chunk when it already fits.
    """
    if limit <= 0 or measure(text) <= limit:
        return [text]
    chunks: list[str] = []
    current = ""
    for line in text.splitlines(keepends=True):
        if measure(current + line) <= limit:
            current += line
            continue
        if current:
            chunks.append(current)
            current = ""
        if measure(line) <= limit:
            current = line
        else:
            *full, current = _hard_cut(line, limit, measure)
            chunks.extend(full)
    if current:
        chunks.append(current)
    return chunks


def split_enabled(fields: Mapping[str, Any]) -> bool:
    """The ``split_long_messages`` option (default on for chat channels)."""
    value = fields.get("split_long_messages")
    return True if value is None else bool(value)


def http_config(fields: Mapping[str, Any]) -> HTTPConfig:
    """The entry's ``http_config`` (the loader always fills one in)."""
    config = fields.get("http_config")
    return config if isinstance(config, HTTPConfig) else HTTPConfig()


async def post_json(
    env: IntegrationEnv,
    url: str,
    body: bytes,
    config: HTTPConfig,
    *,
    headers: Mapping[str, str] | None = None,
    check: Callable[[HTTPReply], None] | None = None,
) -> HTTPReply:
    """POST ``body`` as JSON; raises ``NotifyError`` unless the reply is a success."""
    reply = await send_request(
        env.http,
        "POST",
        url,
        config,
        content=body,
        content_type="application/json",
        headers=headers,
    )
    raise_for_status(reply)
    if check is not None:
        check(reply)
    return reply


def fit_message(fields: Mapping[str, Any], text: str, limit: int, *, in_bytes: bool) -> list[str]:
    """``text`` split into messages of at most ``limit`` (bytes or runes) when
    ``split_long_messages`` is on, else one message truncated with ``…``."""
    if split_enabled(fields):
        return split_message(text, limit, utf8_bytes if in_bytes else runes)
    truncate = truncate_in_bytes if in_bytes else truncate_in_runes
    return [truncate(text, limit)[0]]


async def post_each(
    env: IntegrationEnv,
    url: str,
    bodies: Sequence[bytes],
    fields: Mapping[str, Any],
    *,
    check: Callable[[HTTPReply], None] | None = None,
) -> None:
    """POST each body in order with the entry's ``http_config``; stops at the first failure."""
    config = http_config(fields)
    for body in bodies:
        await post_json(env, url, body, config, check=check)


def json_body(value: Any) -> bytes:
    """Compact UTF-8 JSON for the bot APIs (which do not compare bytes with Go's)."""
    return json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode()


def with_query(url: str, params: Sequence[tuple[str, str]]) -> str:
    """``url`` with ``params`` appended, each value percent-encoded exactly once."""
    query = "&".join(f"{k}={urllib.parse.quote(v, safe='')}" for k, v in params)
    return url + ("&" if "?" in url else "?") + query


def bot_reply_checker(
    code_keys: Sequence[str], retry_codes: Container[int], what: str
) -> Callable[[HTTPReply], None]:
    """A reply check for bot APIs that answer 200 with ``{"errcode": n, "errmsg": …}``.

    A non-zero code fails: retryable when in ``retry_codes`` (rate limits), else
    permanent. A body that is not JSON counts as success (the status already did).
    """

    def check(reply: HTTPReply) -> None:
        try:
            parsed = json.loads(reply.body)
        except ValueError:
            return
        if not isinstance(parsed, dict):
            return
        for key in code_keys:
            code = parsed.get(key)
            if isinstance(code, int) and code != 0:
                message = parsed.get("errmsg") or parsed.get("msg") or parsed.get("StatusMessage")
                raise NotifyError(
                    f"{what}: error code {code}: {message or ''}",
                    retryable=code in retry_codes,
                    reason=REASON_CLIENT_ERROR if code not in retry_codes else REASON_OTHER,
                )

    return check


def string_list(value: Any) -> list[str]:
    """A config list of strings (None when unset)."""
    return [str(v) for v in value] if isinstance(value, list | tuple) else []


def append_keywords(text: str, keywords: Sequence[str]) -> str:
    """The robot keywords some bots require, on a trailing line."""
    if not keywords:
        return text
    return f"{text}\n[Keywords] {', '.join(keywords)}"
