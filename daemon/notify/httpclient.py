"""Per-integration HTTP clients built from ``http_config`` (TLS, proxy, OAuth2).

Theory of operation: :class:`HttpClients` lives as long as the daemon (across config
reloads) and hands every integration the sender (:class:`~daemon.notify.http1.HttpSender`)
its ``http_config`` asks for. Entries with nothing client-level configured (no TLS
settings, proxy or OAuth2) get the shared default sender, the small HTTP/1.1 client of
:mod:`daemon.notify.http1` (which hands redirects to httpx); the others get an
:class:`HttpxSender` around an ``httpx.AsyncClient`` built once per distinct setting
and shared by identical entries. Per-request settings (basic_auth,
authorization, follow_redirects) stay with the request code in
:mod:`daemon.notify.receivers._http` and :mod:`daemon.notify.receivers.webhook`.

Every client's transport is wrapped in a :class:`BoundedTransport` holding one
limiter for all clients, and the default sender takes its slots from the same
limiter, so the in-flight bound is daemon-wide as before.

Error handling: building a client reads the TLS files; a missing or invalid file
raises :class:`HttpClientConfigError` at config load, as Alertmanager refuses such a
configuration. OAuth2 token fetch failures become retryable ``httpx.TransportError``
so the notify retry loop handles them like a connection failure.
"""

from __future__ import annotations

import json
import os
import ssl
import tempfile
import time
import urllib.parse
import urllib.request
from collections.abc import AsyncGenerator, Callable, Mapping
from typing import Any

import attrs
import httpx
import trio

from daemon.config.model import HTTPConfig
from daemon.notify.http1 import Http1Client, HTTPReply, HttpSender
from daemon.notify.http_limit import BoundedTransport
from daemon.notify.retry import NotifyError
from daemon.notify.sender import ProcessSender

#: golang.org/x/oauth2 treats a token as expired this long before its real expiry.
TOKEN_EXPIRY_DELTA = 10.0
#: Keys whose values make a dedicated client necessary.
CLIENT_KEYS = (
    "tls_config",
    "proxy_url",
    "no_proxy",
    "proxy_from_environment",
    "proxy_connect_header",
    "oauth2",
)

_TLS_VERSIONS = {
    "TLS10": ssl.TLSVersion.TLSv1,
    "TLS11": ssl.TLSVersion.TLSv1_1,
    "TLS12": ssl.TLSVersion.TLSv1_2,
    "TLS13": ssl.TLSVersion.TLSv1_3,
}


class HttpClientConfigError(ValueError):
    """An ``http_config`` that cannot become a client (unreadable CA, bad key …)."""


def _is_set(value: Any) -> bool:
    # The loader fills defaults in (tls_config: {insecure_skip_verify: false, ...}),
    # which is not the operator asking for anything.
    if isinstance(value, dict):
        return any(_is_set(v) for v in value.values())
    if isinstance(value, list | tuple):
        return bool(value)
    return bool(value)


def needs_own_client(config: HTTPConfig) -> bool:
    """Whether ``config`` sets anything the shared default client cannot honour."""
    return any(_is_set(config.raw.get(k)) for k in CLIENT_KEYS)


def _file_stamps(raw: Mapping[str, Any]) -> list[tuple[str, int, int]]:
    tls_configs = [raw.get("tls_config")]
    oauth2 = raw.get("oauth2")
    if isinstance(oauth2, dict):
        tls_configs.append(oauth2.get("tls_config"))
    stamps = []
    for tls in tls_configs:
        if not isinstance(tls, dict):
            continue
        for name in ("ca_file", "cert_file", "key_file"):
            path = str(tls.get(name) or "")
            if path:
                try:
                    st = os.stat(path)
                except OSError:
                    stamps.append((path, -1, -1))
                else:
                    stamps.append((path, st.st_mtime_ns, st.st_size))
    return stamps


