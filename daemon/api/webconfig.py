"""``--web.config.file``: exporter-toolkit's web config (TLS, basic auth, headers).

The file is exporter-toolkit v0.8.2's ``web.Config`` (Alertmanager 0.25's), read with
yaml.v2's strict mode::

    tls_server_config:            # see daemon/config/tls_server.py
      cert_file: server.pem
      key_file: server-key.pem
    http_server_config:
      http2: true                 # offered by ALPN over TLS; decided at start-up
      headers:                    # only exporter-toolkit's five headers
        X-Frame-Options: deny
    basic_auth_users:             # user: bcrypt hash
      alice: $2y$10$...

Rules, as exporter-toolkit has them:

* Start-up validates everything (YAML, headers, every hash's bcrypt cost, TLS); a bad
  file stops the daemon. A file without any TLS setting serves plain HTTP, for good:
  adding TLS later needs a restart.
* Every request re-reads the file: headers and users take effect at once. A file that
  no longer parses answers 500 to every request (and is logged) until it is fixed.
* Every TLS connection re-reads the file and the certificates, so renewed certificates
  and a changed ``client_auth_type`` apply to the next connection; a broken file or
  certificate fails that handshake. ``http2`` is taken from the start-up file only.
* Both re-reads are keyed by the files' ``stat`` (inode, size, mtime), so an unchanged
  file costs a few ``stat`` calls, not a parse. A file modified less than
  :data:`RACY_NS` before it was read is read again next time (git's "racily clean"
  rule): a same-size rewrite within one timestamp tick is not missed.

Authentication is a seam (:class:`Authenticator`): the web config's
``basic_auth_users`` are one implementation; multi-tenancy brings identities from its
own file through the same seam, and then a web config with ``basic_auth_users`` is
refused at start-up (:func:`refuse_basic_auth_users`) while its TLS settings still apply.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import os
import secrets
import ssl
from collections.abc import Awaitable, Callable, Mapping, MutableMapping
from typing import Any, Protocol

import attrs
import bcrypt
import structlog
import trio

from daemon.clock import Clock, SystemClock
from daemon.config.decode import Bool, Field, MapOf, Obj, Secret, Struct
from daemon.config.errors import ConfigError
from daemon.config.schema import STR
from daemon.config.tls_server import (
    SERVER_FILES,
    Locator,
    NoTLSConfig,
    decode_strict,
    load_flag_file,
    server_config_type,
    server_context,
    with_directory,
)
from daemon.gocompat.strconv import go_quote

log = structlog.get_logger("tocsin.web")

#: exporter-toolkit's ``extraHTTPHeaders``: the headers a web config may set, and their
#: allowed values (empty: any value).
EXTRA_HTTP_HEADERS: dict[str, tuple[str, ...]] = {
    "Strict-Transport-Security": (),
    "X-Content-Type-Options": ("nosniff",),
    "X-Frame-Options": ("deny", "sameorigin"),
    "X-XSS-Protection": (),
    "Content-Security-Policy": (),
}
#: exporter-toolkit's stand-in hash for unknown users ("fakepassword"), so that the
#: answer for an unknown user takes as long as for a wrong password.
_FAKE_HASH = b"$2y$10$QOauhQNbBCuQDKes6eFzPeMqBSjb7Mr5DUmpZ/VcEd00UAV/LDeSi"
#: How recent a file's mtime may be for its ``stat`` not to be trusted as a cache key.
RACY_NS = 2_000_000_000
#: Verified (user, hash, password) outcomes kept; the oldest go first.
AUTH_CACHE_SIZE = 1024


class WebConfigError(ValueError):
    """The ``--web.config.file`` cannot be used (the daemon should exit 1)."""


# --- the file ------------------------------------------------------------------------------


def _tls_defaults() -> Obj:
    return {
        "cert_file": "",
        "key_file": "",
        "client_auth_type": "",
        "client_ca_file": "",
        "cipher_suites": None,
        "curve_preferences": None,
        "min_version": "TLS12",
        "max_version": "TLS13",
        "prefer_server_cipher_suites": True,
    }


def _http_defaults() -> Obj:
    return {"http2": True, "headers": None}


HTTP_CONFIG = Struct(
    "web.HTTPConfig",
    [Field("http2", Bool()), Field("headers", MapOf(STR))],
    defaults=_http_defaults,
    pointer=False,
)
_TLS_SERVER = server_config_type(_tls_defaults)
_TLS_SERVER.pointer = False
WEB_CONFIG = Struct(
    "web.Config",
    [
        Field("tls_server_config", _TLS_SERVER),
        Field("http_server_config", HTTP_CONFIG),
        Field("basic_auth_users", MapOf(Secret(), "map[string]config.Secret")),
    ],
    defaults=lambda: {
        "tls_server_config": _tls_defaults(),
        "http_server_config": _http_defaults(),
        "basic_auth_users": None,
    },
    pointer=False,
)


@attrs.frozen
class WebConfig:
    """One reading of the file (relative paths already joined to its folder)."""

    tls: Obj
    http2: bool
    headers: tuple[tuple[str, str], ...]
    #: user → bcrypt hash
    users: Mapping[str, bytes]
    where: Locator

    @property
    def tls_files(self) -> tuple[str, ...]:
        return tuple(self.tls[key] for key in SERVER_FILES if self.tls[key])

    def ssl_context(self) -> ssl.SSLContext:
        """``web.ConfigToTLSConfig``; reads the certificate files (blocking).

        Raises:
            NoTLSConfig: the file sets no TLS at all (serve plain HTTP).
            ConfigError: upstream's message for the problem.
        """
        ctx = server_context(self.tls, self.where.under("tls_server_config"))
        ctx.set_alpn_protocols(["h2", "http/1.1"] if self.http2 else ["http/1.1"])
        return ctx


def parse_web_config(text: str, directory: str) -> WebConfig:
    """``getConfig``: strict YAML, then the header check (what every request re-runs).

    Raises:
        ConfigError: what exporter-toolkit rejects, located by line and key.
    """
    config, where = decode_strict(WEB_CONFIG, text)
    headers = config["http_server_config"]["headers"] or {}
    for name, value in headers.items():
        _check_header(name, value, where.under("http_server_config.headers"))
    return WebConfig(
        tls=with_directory(config["tls_server_config"], directory, SERVER_FILES),
        http2=bool(config["http_server_config"]["http2"]),
        headers=tuple(headers.items()),
        users={user: str(h).encode() for user, h in (config["basic_auth_users"] or {}).items()},
        where=where,
    )


def _check_header(name: str, value: str, where: Locator) -> None:
    """exporter-toolkit's ``validateHeaderConfig``."""
    if name not in EXTRA_HTTP_HEADERS:
        raise where.error(f"HTTP header {go_quote(name)} can not be configured", name)
    allowed = EXTRA_HTTP_HEADERS[name]
    if allowed and value not in allowed:
        shown = "[" + " ".join(go_quote(v) for v in allowed) + "]"
        raise where.error(
            f"invalid value for {name}. Expected one of: {shown}, but got: {go_quote(value)}",
            name,
        )


