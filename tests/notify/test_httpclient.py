"""Per-integration HTTP clients: TLS, proxies and OAuth2 against loopback servers."""

from __future__ import annotations

import datetime
import ipaddress
import json
import ssl
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

import attrs
import httpx
import pytest
import structlog
import trio
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from daemon.config.load import load_config_text
from daemon.config.model import HTTPConfig
from daemon.notify.http1 import Http1Client
from daemon.notify.httpclient import (
    HttpClientConfigError,
    HttpClients,
    HttpxSender,
    needs_own_client,
    no_proxy_patterns,
)
from daemon.notify.receivers.registry import build_integrations
from daemon.notify.receivers.webhook import WebhookIntegration

# --- certificates ----------------------------------------------------------------------


@attrs.frozen
class Issued:
    cert: x509.Certificate
    key: ec.EllipticCurvePrivateKey
    cert_file: str
    key_file: str


def _write(tmp: Path, name: str, cert: x509.Certificate, key: ec.EllipticCurvePrivateKey) -> Issued:
    cert_file, key_file = tmp / f"{name}.crt", tmp / f"{name}.key"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return Issued(cert, key, str(cert_file), str(key_file))


def make_cert(
    tmp: Path,
    name: str,
    issuer: Issued | None = None,
    *,
    sans: list[x509.GeneralName] | None = None,
    client: bool = False,
) -> Issued:
    """A CA (no issuer) or a leaf signed by ``issuer``, written as PEM files."""
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = datetime.datetime.now(datetime.UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer.cert.subject if issuer else subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(hours=1))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=issuer is None, path_length=None), critical=True)
    )
    if issuer is None:
        builder = builder.add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        ).add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
    else:
        usage = ExtendedKeyUsageOID.CLIENT_AUTH if client else ExtendedKeyUsageOID.SERVER_AUTH
        builder = builder.add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
        builder = builder.add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer.key.public_key()),
            critical=False,
        )
        if sans:
            builder = builder.add_extension(x509.SubjectAlternativeName(sans), critical=False)
    cert = builder.sign(issuer.key if issuer else key, hashes.SHA256())
    return _write(tmp, name, cert, key)


@attrs.frozen
class PKI:
    ca: Issued
    server: Issued
    client_ca: Issued
    client: Issued


@pytest.fixture
def pki(tmp_path: Path) -> PKI:
    """A server CA with a cert for tocsin.test/127.0.0.1, and a client CA with a client cert."""
    ca = make_cert(tmp_path, "ca")
    server = make_cert(
        tmp_path,
        "server",
        ca,
        sans=[x509.DNSName("tocsin.test"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))],
    )
    client_ca = make_cert(tmp_path, "client-ca")
    client = make_cert(tmp_path, "client", client_ca, client=True)
    return PKI(ca, server, client_ca, client)


# --- loopback servers --------------------------------------------------------------------

Reply = tuple[int, bytes]


@attrs.define
class Seen:
    """One request as a server saw it."""

    request_line: str
    headers: dict[str, str]
    body: bytes