def client_key(raw: Mapping[str, Any]) -> str:
    """The cache key: the client-level settings, canonically encoded.

    TLS files' modification times are part of it, so a reload after a certificate
    rotation builds a fresh client while an unchanged config keeps its pool.
    """
    relevant = {k: raw.get(k) for k in CLIENT_KEYS if _is_set(raw.get(k))}
    return json.dumps([relevant, _file_stamps(raw)], sort_keys=True, default=str)


# --- TLS ---------------------------------------------------------------------------


def _load_cert_chain(ctx: ssl.SSLContext, tls: Mapping[str, Any]) -> None:
    cert_file, key_file = str(tls.get("cert_file") or ""), str(tls.get("key_file") or "")
    cert, key = str(tls.get("cert") or ""), str(tls.get("key") or "")
    if not (cert_file or cert):
        return
    if cert_file and (key_file or not key):
        ctx.load_cert_chain(cert_file, key_file or None)
        return
    # ssl only loads certificates from files: inline ones go through a private
    # temporary directory that is removed at once.
    with tempfile.TemporaryDirectory() as tmp:
        if not cert_file:
            cert_file = os.path.join(tmp, "cert.pem")
            with open(cert_file, "w") as f:
                f.write(cert)
        if not key_file and key:
            key_file = os.path.join(tmp, "key.pem")
            with open(key_file, "w", opener=lambda p, fl: os.open(p, fl, 0o600)) as f:
                f.write(key)
        ctx.load_cert_chain(cert_file, key_file or None)


def ssl_context(tls: Mapping[str, Any] | None) -> ssl.SSLContext:
    """The client ``SSLContext`` for a ``tls_config`` (system CAs when none is given).

    As Go's ``tls.Config``, a configured CA replaces the system pool.
    """
    tls = tls or {}
    ca_file, ca = str(tls.get("ca_file") or ""), str(tls.get("ca") or "")
    try:
        if ca_file or ca:
            ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
            ctx.load_verify_locations(cafile=ca_file or None, cadata=ca or None)
        else:
            ctx = ssl.create_default_context()
        if tls.get("insecure_skip_verify"):
            ctx.check_hostname = False
            ctx.verify_mode = ssl.CERT_NONE
        _load_cert_chain(ctx, tls)
        min_version = str(tls.get("min_version") or "")
        if min_version:
            ctx.minimum_version = _TLS_VERSIONS[min_version]
        max_version = str(tls.get("max_version") or "")
        if max_version:
            ctx.maximum_version = _TLS_VERSIONS[max_version]
    except (OSError, ssl.SSLError, KeyError, ValueError) as exc:
        raise HttpClientConfigError(f"unable to build TLS config: {exc}") from None
    return ctx


class _ServerNameTransport(httpx.AsyncBaseTransport):
    """Sends ``server_name`` as SNI and verifies the certificate against it."""

    def __init__(self, inner: httpx.AsyncBaseTransport, server_name: str) -> None:
        self._inner = inner
        self._server_name = server_name

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        # httpcore uses this extension both for SNI and for hostname verification,
        # which is what Go's tls.Config.ServerName means.
        request.extensions["sni_hostname"] = self._server_name
        return await self._inner.handle_async_request(request)

    async def aclose(self) -> None:
        await self._inner.aclose()


class _SharedBoundedTransport(BoundedTransport):
    """A :class:`BoundedTransport` counting against a limiter shared by all clients."""

    def __init__(self, inner: httpx.AsyncBaseTransport, limiter: trio.CapacityLimiter) -> None:
        super().__init__(inner, 1)
        self._limiter = limiter


# --- proxies -------------------------------------------------------------------------


def no_proxy_patterns(no_proxy: str) -> list[str]:
    """httpx mount patterns for a ``NO_PROXY``-style list (``None`` means all hosts).

    Hosts match themselves and their subdomains; CIDR ranges are not supported by
    httpx patterns and only match when written as one address.
    """
    patterns: list[str] = []
    for item in no_proxy.split(","):
        host = item.strip().lstrip(".")
        if not host:
            continue
        if host == "*":
            return ["all://"]
        if "/" in host:
            host = host.split("/", 1)[0]
        if host.replace(".", "").isdigit() or ":" in host:
            patterns.append(f"all://{host}")
        else:
            patterns.extend([f"all://{host}", f"all://*.{host}"])
    return patterns