def bcrypt_cost_error(hashed: bytes) -> str | None:
    """Go's ``bcrypt.Cost`` verdict on a hash: its error text, or None if usable."""
    if len(hashed) < 59:
        return "crypto/bcrypt: hashedSecret too short to be a bcrypted password"
    if hashed[0:1] != b"$":
        return (
            "crypto/bcrypt: bcrypt hashes must start with '$', but hashedSecret started "
            f"with '{hashed[0:1].decode(errors='replace')}'"
        )
    if hashed[1:2] > b"2":
        return (
            f"crypto/bcrypt: bcrypt algorithm version '{hashed[1:2].decode(errors='replace')}' "
            "requested is newer than current version '2'"
        )
    rest = hashed[3:] if hashed[2:3] == b"$" else hashed[4:]
    digits = rest[:2].decode(errors="replace")
    if not (len(digits) == 2 and digits.isascii() and digits.isdigit()):
        return f'strconv.Atoi: parsing "{digits}": invalid syntax'
    cost = int(digits)
    if not 4 <= cost <= 31:
        return f"crypto/bcrypt: cost {cost} is outside allowed range (4,31)"
    return None


def validate_start(config: WebConfig) -> ssl.SSLContext | None:
    """exporter-toolkit's start-up checks: every user's hash, then TLS.

    Returns the TLS context, or None when the file sets no TLS (plain HTTP).

    Raises:
        ConfigError: the first problem, located by line and key.
    """
    for user, hashed in config.users.items():
        problem = bcrypt_cost_error(hashed)
        if problem is not None:
            raise config.where.under("basic_auth_users").error(problem, user)
    try:
        return config.ssl_context()
    except NoTLSConfig:
        return None


