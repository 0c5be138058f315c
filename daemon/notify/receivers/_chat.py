"""Helpers shared by the chat integrations (slack, discord, msteams, telegram, webex and
the KubeSphere bots): field rendering, message splitting and one JSON POST.

Splitting: when ``split_long_messages`` is on (the default for chat channels), a body
over the channel's limit is sent as several messages, cut at line ends where possible,
instead of Alertmanager's truncation with ``…``.

Error handling: any 2xx is success; 5xx and transport errors (timeouts included) are
retryable; other statuses and template errors are permanent (``NotifyError``).
"""

from __future__ import annotations

import json
import urllib.parse
from collections.abc import Callable, Container, Mapping, Sequence
from typing import Any

from daemon.config.model import HTTPConfig
from daemon.notify.receivers.base import IntegrationEnv
from daemon.notify.receivers.pagerduty import HTTPReply, raise_for_status, send_request
from daemon.notify.retry import REASON_CLIENT_ERROR, REASON_OTHER, NotifyError

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