@attrs.define
class Server:
    """Answers each request with ``respond(seen)``; optionally TLS."""

    respond: Callable[[Seen], Reply] = lambda seen: (200, b"ok")
    tls: ssl.SSLContext | None = None
    seen: list[Seen] = attrs.field(factory=list)
    sni: list[str | None] = attrs.field(factory=list)
    port: int = 0

    async def _read(self, stream: trio.abc.Stream) -> Seen | None:
        data = b""
        while b"\r\n\r\n" not in data:
            chunk = await stream.receive_some(65536)
            if not chunk:
                return None
            data += chunk
        head, _, body = data.partition(b"\r\n\r\n")
        lines = head.decode().split("\r\n")
        headers = {}
        for line in lines[1:]:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        length = int(headers.get("content-length", "0"))
        while len(body) < length:
            chunk = await stream.receive_some(65536)
            if not chunk:
                return None
            body += chunk
        return Seen(lines[0], headers, body)

    async def handle(self, raw: trio.SocketStream) -> None:
        stream: trio.abc.Stream = raw
        try:
            if self.tls is not None:
                stream = trio.SSLStream(raw, self.tls, server_side=True)
                await stream.do_handshake()
            seen = await self._read(stream)
            if seen is None:
                return
            self.seen.append(seen)
            status, body = self.respond(seen)
            await stream.send_all(
                f"HTTP/1.1 {status} X\r\nContent-Length: {len(body)}\r\n"
                "Connection: close\r\n\r\n".encode()
                + body
            )
            await stream.aclose()
        except (trio.BrokenResourceError, trio.ClosedResourceError, OSError):
            # The client refused our certificate or sent none: that is the test's point.
            return

    @property
    def url(self) -> str:
        scheme = "https" if self.tls is not None else "http"
        return f"{scheme}://127.0.0.1:{self.port}/hook"


async def start(nursery: trio.Nursery, server: Server) -> Server:
    listeners = await nursery.start(partial(trio.serve_tcp, server.handle, 0, host="127.0.0.1"))
    server.port = listeners[0].socket.getsockname()[1]
    return server


def server_tls(pki: PKI, *, require_client: bool = False, max_tls12: bool = False) -> Server:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(pki.server.cert_file, pki.server.key_file)
    if require_client:
        ctx.verify_mode = ssl.CERT_REQUIRED
        ctx.load_verify_locations(pki.client_ca.cert_file)
    if max_tls12:
        ctx.maximum_version = ssl.TLSVersion.TLSv1_2
    server = Server(tls=ctx)

    def record_sni(_sock: Any, name: str | None, _ctx: Any) -> None:
        server.sni.append(name)

    ctx.sni_callback = record_sni
    return server


def tls_config(**fields: Any) -> HTTPConfig:
    base = {
        "ca_file": "",
        "cert_file": "",
        "key_file": "",
        "server_name": "",
        "insecure_skip_verify": False,
        "min_version": "",
        "max_version": "",
    }
    return HTTPConfig(raw={"tls_config": base | fields})


# --- TLS ---------------------------------------------------------------------------------


async def test_ca_file_verifies_the_server(nursery: trio.Nursery, pki: PKI) -> None:
    """A client with the test CA as ca_file completes a request to the HTTPS server."""
    server = await start(nursery, server_tls(pki))
    async with HttpClients() as clients:
        client = clients.client_for(tls_config(ca_file=pki.ca.cert_file))
        assert client is not clients.default
        response = await client.post(server.url, content=b"x")
    assert response.status_code == 200
    assert server.seen[0].body == b"x"


async def test_unknown_ca_fails_verification(nursery: trio.Nursery, pki: PKI) -> None:
    """Without the CA the default client refuses the self-signed server."""
    server = await start(nursery, server_tls(pki))
    async with HttpClients() as clients:
        client = clients.client_for(HTTPConfig())
        assert client is clients.default
        with pytest.raises(httpx.ConnectError):
            await client.post(server.url, content=b"x")
    assert server.seen == []


async def test_insecure_skip_verify_accepts_any_server(nursery: trio.Nursery, pki: PKI) -> None:
    """insecure_skip_verify: true talks to a server whose CA is unknown."""
    server = await start(nursery, server_tls(pki))
    async with HttpClients() as clients:
        client = clients.client_for(tls_config(insecure_skip_verify=True))
        response = await client.post(server.url, content=b"x")
    assert response.status_code == 200