def refuse_basic_auth_users(config: WebConfig, reason: str) -> None:
    """For a caller that brings its own identities (tenancy): users here are an error.

    Raises:
        ConfigError: the file lists ``basic_auth_users``.
    """
    if config.users:
        raise config.where.error(
            f"basic_auth_users cannot be used together with {reason}", "basic_auth_users"
        )


# --- re-reading ----------------------------------------------------------------------------

_Signature = tuple[tuple[int, int, int, int] | None, ...]


def _racy(signature: _Signature, now_ns: int) -> bool:
    """Whether a file in ``signature`` changed so recently that a rewrite of the same
    size could still keep the same mtime."""
    return any(s is None or now_ns - s[3] < RACY_NS for s in signature)


def _signature(paths: tuple[str, ...]) -> _Signature:
    out: list[tuple[int, int, int, int] | None] = []
    for path in paths:
        try:
            st = os.stat(path)
        except OSError:
            out.append(None)
        else:
            out.append((st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns))
    return tuple(out)


class WebConfigFile:
    """The file as it is now: re-read when its ``stat`` changes (see the module rules)."""

    def __init__(
        self, path: str, first: WebConfig, http2: bool, clock: Clock | None = None
    ) -> None:
        self.path = path
        self.http2 = http2
        self._clock = clock or SystemClock()
        self._signature = _signature((path,))
        self._racy = True
        self._current: WebConfig | ConfigError | OSError = first
        self._tls_signature: _Signature | None = None
        self._tls: ssl.SSLContext | None = None
        self._tls_racy = True

    def _read(self) -> WebConfig | ConfigError | OSError:
        try:
            with open(self.path, encoding="utf-8") as f:
                text = f.read()
        except (OSError, UnicodeDecodeError) as exc:
            return exc if isinstance(exc, OSError) else OSError(str(exc))
        try:
            return parse_web_config(text, os.path.dirname(self.path))
        except ConfigError as exc:
            return exc.with_file(self.path)

    def stale(self) -> bool:
        """Whether the file must be read again (one ``stat``)."""
        return self._racy or _signature((self.path,)) != self._signature

    def current(self) -> WebConfig:
        """The file's config now (blocking: may re-read the file).

        Raises:
            ConfigError, OSError: the file no longer reads or parses.
        """
        signature = _signature((self.path,))
        if self._racy or signature != self._signature:
            self._signature = signature
            self._racy = _racy(signature, self._clock.now())
            self._current = self._read()
        if isinstance(self._current, Exception):
            raise self._current
        return self._current

    def ssl_context(self) -> ssl.SSLContext:
        """A context from the file and certificates as they are now (blocking).

        Raises:
            ConfigError, OSError: the file or a certificate is unusable now.
        """
        config = self.current()
        signature = (*self._signature, *_signature(config.tls_files))
        if signature != self._tls_signature or self._tls is None or self._tls_racy:
            self._tls = None
            self._tls_signature = signature
            self._tls_racy = _racy(signature, self._clock.now())
            self._tls = attrs.evolve(config, http2=self.http2).ssl_context()
        return self._tls


