"""The HTTP side of tocsinctl: one client per run, built from the global flags.

Authentication comes from, in this order of precedence: ``--bearer-token(-file)``, the
``--http.config.file`` (Prometheus' ``http_config``), and ``user:password@`` in the URL.
amtool refuses URL credentials together with an http config file; so does this.

Error handling: every transport and HTTP failure becomes a :class:`CtlError` whose hint
names the flag that fixes it.
"""

from __future__ import annotations

import ssl
import urllib.parse
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import attrs
import httpx
import yaml

from daemon.ctl.errors import CtlError
from daemon.gocompat.duration import DurationError, parse_go_duration

_SETTINGS_HINT = "set --alertmanager.url, or alertmanager.url in ~/.config/tocsin/tocsinctl.yml"


@attrs.frozen
class Connection:
    """Where and how to reach the server (the resolved global flags)."""

    url: str
    timeout: str = "30s"
    http_config_file: str | None = None
    tenant: str | None = None
    bearer_token: str | None = None
    bearer_token_file: str | None = None

    @classmethod
    def from_values(cls, values: Mapping[str, Any]) -> Connection:
        return cls(
            url=values["alertmanager_url"],
            timeout=values["timeout"],
            http_config_file=values["http_config_file"],
            tenant=values["tenant"],
            bearer_token=values["bearer_token"],
            bearer_token_file=values["bearer_token_file"],
        )


def _read_secret(path: str, what: str) -> str:
    try:
        return Path(path).read_text(encoding="utf-8").strip()
    except OSError as exc:
        raise CtlError(f"cannot read {what} {path}: {exc.strerror}") from None


def _http_config(path: str) -> tuple[dict[str, str], httpx.Auth | None, dict[str, Any]]:
    """Headers, auth and httpx client options from a Prometheus ``http_config`` file."""
    try:
        raw = yaml.safe_load(Path(path).read_text(encoding="utf-8")) or {}
    except OSError as exc:
        raise CtlError(
            f"failed to load HTTP config file: {path}: {exc.strerror}",
            hint="--http.config.file must name a readable YAML file",
        ) from None
    except yaml.YAMLError as exc:
        raise CtlError(f"failed to load HTTP config file: {path}: {exc}") from None
    if not isinstance(raw, dict):
        raise CtlError(f"failed to load HTTP config file: {path}: not a mapping")
    base = Path(path).parent
    headers: dict[str, str] = {}
    auth: httpx.Auth | None = None
    options: dict[str, Any] = {"follow_redirects": bool(raw.get("follow_redirects", True))}

    def file(name: str) -> str:
        return str(base / name)

    basic = raw.get("basic_auth")
    if isinstance(basic, dict):
        password = str(basic.get("password") or "")
        if basic.get("password_file"):
            password = _read_secret(file(basic["password_file"]), "password_file")
        auth = httpx.BasicAuth(str(basic.get("username") or ""), password)
    authorization = raw.get("authorization")
    if isinstance(authorization, dict):
        credentials = str(authorization.get("credentials") or "")
        if authorization.get("credentials_file"):
            credentials = _read_secret(file(authorization["credentials_file"]), "credentials_file")
        headers["Authorization"] = f"{authorization.get('type') or 'Bearer'} {credentials}"
    if raw.get("bearer_token"):
        headers["Authorization"] = f"Bearer {raw['bearer_token']}"
    if raw.get("bearer_token_file"):
        token = _read_secret(file(raw["bearer_token_file"]), "bearer_token_file")
        headers["Authorization"] = f"Bearer {token}"
    tls = raw.get("tls_config")
    if isinstance(tls, dict):
        context = ssl.create_default_context(
            cafile=file(tls["ca_file"]) if tls.get("ca_file") else None
        )
        if tls.get("cert_file") and tls.get("key_file"):
            context.load_cert_chain(file(tls["cert_file"]), file(tls["key_file"]))
        if tls.get("insecure_skip_verify"):
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
        options["verify"] = context
    if raw.get("proxy_url"):
        options["proxy"] = str(raw["proxy_url"])
    return headers, auth, options