def _proxy_headers(raw: Any) -> dict[str, str]:
    if not isinstance(raw, dict):
        return {}
    return {
        str(k): ", ".join(str(x) for x in v) if isinstance(v, list | tuple) else str(v)
        for k, v in raw.items()
    }


def _proxy_url_text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    return str(getattr(value, "url", value) or "")


def proxy_plan(raw: Mapping[str, Any]) -> tuple[dict[str, str], list[str]]:
    """Proxy URL per scheme (``http``/``https``) and the hosts that bypass it."""
    if raw.get("proxy_from_environment"):
        env = urllib.request.getproxies_environment()
        proxies = {s: env[s] for s in ("http", "https") if env.get(s)}
        return proxies, no_proxy_patterns(env.get("no", ""))
    url = _proxy_url_text(raw.get("proxy_url"))
    if not url:
        return {}, []
    return {"http": url, "https": url}, no_proxy_patterns(str(raw.get("no_proxy") or ""))


# --- OAuth2 --------------------------------------------------------------------------


class OAuth2TokenError(httpx.TransportError):
    """The token endpoint refused or failed; retryable like a connection error."""


async def _read_secret(inline: Any, path: Any) -> str:
    if path:
        return (await trio.Path(str(path)).read_text()).strip()
    return str(inline or "")