def open_web_config(
    path: str, clock: Clock | None = None
) -> tuple[WebConfigFile, ssl.SSLContext | None]:
    """Read and validate ``path`` at start-up; the TLS context, or None for plain HTTP.

    Raises:
        WebConfigError: the message names the flag, file, line and key.
    """

    def parse_and_check(text: str, directory: str) -> tuple[WebConfig, ssl.SSLContext | None]:
        config = parse_web_config(text, directory)
        return config, validate_start(config)

    config, tls = load_flag_file("web.config.file", path, parse_and_check, WebConfigError)
    source = WebConfigFile(path, config, config.http2, clock)
    return source, (ReloadingServerContext(source) if tls is not None else None)


class ReloadingServerContext(ssl.SSLContext):
    """Go's ``GetConfigForClient``: each new TLS connection gets a freshly checked context.

    trio's ``SSLStream`` asks its context for ``wrap_bio`` once per connection; this
    answers with the context of the file and certificates as they are now. If they are
    unusable, the connection gets a context without a certificate, so its handshake
    fails (as Go's does) and the listener keeps serving.
    """

    source: WebConfigFile

    def __new__(cls, source: WebConfigFile) -> ReloadingServerContext:
        self = super().__new__(cls, ssl.PROTOCOL_TLS_SERVER)
        self.source = source
        return self

    def wrap_bio(
        self,
        incoming: ssl.MemoryBIO,
        outgoing: ssl.MemoryBIO,
        server_side: bool = False,
        server_hostname: str | bytes | None = None,
        session: ssl.SSLSession | None = None,
    ) -> ssl.SSLObject:
        try:
            ctx = self.source.ssl_context()
        except (ConfigError, OSError, ssl.SSLError, ValueError) as exc:
            log.error("web.tls_config_failed", file=self.source.path, err=str(exc))
            ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        return ctx.wrap_bio(
            incoming,
            outgoing,
            server_side=server_side,
            server_hostname=server_hostname,
            session=session,
        )


# --- authentication ------------------------------------------------------------------------


class Authenticator(Protocol):
    """Decides whether a request's ``Authorization`` header lets it in.

    The seam multi-tenancy plugs into: it returns the identity (a user or tenant name)
    or None to answer 401.
    """

    async def authenticate(self, authorization: str | None, config: WebConfig) -> str | None: ...


def parse_basic_auth(authorization: str | None) -> tuple[str, str] | None:
    """Go's ``Request.BasicAuth``: ``Basic <base64 user:password>``, or None."""
    prefix = "basic "
    if authorization is None or authorization[: len(prefix)].lower() != prefix:
        return None
    try:
        decoded = base64.b64decode(authorization[len(prefix) :], validate=True)
    except (binascii.Error, ValueError):
        return None
    user, sep, password = decoded.decode("utf-8", errors="surrogateescape").partition(":")
    return (user, password) if sep else None