async def test_server_name_is_sent_and_verified(nursery: trio.Nursery, pki: PKI) -> None:
    """server_name goes out as SNI and the certificate must match it, not the URL's host."""
    server = await start(nursery, server_tls(pki))
    async with HttpClients() as clients:
        good = clients.client_for(tls_config(ca_file=pki.ca.cert_file, server_name="tocsin.test"))
        assert (await good.get(server.url)).status_code == 200
        bad = clients.client_for(tls_config(ca_file=pki.ca.cert_file, server_name="other.test"))
        with pytest.raises(httpx.ConnectError):
            await bad.get(server.url)
    assert server.sni[0] == "tocsin.test"


async def test_client_certificate_is_presented(nursery: trio.Nursery, pki: PKI) -> None:
    """A server requiring a client certificate accepts cert_file/key_file, refuses none."""
    server = await start(nursery, server_tls(pki, require_client=True))
    async with HttpClients() as clients:
        with_cert = clients.client_for(
            tls_config(
                ca_file=pki.ca.cert_file,
                cert_file=pki.client.cert_file,
                key_file=pki.client.key_file,
            )
        )
        assert (await with_cert.post(server.url, content=b"a")).status_code == 200
        without = clients.client_for(tls_config(ca_file=pki.ca.cert_file))
        # A GET: a body cut off by the refused handshake leaves httpx's body generator
        # unfinished, which only adds a ResourceWarning to the expected failure.
        with pytest.raises(httpx.TransportError):
            await without.get(server.url)
    assert [s.body for s in server.seen] == [b"a"]


async def test_min_version_above_server_max_fails(nursery: trio.Nursery, pki: PKI) -> None:
    """min_version TLS13 cannot talk to a TLS 1.2-only server; TLS12 can."""
    server = await start(nursery, server_tls(pki, max_tls12=True))
    async with HttpClients() as clients:
        ok = clients.client_for(tls_config(ca_file=pki.ca.cert_file, min_version="TLS12"))
        assert (await ok.get(server.url)).status_code == 200
        strict = clients.client_for(tls_config(ca_file=pki.ca.cert_file, min_version="TLS13"))
        with pytest.raises(httpx.ConnectError):
            await strict.get(server.url)


async def test_unreadable_ca_file_is_a_config_error(tmp_path: Path) -> None:
    """A missing ca_file fails when the client is built, as Alertmanager rejects the config."""
    async with HttpClients() as clients:
        with pytest.raises(HttpClientConfigError, match="unable to build TLS config"):
            clients.client_for(tls_config(ca_file=str(tmp_path / "missing.pem")))


async def test_identical_configs_share_one_client(pki: PKI) -> None:
    """Equal client-level settings give the same client; different ones do not."""
    async with HttpClients() as clients:
        a = clients.client_for(tls_config(ca_file=pki.ca.cert_file))
        b = clients.client_for(tls_config(ca_file=pki.ca.cert_file))
        c = clients.client_for(tls_config(ca_file=pki.ca.cert_file, server_name="x"))
    assert a is b
    assert a is not c


async def test_rotated_ca_file_gives_a_new_client(pki: PKI, tmp_path: Path) -> None:
    """Rewriting a TLS file (a certificate rotation) makes the next lookup build a new client."""
    ca = trio.Path(tmp_path / "rotating.pem")
    pem = await trio.Path(pki.ca.cert_file).read_bytes()
    await ca.write_bytes(pem)
    async with HttpClients() as clients:
        first = clients.client_for(tls_config(ca_file=str(ca)))
        await ca.write_bytes(pem + b"\n")
        second = clients.client_for(tls_config(ca_file=str(ca)))
    assert first is not second


def test_loader_defaults_need_no_own_client() -> None:
    """The loader's defaulted http_config (tls_config full of zero values) uses the default."""
    config = load_config_text(
        "route: {receiver: a}\nreceivers:\n- name: a\n  webhook_configs:\n  - url: http://x/\n"
    )
    assert not needs_own_client(config.receivers[0].webhook_configs[0].http_config)


# --- proxies -----------------------------------------------------------------------------