class OAuth2ClientCredentials(httpx.Auth):
    """OAuth2 client-credentials grant as golang.org/x/oauth2's ``clientcredentials``.

    The token is cached until ``TOKEN_EXPIRY_DELTA`` seconds before it expires; a 401
    from the server drops it and the request is retried once with a fresh one.
    """

    requires_request_body = True

    def __init__(
        self,
        config: Mapping[str, Any],
        token_client: httpx.AsyncClient,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._config = config
        self._client = token_client
        self._monotonic = monotonic
        self._token: str | None = None
        self._token_type = "Bearer"
        self._expires_at: float | None = None
        self._lock: trio.Lock | None = None

    def _valid(self) -> bool:
        if self._token is None:
            return False
        return self._expires_at is None or self._monotonic() < self._expires_at

    async def _fetch(self) -> None:
        cfg = self._config
        secret = await _read_secret(cfg.get("client_secret"), cfg.get("client_secret_file"))
        form = {"grant_type": "client_credentials"}
        scopes = [str(s) for s in cfg.get("scopes") or []]
        if scopes:
            form["scope"] = " ".join(scopes)
        for k, v in (cfg.get("endpoint_params") or {}).items():
            form[str(k)] = str(v)
        # RFC 6749 §2.3.1: id and secret are form-encoded before the Basic header.
        user = urllib.parse.quote_plus(str(cfg.get("client_id") or ""))
        response = await self._client.post(
            str(cfg.get("token_url") or ""),
            data=form,
            auth=httpx.BasicAuth(user, urllib.parse.quote_plus(secret)),
        )
        if not response.is_success:
            raise OAuth2TokenError(
                f"oauth2: cannot fetch token: {response.status_code}\n"
                f"Response: {response.text[:1024]}"
            )
        try:
            body = response.json()
            token = str(body["access_token"])
        except (ValueError, KeyError, TypeError):
            raise OAuth2TokenError("oauth2: server response missing access_token") from None
        if not token:
            raise OAuth2TokenError("oauth2: server response missing access_token")
        self._token = token
        self._token_type = str(body.get("token_type") or "Bearer")
        expires_in = body.get("expires_in")
        self._expires_at = (
            self._monotonic() + float(expires_in) - TOKEN_EXPIRY_DELTA
            if isinstance(expires_in, int | float) and expires_in > 0
            else None
        )

    async def token(self, *, refresh: bool = False) -> str:
        """The current access token, fetching one when missing, expired or ``refresh``."""
        if self._lock is None:
            self._lock = trio.Lock()
        stale = self._token
        async with self._lock:
            # Another task may have refreshed while this one waited.
            if refresh and self._token is not None and self._token == stale:
                self._token = None
            if not self._valid():
                await self._fetch()
            assert self._token is not None
            return self._token

    def _authorize(self, request: httpx.Request, token: str) -> None:
        token_type = "Bearer" if self._token_type.lower() == "bearer" else self._token_type
        request.headers["Authorization"] = f"{token_type} {token}"

    async def async_auth_flow(
        self, request: httpx.Request
    ) -> AsyncGenerator[httpx.Request, httpx.Response]:
        self._authorize(request, await self.token())
        response = yield request
        if response.status_code == 401:
            await response.aread()
            self._authorize(request, await self.token(refresh=True))
            yield request


# --- senders -------------------------------------------------------------------------


@attrs.frozen(eq=False)
class HttpxSender:
    """The :class:`~daemon.notify.http1.HttpSender` over an ``httpx.AsyncClient``.

    Used for entries needing proxies, custom TLS or OAuth2, for redirects the default
    sender hands over, and wherever a caller passes an ``httpx.AsyncClient`` (tests
    with a ``MockTransport``).
    """

    client: httpx.AsyncClient

    async def send(
        self,
        method: str,
        url: str,
        headers: Mapping[str, str],
        body: bytes | None,
        *,
        follow_redirects: bool,
        max_body: int,
    ) -> HTTPReply:
        """Send one request; see :class:`~daemon.notify.http1.HttpSender`."""
        kept = bytearray()
        try:
            async with self.client.stream(
                method, url, content=body, headers=headers, follow_redirects=follow_redirects
            ) as response:
                async for chunk in response.aiter_bytes():
                    kept += chunk
                    if len(kept) >= max_body:
                        break
        except httpx.TransportError as exc:
            # Go's client errors read `Post "<url>": <cause>`; the URL is redacted
            # because notification URLs often embed tokens.
            verb = method[:1].upper() + method[1:].lower()
            raise NotifyError(f'{verb} "<redacted>": {exc}', retryable=True) from None
        return HTTPReply(response.status_code, bytes(kept[:max_body]))


def as_sender(http: httpx.AsyncClient | HttpSender) -> HttpSender:
    """``http`` as a sender: an ``httpx.AsyncClient`` is wrapped in an :class:`HttpxSender`.

    The attrs converter of every field holding a sender, so callers (and tests) may
    still pass an ``httpx.AsyncClient``.
    """
    if isinstance(http, httpx.AsyncClient):
        return HttpxSender(http)
    return http


# --- the cache -----------------------------------------------------------------------


class HttpClients:
    """The daemon's HTTP clients, one per distinct client-level ``http_config``.

    ``default`` is the httpx client for entries with nothing special (OAuth2 token
    fetches and redirects use it too); when not given it is built here and closed by
    :meth:`aclose` with the others. ``default_sender`` is what such entries send
    through: the :class:`~daemon.notify.http1.Http1Client` when ``default`` is built
    here and ``fast`` is on, else ``default`` itself (a caller's own client, e.g. with
    a mock transport, is never bypassed). With ``sender_process="auto"`` that fast
    client's burst requests go through a child process (:mod:`daemon.notify.sender`;
    ``process``, which the caller serves in its nursery).
    """

    def __init__(
        self,
        *,
        timeout: float = 30.0,
        max_in_flight: int = 64,
        default: httpx.AsyncClient | None = None,
        monotonic: Callable[[], float] = time.monotonic,
        fast: bool = True,
        sender_process: str = "off",
    ) -> None:
        self._timeout = timeout
        self._limiter = trio.CapacityLimiter(max_in_flight)
        self._monotonic = monotonic
        self._owns_default = default is None
        self.default = default or httpx.AsyncClient(
            timeout=timeout, transport=self._bounded(httpx.AsyncHTTPTransport())
        )
        self._clients: dict[str, httpx.AsyncClient] = {}
        self._senders: dict[str, HttpSender] = {}
        httpx_default = HttpxSender(self.default)
        self._fast: Http1Client | None = None
        if fast and self._owns_default:
            self._fast = Http1Client(timeout=timeout, limiter=self._limiter, fallback=httpx_default)
        self.default_sender: HttpSender = self._fast or httpx_default
        #: Runs plain-HTTP burst requests in a child process (``serve`` it in a nursery).
        self.process: ProcessSender | None = None
        if self._fast is not None and sender_process != "off":
            self.process = ProcessSender(
                inline=self._fast,
                limiter=self._limiter,
                timeout=timeout,
                fallback=httpx_default,
                mode=sender_process,
            )
            self.default_sender = self.process

    def _bounded(self, inner: httpx.AsyncBaseTransport) -> httpx.AsyncBaseTransport:
        return _SharedBoundedTransport(inner, self._limiter)

    def client_for(self, config: HTTPConfig) -> httpx.AsyncClient:
        """The client for ``config``: the default one unless it needs its own.

        Raises :class:`HttpClientConfigError` when its TLS files cannot be used.
        """
        if not needs_own_client(config):
            return self.default
        return self._client_for_raw(config.raw)

    def sender_for(self, config: HTTPConfig) -> HttpSender:
        """The sender for ``config``: the default sender unless it needs its own client.

        Identical settings share one sender. Raises :class:`HttpClientConfigError`
        when its TLS files cannot be used.
        """
        if not needs_own_client(config):
            return self.default_sender
        key = client_key(config.raw)
        sender = self._senders.get(key)
        if sender is None:
            sender = HttpxSender(self._client_for_raw(config.raw))
            self._senders[key] = sender
        return sender

    def _client_for_raw(self, raw: Mapping[str, Any]) -> httpx.AsyncClient:
        key = client_key(raw)
        client = self._clients.get(key)
        if client is None:
            client = self._build(raw)
            self._clients[key] = client
        return client

    def _transport(
        self, tls: Mapping[str, Any] | None, proxy: httpx.Proxy | None
    ) -> httpx.AsyncBaseTransport:
        inner: httpx.AsyncBaseTransport = httpx.AsyncHTTPTransport(
            verify=ssl_context(tls), proxy=proxy, trust_env=False
        )
        server_name = str((tls or {}).get("server_name") or "")
        if server_name:
            inner = _ServerNameTransport(inner, server_name)
        return self._bounded(inner)

    def _build(self, raw: Mapping[str, Any]) -> httpx.AsyncClient:
        tls = raw.get("tls_config") if isinstance(raw.get("tls_config"), dict) else None
        proxies, bypass = proxy_plan(raw)
        headers = _proxy_headers(raw.get("proxy_connect_header"))
        mounts: dict[str, httpx.AsyncBaseTransport | None] = {}
        for scheme, url in proxies.items():
            mounts[f"{scheme}://"] = self._transport(tls, httpx.Proxy(url, headers=headers))
        if proxies:
            direct = self._transport(tls, None)
            for pattern in bypass:
                mounts[pattern] = direct
        auth: httpx.Auth | None = None
        oauth2 = raw.get("oauth2")
        if isinstance(oauth2, dict) and oauth2:
            # The token endpoint has its own proxy and TLS settings, as upstream.
            token_raw = {k: oauth2.get(k) for k in CLIENT_KEYS if k != "oauth2"}
            token_client = (
                self._client_for_raw(token_raw)
                if any(map(_is_set, token_raw.values()))
                else self.default
            )
            auth = OAuth2ClientCredentials(oauth2, token_client, self._monotonic)
        return httpx.AsyncClient(
            timeout=self._timeout,
            transport=self._transport(tls, None),
            mounts=mounts,
            auth=auth,
            trust_env=False,
        )

    async def aclose(self) -> None:
        """Close every client built here (and the default one if built here)."""
        clients = list(self._clients.values())
        self._clients.clear()
        self._senders.clear()
        if self._fast is not None:
            await self._fast.aclose()
        if self._owns_default:
            clients.append(self.default)
        for client in clients:
            await client.aclose()

    async def __aenter__(self) -> HttpClients:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()