class BasicAuthUsers:
    """``basic_auth_users``: bcrypt hashes, with verified outcomes cached.

    bcrypt costs tens of milliseconds by design, so it runs in a thread, one at a time
    (as exporter-toolkit's mutex has it), and each (user, hash, password) outcome is
    remembered: a hot client pays bcrypt once. The cache key is an HMAC under a key
    made at start-up, so no password is kept in memory, and a changed hash in the file
    is a new key. Unknown users are checked against a fixed hash, so their answer takes
    as long as a wrong password's; bcrypt's own comparison is constant-time.
    """

    def __init__(self, cache_size: int = AUTH_CACHE_SIZE) -> None:
        self._key = secrets.token_bytes(32)
        self._cache: MutableMapping[bytes, bool] = {}
        self._cache_size = cache_size
        self._limiter = trio.CapacityLimiter(1)

    def _cache_key(self, user: str, hashed: bytes, password: str) -> bytes:
        message = b"\0".join(
            (
                user.encode(errors="surrogateescape"),
                hashed,
                password.encode(errors="surrogateescape"),
            )
        )
        return hmac.new(self._key, message, hashlib.sha256).digest()

    async def authenticate(self, authorization: str | None, config: WebConfig) -> str | None:
        credentials = parse_basic_auth(authorization)
        if credentials is None:
            return None
        user, password = credentials
        known = user in config.users
        hashed = config.users[user] if known else _FAKE_HASH
        key = self._cache_key(user, hashed, password)
        ok = self._cache.get(key)
        if ok is None:
            ok = await trio.to_thread.run_sync(
                _bcrypt_matches, hashed, password, limiter=self._limiter
            )
            if len(self._cache) >= self._cache_size:
                # drop the oldest tenth at once, so a full cache is not trimmed per request
                for old in list(self._cache)[: max(1, self._cache_size // 10)]:
                    del self._cache[old]
            self._cache[key] = ok
        return user if ok and known else None


def _bcrypt_matches(hashed: bytes, password: str) -> bool:
    try:
        return bcrypt.checkpw(password.encode(errors="surrogateescape"), hashed)
    except ValueError:
        # a hash that became malformed after start-up: no password matches it
        return False


# --- the ASGI gate -------------------------------------------------------------------------

Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]
#: loose on purpose: quart and hypercorn each type the ASGI messages their own way
ASGIApp = Callable[[Any, Any, Any], Awaitable[None]]


class WebGate:
    """exporter-toolkit's ``webHandler`` in front of every endpoint (API, UI, /metrics,
    /-/healthy): re-read the file, add its headers, then check credentials.

    ``authenticator`` replaces ``basic_auth_users`` (tenancy); the identity it returns is
    put in the ASGI scope as ``tocsin.identity``.
    """

    def __init__(
        self,
        app: ASGIApp,
        source: WebConfigFile,
        authenticator: Authenticator | None = None,
    ) -> None:
        self.app = app
        self.source = source
        self.authenticator = authenticator
        self._basic = BasicAuthUsers()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "websocket":
            # tocsin serves no websocket; refuse rather than let one past the checks
            await send({"type": "websocket.close", "code": 1008})
            return
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        try:
            if self.source.stale():
                # re-reading is file I/O: off the event loop
                config = await trio.to_thread.run_sync(self.source.current)
            else:
                config = self.source.current()
        except (ConfigError, OSError) as exc:
            log.error("web.config_failed", file=self.source.path, err=str(exc))
            await _plain_error(send, 500, "Internal Server Error", ())
            return
        extra = [(k.encode(), v.encode()) for k, v in config.headers]
        auth: Authenticator | None = self.authenticator
        if auth is None and config.users:
            auth = self._basic
        if auth is not None:
            identity = await auth.authenticate(_header(scope, b"authorization"), config)
            if identity is None:
                await _plain_error(
                    send, 401, "Unauthorized", [*extra, (b"www-authenticate", b"Basic")]
                )
                return
            scope["tocsin.identity"] = identity
        if not extra:
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: MutableMapping[str, Any]) -> None:
            if message["type"] == "http.response.start":
                present = {bytes(k).lower() for k, _ in message.get("headers", ())}
                added = [(k, v) for k, v in extra if k.lower() not in present]
                message = {**message, "headers": [*message.get("headers", ()), *added]}
            await send(message)

        await self.app(scope, receive, send_with_headers)


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope.get("headers", ()):
        if bytes(key).lower() == name:
            return bytes(value).decode("latin-1")
    return None


async def _plain_error(
    send: Send, status: int, text: str, headers: list[tuple[bytes, bytes]] | tuple[()]
) -> None:
    """Go's ``http.Error``: a text/plain body of the status text and a newline."""
    body = f"{text}\n".encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                *headers,
                (b"content-type", b"text/plain; charset=utf-8"),
                (b"x-content-type-options", b"nosniff"),
                (b"content-length", str(len(body)).encode()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})