async def test_proxy_url_routes_requests_through_the_proxy(nursery: trio.Nursery) -> None:
    """With proxy_url the request goes to the proxy in absolute form, not to the target."""
    proxy = await start(nursery, Server())
    sink = await start(nursery, Server())
    async with HttpClients() as clients:
        client = clients.client_for(HTTPConfig(raw={"proxy_url": f"http://127.0.0.1:{proxy.port}"}))
        response = await client.post(sink.url, content=b"via")
    assert response.status_code == 200
    assert sink.seen == []
    assert proxy.seen[0].request_line == f"POST {sink.url} HTTP/1.1"
    assert proxy.seen[0].body == b"via"


async def test_no_proxy_hosts_go_direct(nursery: trio.Nursery) -> None:
    """A host listed in no_proxy bypasses the proxy."""
    proxy = await start(nursery, Server())
    sink = await start(nursery, Server())
    raw = {"proxy_url": f"http://127.0.0.1:{proxy.port}", "no_proxy": "localhost,127.0.0.1"}
    async with HttpClients() as clients:
        await clients.client_for(HTTPConfig(raw=raw)).post(sink.url, content=b"direct")
    assert proxy.seen == []
    assert sink.seen[0].body == b"direct"


async def test_proxy_from_environment(
    nursery: trio.Nursery, monkeypatch: pytest.MonkeyPatch
) -> None:
    """proxy_from_environment uses HTTP_PROXY from the environment."""
    proxy = await start(nursery, Server())
    sink = await start(nursery, Server())
    monkeypatch.setenv("HTTP_PROXY", f"http://127.0.0.1:{proxy.port}")
    monkeypatch.delenv("NO_PROXY", raising=False)
    monkeypatch.delenv("no_proxy", raising=False)
    async with HttpClients() as clients:
        await clients.client_for(HTTPConfig(raw={"proxy_from_environment": True})).get(sink.url)
    assert sink.seen == []
    assert proxy.seen[0].request_line == f"GET {sink.url} HTTP/1.1"


def test_no_proxy_patterns() -> None:
    """NO_PROXY entries become httpx patterns for the host and its subdomains."""
    assert no_proxy_patterns(" .example.com, 10.0.0.1,") == [
        "all://example.com",
        "all://*.example.com",
        "all://10.0.0.1",
    ]
    assert no_proxy_patterns("a,*") == ["all://"]


# --- OAuth2 ------------------------------------------------------------------------------


@attrs.define
class TokenEndpoint:
    """Issues tok1, tok2, … each valid ``expires_in`` seconds."""

    expires_in: int = 3600
    issued: int = 0

    def __call__(self, seen: Seen) -> Reply:
        self.issued += 1
        body = {
            "access_token": f"tok{self.issued}",
            "token_type": "bearer",
            "expires_in": self.expires_in,
        }
        return 200, json.dumps(body).encode()


def oauth2_config(token_url: str, tmp_path: Path) -> HTTPConfig:
    secret = tmp_path / "secret"
    secret.write_text("s3cret\n")
    return HTTPConfig(
        raw={
            "oauth2": {
                "client_id": "tocsin",
                "client_secret": "",
                "client_secret_file": str(secret),
                "scopes": ["read", "write"],
                "token_url": token_url,
                "endpoint_params": {"audience": "alerts"},
                "proxy_url": None,
                "tls_config": tls_config().raw["tls_config"],
            }
        }
    )


async def test_oauth2_token_fetched_once_and_sent_as_bearer(
    nursery: trio.Nursery, tmp_path: Path
) -> None:
    """Two sends fetch one token with the client credentials and send it as Bearer."""
    endpoint = TokenEndpoint()
    tokens = await start(nursery, Server(respond=endpoint))
    sink = await start(nursery, Server())
    async with HttpClients() as clients:
        client = clients.client_for(oauth2_config(tokens.url, tmp_path))
        await client.post(sink.url, content=b"1")
        await client.post(sink.url, content=b"2")
    assert endpoint.issued == 1
    assert [s.headers["authorization"] for s in sink.seen] == ["Bearer tok1"] * 2
    request = tokens.seen[0]
    assert request.headers["authorization"] == "Basic dG9jc2luOnMzY3JldA=="  # tocsin:s3cret
    form = dict(httpx.QueryParams(request.body.decode()))
    assert form == {"grant_type": "client_credentials", "scope": "read write", "audience": "alerts"}