@attrs.define
class Api:
    """A synchronous client of the Alertmanager API v2 (and tocsin's extras)."""

    base: str
    http: httpx.Client

    @classmethod
    def open(cls, conn: Connection, transport: httpx.BaseTransport | None = None) -> Api:
        """A client for ``conn``; ``transport`` replaces the network (tests)."""
        parsed = urllib.parse.urlsplit(conn.url if "://" in conn.url else f"http://{conn.url}")
        if parsed.scheme not in ("http", "https") or not parsed.hostname:
            raise CtlError(
                f"invalid --alertmanager.url {conn.url!r}",
                hint="give it as http://host:9093 or https://host:9093",
            )
        try:
            seconds = parse_go_duration(conn.timeout) / 1e9
        except DurationError as exc:
            raise CtlError(f"invalid --timeout: {exc}", hint="for example --timeout=30s") from None
        headers: dict[str, str] = {}
        auth: httpx.Auth | None = None
        options: dict[str, Any] = {}
        if parsed.username is not None:
            if conn.http_config_file:
                raise CtlError("basic authentication and http.config.file are mutually exclusive")
            auth = httpx.BasicAuth(
                urllib.parse.unquote(parsed.username), urllib.parse.unquote(parsed.password or "")
            )
        if conn.http_config_file:
            headers, auth, options = _http_config(conn.http_config_file)
        if conn.bearer_token_file:
            headers["Authorization"] = (
                f"Bearer {_read_secret(conn.bearer_token_file, '--bearer-token-file')}"
            )
        if conn.bearer_token:
            headers["Authorization"] = f"Bearer {conn.bearer_token}"
        if conn.tenant:
            headers["X-Scope-OrgID"] = conn.tenant
        netloc = parsed.hostname if parsed.port is None else f"{parsed.hostname}:{parsed.port}"
        if ":" in (parsed.hostname or "") and parsed.port is None:
            netloc = f"[{parsed.hostname}]"
        elif ":" in (parsed.hostname or ""):
            netloc = f"[{parsed.hostname}]:{parsed.port}"
        base = urllib.parse.urlunsplit((parsed.scheme, netloc, parsed.path.rstrip("/"), "", ""))
        client = httpx.Client(
            headers=headers, auth=auth, timeout=seconds, transport=transport, **options
        )
        return cls(base, client)

    def close(self) -> None:
        self.http.close()

    def request(
        self,
        method: str,
        path: str,
        *,
        params: list[tuple[str, str]] | None = None,
        json: Any = None,
        content: bytes | None = None,
        headers: Mapping[str, str] | None = None,
        timeout: float | None = None,
    ) -> httpx.Response:
        """Send one request to ``base + path``; transport failures become :class:`CtlError`.

        So does a 404 for a tenant the server does not know: no command can go on
        from it, and each would otherwise read it as its own "not found".
        """
        url = self.base + path
        extra: dict[str, Any] = {} if timeout is None else {"timeout": timeout}
        try:
            resp = self.http.request(
                method,
                url,
                params=urllib.parse.urlencode(params or []),
                json=json,
                content=content,
                headers=headers,
                **extra,
            )
        except httpx.ConnectError as exc:
            raise CtlError(
                f"cannot connect to {self.base}: {_reason(exc)}",
                hint=f"is tocsin running at {self.base}? {_SETTINGS_HINT}",
            ) from None
        except httpx.TimeoutException:
            raise CtlError(
                f"no answer from {self.base} in time",
                hint="the server is slow or unreachable; raise --timeout (e.g. --timeout=2m)",
            ) from None
        except httpx.HTTPError as exc:
            raise CtlError(f"request to {url} failed: {_reason(exc)}") from None
        if _unknown_tenant(resp):
            check(resp)
        return resp

    def call(
        self,
        method: str,
        path: str,
        *,
        params: list[tuple[str, str]] | None = None,
        json: Any = None,
    ) -> Any:
        """Like :meth:`request`, for API v2: the decoded body of a 2xx answer, else CtlError."""
        resp = self.request(method, "/api/v2" + path, params=params, json=json)
        check(resp)
        if not resp.content:
            return None
        try:
            return resp.json()
        except ValueError:
            raise CtlError(
                f"unexpected answer from {resp.request.url}: not JSON",
                hint=f"is {self.base} an Alertmanager API? {_SETTINGS_HINT}",
            ) from None


def _reason(exc: Exception) -> str:
    text = str(exc)
    # httpx repeats errno text like "[Errno 111] Connection refused"; keep the words.
    return text.split("] ", 1)[-1] if text.startswith("[Errno") else text or type(exc).__name__


def server_message(resp: httpx.Response) -> str:
    """The server's own error text: a JSON string, a ``{"message"}`` or ``{"error"}``
    object (tocsin's own endpoints), or the body."""
    try:
        body = resp.json()
    except ValueError:
        return resp.text.strip()
    if isinstance(body, str):
        return body.strip()
    if isinstance(body, dict):
        for key in ("message", "error"):
            if body.get(key):
                return str(body[key]).strip()
    return resp.text.strip()


def _unknown_tenant(resp: httpx.Response) -> bool:
    return (
        resp.status_code == 404
        and "X-Scope-OrgID" in resp.request.headers
        and "unknown tenant" in server_message(resp)
    )


def _hint(resp: httpx.Response) -> str | None:
    """What to do about a refused request, from its status and what was sent."""
    sent_token = "Authorization" in resp.request.headers
    tenant = resp.request.headers.get("X-Scope-OrgID")
    if resp.status_code == 401 and sent_token:
        return (
            "the server refused the credentials sent: check the token given by "
            "--bearer-token, --bearer-token-file or --http.config.file"
        )
    if resp.status_code == 401:
        return (
            "the server wants credentials: set --bearer-token, --bearer-token-file or "
            "--http.config.file (or user:password@ in --alertmanager.url)"
        )
    if resp.status_code == 403 and tenant is not None:
        return (
            f"this token may not act for tenant {tenant!r}: drop --tenant to use the "
            "token's own tenant, or use an admin token"
        )
    if resp.status_code == 403:
        return "this token may not do this: use an admin token (--bearer-token)"
    if _unknown_tenant(resp):
        return (
            "check the name given to --tenant; 'tocsinctl tenant list' (admin token) "
            "shows the tenants"
        )
    if resp.status_code == 404 and "/silence" not in resp.request.url.path:
        origin = f"{resp.request.url.scheme}://{resp.request.url.netloc.decode()}"
        return f"is {origin} an Alertmanager API? {_SETTINGS_HINT}"
    return None


def check(resp: httpx.Response) -> None:
    """Raise a :class:`CtlError` with a hint for a non-2xx answer."""
    if resp.is_success:
        return
    message = f"{resp.request.method} {resp.request.url.path}: HTTP {resp.status_code}"
    detail = server_message(resp)
    if detail:
        message += f": {detail}"
    raise CtlError(message, hint=_hint(resp))