async def test_oauth2_token_refreshed_after_expiry(nursery: trio.Nursery, tmp_path: Path) -> None:
    """Once the token's expires_in (less 10 s) has passed, the next send fetches a new one."""
    now = [1000.0]
    endpoint = TokenEndpoint(expires_in=60)
    tokens = await start(nursery, Server(respond=endpoint))
    sink = await start(nursery, Server())
    async with HttpClients(monotonic=lambda: now[0]) as clients:
        client = clients.client_for(oauth2_config(tokens.url, tmp_path))
        await client.get(sink.url)
        now[0] += 49
        await client.get(sink.url)
        now[0] += 2
        await client.get(sink.url)
    assert [s.headers["authorization"] for s in sink.seen] == [
        "Bearer tok1",
        "Bearer tok1",
        "Bearer tok2",
    ]


async def test_oauth2_401_refreshes_once(nursery: trio.Nursery, tmp_path: Path) -> None:
    """A 401 drops the cached token and the request is retried once with a fresh one."""
    endpoint = TokenEndpoint()
    tokens = await start(nursery, Server(respond=endpoint))
    sink = await start(
        nursery,
        Server(
            respond=lambda s: (
                (401, b"") if s.headers["authorization"] == "Bearer tok1" else (200, b"")
            )
        ),
    )
    async with HttpClients() as clients:
        client = clients.client_for(oauth2_config(tokens.url, tmp_path))
        response = await client.post(sink.url, content=b"body")
    assert response.status_code == 200
    assert [(s.headers["authorization"], s.body) for s in sink.seen] == [
        ("Bearer tok1", b"body"),
        ("Bearer tok2", b"body"),
    ]


async def test_oauth2_token_error_is_a_transport_error(
    nursery: trio.Nursery, tmp_path: Path
) -> None:
    """A refusing token endpoint surfaces as a (retryable) transport error, no send made."""
    tokens = await start(nursery, Server(respond=lambda s: (400, b'{"error":"invalid_client"}')))
    sink = await start(nursery, Server())
    async with HttpClients() as clients:
        client = clients.client_for(oauth2_config(tokens.url, tmp_path))
        with pytest.raises(httpx.TransportError, match="cannot fetch token: 400"):
            await client.get(sink.url)
    assert sink.seen == []


# --- pipeline wiring ---------------------------------------------------------------------


async def test_build_integrations_picks_clients_per_entry(pki: PKI) -> None:
    """Webhooks get the client their http_config asks for, and nothing is logged as ignored."""
    config = load_config_text(
        f"""
route: {{receiver: a}}
receivers:
- name: a
  webhook_configs:
  - url: https://x/
    http_config: {{tls_config: {{ca_file: {pki.ca.cert_file}}}}}
  - url: https://y/
    http_config: {{tls_config: {{ca_file: {pki.ca.cert_file}}}}}
  - url: http://z/
"""
    )
    async with HttpClients() as clients:
        with structlog.testing.capture_logs() as logs:
            built = build_integrations(
                config.receivers[0], clients.default, "http://am", clients=clients
            )
        hooks = [i for i in built if isinstance(i, WebhookIntegration)]
        assert hooks[0].http is hooks[1].http
        assert isinstance(hooks[0].http, HttpxSender)
        assert hooks[0].http.client is not clients.default
        assert hooks[2].http is clients.default_sender
        assert isinstance(clients.default_sender, Http1Client)
    assert not [e for e in logs if e["event"] == "notify.config_ignored"]
