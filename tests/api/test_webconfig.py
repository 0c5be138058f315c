"""``--web.config.file``: the file's checks (exporter-toolkit v0.8.2's wording, located by
line and key), basic auth with its cache, and the ASGI gate with per-request re-reads."""

from __future__ import annotations

import base64
import os
import ssl
from pathlib import Path
from typing import Any

import bcrypt
import pytest

from daemon.api import webconfig
from daemon.api.webconfig import (
    BasicAuthUsers,
    WebConfigError,
    WebConfigFile,
    WebGate,
    bcrypt_cost_error,
    open_web_config,
    parse_basic_auth,
    parse_web_config,
    refuse_basic_auth_users,
    validate_start,
)
from daemon.clock import FixedClock
from daemon.config.errors import ConfigError
from tests.cluster.test_tls_transport import write_pki

#: cost 4 keeps the suite fast; the checks do not depend on the cost
HASH = bcrypt.hashpw(b"secret", bcrypt.gensalt(4)).decode()


def basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


def write(tmp: Path, text: str) -> Path:
    path = tmp / "web.yml"
    path.write_text(text)
    return path


def error_of(text: str, directory: str = "/") -> ConfigError:
    with pytest.raises(ConfigError) as info:
        validate_start(parse_web_config(text, directory))
    return info.value


# --- the file --------------------------------------------------------------------------------


def test_defaults_are_exporter_toolkits() -> None:
    """An empty file means TLS 1.2-1.3, server cipher preference, HTTP/2, no users."""
    config = parse_web_config("", "/etc")
    assert config.tls["min_version"] == "TLS12"
    assert config.tls["max_version"] == "TLS13"
    assert config.tls["prefer_server_cipher_suites"] is True
    assert config.http2 is True
    assert dict(config.users) == {}
    assert validate_start(config) is None  # no TLS setting: plain HTTP


def test_relative_paths_are_taken_from_the_files_folder() -> None:
    """cert_file, key_file and client_ca_file are joined to the web config's directory."""
    config = parse_web_config(
        "tls_server_config:\n  cert_file: c.pem\n  key_file: /abs/k.pem\n  client_ca_file: ca.pem\n",
        "/etc/tocsin",
    )
    assert config.tls_files == ("/etc/tocsin/c.pem", "/abs/k.pem", "/etc/tocsin/ca.pem")


@pytest.mark.parametrize(
    ("text", "message", "line", "key"),
    [
        (
            "foo: 1\n",
            "yaml: unmarshal errors:\n  line 1: field foo not found in type web.Config",
            1,
            "foo",
        ),
        (
            "http_server_config:\n  headers:\n    Server: x\n",
            'HTTP header "Server" can not be configured',
            3,
            "http_server_config.headers.Server",
        ),
        (
            "http_server_config:\n  headers:\n    X-Frame-Options: allow\n",
            'invalid value for X-Frame-Options. Expected one of: ["deny" "sameorigin"], '
            'but got: "allow"',
            3,
            "http_server_config.headers.X-Frame-Options",
        ),
        (
            "http_server_config:\n  headers:\n    X-Content-Type-Options: sniff\n",
            'invalid value for X-Content-Type-Options. Expected one of: ["nosniff"], '
            'but got: "sniff"',
            3,
            "http_server_config.headers.X-Content-Type-Options",
        ),
        (
            "basic_auth_users:\n  alice: plain\n",
            "crypto/bcrypt: hashedSecret too short to be a bcrypted password",
            2,
            "basic_auth_users.alice",
        ),
        (
            "basic_auth_users:\n  bob: x" + HASH[1:] + "\n",
            "crypto/bcrypt: bcrypt hashes must start with '$', but hashedSecret started with 'x'",
            2,
            "basic_auth_users.bob",
        ),
        (
            "basic_auth_users:\n  bob: '$2b$99" + HASH[6:] + "'\n",
            "crypto/bcrypt: cost 99 is outside allowed range (4,31)",
            2,
            "basic_auth_users.bob",
        ),
        (
            "tls_server_config:\n  key_file: k.pem\n",
            "missing cert_file",
            1,
            "tls_server_config.cert_file",
        ),
        (
            "tls_server_config:\n  cert_file: c.pem\n",
            "missing key_file",
            1,
            "tls_server_config.key_file",
        ),
        (
            "tls_server_config:\n  min_version: TLS14\n",
            "unknown TLS version: TLS14",
            2,
            "tls_server_config.min_version",
        ),
        (
            "tls_server_config:\n  curve_preferences: [P256]\n",
            "unknown curve: P256",
            2,
            "tls_server_config.curve_preferences[0]",
        ),
    ],
)
def test_invalid_files_get_exporter_toolkits_message(
    text: str, message: str, line: int, key: str
) -> None:
    """Each problem exporter-toolkit rejects gets its wording, plus the line and key."""
    err = error_of(text)
    assert err.message == message
    assert (err.line, err.key) == (line, key)


@pytest.fixture
def pki(tmp_path: Path) -> Any:
    return write_pki(tmp_path / "pki", ["server", "client"])


def tls_file(pki: Any, extra: str = "") -> str:
    cert, key = pki.leaves["server"]
    return f"tls_server_config:\n  cert_file: {cert}\n  key_file: {key}\n{extra}"


@pytest.mark.parametrize(
    ("extra", "message", "key"),
    [
        ("  client_auth_type: Sometimes\n", "Invalid ClientAuth: Sometimes", "client_auth_type"),
        (
            "  client_ca_file: {ca}\n",
            "Client CA's have been configured without a Client Auth Policy",
            "client_auth_type",
        ),
        (
            "  client_auth_type: RequireAnyClientCert\n",
            "client_auth_type RequireAnyClientCert is not supported by tocsin",
            "client_auth_type",
        ),
        (
            "  curve_preferences: [CurveP256, X25519]\n",
            "curve_preferences lists more than one curve",
            "curve_preferences",
        ),
    ],
)
def test_tls_settings_python_cannot_apply_are_refused(
    pki: Any, extra: str, message: str, key: str
) -> None:
    """Go's ClientAuth checks keep their text; what Python's ssl cannot do is refused."""
    err = error_of(tls_file(pki, extra.format(ca=pki.ca)))
    assert err.message.startswith(message)
    assert err.key == f"tls_server_config.{key}"


def test_tls_settings_are_applied(pki: Any) -> None:
    """Client auth, versions, one curve and the cipher preference reach the context."""
    ctx = validate_start(
        parse_web_config(
            tls_file(
                pki,
                f"  client_auth_type: RequireAndVerifyClientCert\n  client_ca_file: {pki.ca}\n"
                "  min_version: TLS13\n  curve_preferences: [CurveP384]\n"
                "  prefer_server_cipher_suites: false\n",
            ),
            "/",
        )
    )
    assert ctx is not None
    assert ctx.verify_mode == ssl.CERT_REQUIRED
    assert ctx.minimum_version == ssl.TLSVersion.TLSv1_3
    assert not ctx.options & ssl.OP_CIPHER_SERVER_PREFERENCE


def test_open_web_config_names_flag_file_line_and_key(tmp_path: Path) -> None:
    """A bad file stops start-up with the flag, the file, the line and the key."""
    path = write(tmp_path, "http_server_config:\n  headers:\n    Server: x\n")
    with pytest.raises(WebConfigError) as info:
        open_web_config(str(path))
    assert str(info.value) == (
        f'--web.config.file: {path}:3: http_server_config.headers.Server: HTTP header "Server" '
        "can not be configured"
    )
    with pytest.raises(WebConfigError, match="No such file"):
        open_web_config(str(tmp_path / "missing.yml"))


def test_bcrypt_cost_accepts_every_bcrypt_variant() -> None:
    """$2a$, $2b$ and $2y$ hashes at costs 4 to 31 pass Go's bcrypt.Cost."""
    for prefix in ("2a", "2b", "2y"):
        assert bcrypt_cost_error(f"${prefix}{HASH[3:]}".encode()) is None
    assert bcrypt_cost_error(b"$3a" + HASH[3:].encode()) == (
        "crypto/bcrypt: bcrypt algorithm version '3' requested is newer than current version '2'"
    )


def test_tenancy_seam_refuses_basic_auth_users() -> None:
    """A caller with its own identities refuses a file that lists users."""
    refuse_basic_auth_users(parse_web_config("", "/"), "tenancy")
    with pytest.raises(ConfigError, match="basic_auth_users cannot be used together with tenancy"):
        refuse_basic_auth_users(
            parse_web_config(f"basic_auth_users:\n  a: {HASH}\n", "/"), "tenancy"
        )


# --- basic auth --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        (basic("alice", "se:cret"), ("alice", "se:cret")),
        ("bAsIc " + base64.b64encode(b"a:b").decode(), ("a", "b")),
        ("Basic " + base64.b64encode(b"nocolon").decode(), None),
        ("Basic !!!", None),
        ("Bearer abc", None),
        (None, None),
    ],
)
def test_parse_basic_auth_as_go(header: str | None, expected: tuple[str, str] | None) -> None:
    """Go's Request.BasicAuth: case-insensitive scheme, strict base64, split at the first colon."""
    assert parse_basic_auth(header) == expected


async def test_basic_auth_checks_and_caches(monkeypatch: pytest.MonkeyPatch) -> None:
    """Right password lets in; wrong and unknown users do not; bcrypt runs once per
    credential, and a changed hash is checked afresh."""
    calls: list[bytes] = []
    real = webconfig._bcrypt_matches

    def counting(hashed: bytes, password: str) -> bool:
        calls.append(hashed)
        return real(hashed, password)

    monkeypatch.setattr(webconfig, "_bcrypt_matches", counting)
    auth = BasicAuthUsers()
    config = parse_web_config(f"basic_auth_users:\n  alice: {HASH}\n", "/")
    for _ in range(3):
        assert await auth.authenticate(basic("alice", "secret"), config) == "alice"
    assert len(calls) == 1
    assert await auth.authenticate(basic("alice", "wrong"), config) is None
    # an unknown user costs a bcrypt too (against the fixed hash), so timing tells nothing
    assert await auth.authenticate(basic("mallory", "secret"), config) is None
    assert calls[-1] == webconfig._FAKE_HASH
    assert len(calls) == 3
    rehashed = bcrypt.hashpw(b"secret", bcrypt.gensalt(4)).decode()
    changed = parse_web_config(f"basic_auth_users:\n  alice: {rehashed}\n", "/")
    assert await auth.authenticate(basic("alice", "secret"), changed) == "alice"
    assert len(calls) == 4


async def test_basic_auth_cache_is_bounded() -> None:
    """The cache keeps at most its size, dropping the oldest entries."""
    auth = BasicAuthUsers(cache_size=10)
    config = parse_web_config(f"basic_auth_users:\n  alice: {HASH}\n", "/")
    for n in range(25):
        await auth.authenticate(basic("alice", f"guess{n}"), config)
    assert len(auth._cache) <= 10


# --- the gate ----------------------------------------------------------------------------------


async def ok_app(scope: Any, receive: Any, send: Any) -> None:
    await send(
        {"type": "http.response.start", "status": 200, "headers": [(b"x-frame-options", b"x")]}
    )
    await send({"type": "http.response.body", "body": b"ok"})


async def call(gate: WebGate, authorization: str | None = None) -> tuple[int, dict[bytes, bytes]]:
    headers = [] if authorization is None else [(b"authorization", authorization.encode())]
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b""}

    async def send(message: Any) -> None:
        sent.append(message)

    await gate({"type": "http", "path": "/-/healthy", "headers": headers}, receive, send)
    start = sent[0]
    return start["status"], {bytes(k).lower(): bytes(v) for k, v in start["headers"]}


def touch_later(path: Path) -> None:
    """Make sure the next stat differs even on a coarse-mtime file system."""
    st = path.stat()
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000_000))


async def test_gate_answers_401_and_adds_headers(tmp_path: Path) -> None:
    """Without credentials: 401, WWW-Authenticate: Basic and the configured headers;
    with them: the app's answer, configured headers added where the app set none."""
    path = write(
        tmp_path,
        f"basic_auth_users:\n  alice: {HASH}\nhttp_server_config:\n  headers:\n"
        "    X-Frame-Options: deny\n    Content-Security-Policy: default-src 'self'\n",
    )
    source, tls = open_web_config(str(path))
    assert tls is None
    gate = WebGate(ok_app, source)
    status, headers = await call(gate)
    assert status == 401
    assert headers[b"www-authenticate"] == b"Basic"
    assert headers[b"content-security-policy"] == b"default-src 'self'"
    status, headers = await call(gate, basic("alice", "secret"))
    assert status == 200
    assert headers[b"x-frame-options"] == b"x"
    assert headers[b"content-security-policy"] == b"default-src 'self'"


async def test_gate_rereads_the_file_per_request(tmp_path: Path) -> None:
    """Changed users apply to the next request; a file that breaks answers 500 until fixed."""
    path = write(tmp_path, "")
    source, _ = open_web_config(str(path))
    gate = WebGate(ok_app, source)
    assert (await call(gate))[0] == 200
    path.write_text(f"basic_auth_users:\n  alice: {HASH}\n")
    touch_later(path)
    assert (await call(gate))[0] == 401
    assert (await call(gate, basic("alice", "secret")))[0] == 200
    path.write_text("basic_auth_users: [\n")
    touch_later(path)
    assert (await call(gate, basic("alice", "secret")))[0] == 500
    path.write_text("")
    touch_later(path)
    assert (await call(gate))[0] == 200


async def test_gate_takes_a_pluggable_authenticator(tmp_path: Path) -> None:
    """An Authenticator given to the gate decides instead of basic_auth_users."""

    class Header:
        async def authenticate(self, authorization: str | None, config: Any) -> str | None:
            return "tenant-a" if authorization == "let-me-in" else None

    source, _ = open_web_config(str(write(tmp_path, "")))
    gate = WebGate(ok_app, source, Header())
    assert (await call(gate))[0] == 401
    assert (await call(gate, "let-me-in"))[0] == 200


def test_web_config_file_rebuilds_tls_when_a_certificate_changes(tmp_path: Path) -> None:
    """The TLS context is reused while nothing changed and rebuilt after a renewal."""
    pki = write_pki(tmp_path / "pki", ["server"])
    path = write(tmp_path, tls_file(pki))
    # a clock well after the files were written: their stat is trusted as a cache key
    later = FixedClock(path.stat().st_mtime_ns + 60 * 10**9)
    source, tls = open_web_config(str(path), later)
    assert tls is not None
    first = source.ssl_context()
    assert source.ssl_context() is first
    cert, _ = pki.leaves["server"]
    touch_later(cert)
    assert source.ssl_context() is not first


def test_same_size_rewrite_in_the_same_tick_is_seen(tmp_path: Path) -> None:
    """A rewrite that keeps size and mtime (one timestamp tick) is still picked up,
    because a file changed in the last seconds is never trusted by its stat."""
    path = write(tmp_path, "http_server_config:\n  headers:\n    X-Frame-Options: deny\n")
    st = path.stat()
    source, _ = open_web_config(str(path))
    assert source.current().headers == (("X-Frame-Options", "deny"),)
    path.write_text("http_server_config:\n  headers:\n    X-XSS-Protection: 123\n")
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))
    assert path.stat().st_size == st.st_size
    assert source.stale()
    assert source.current().headers == (("X-XSS-Protection", "123"),)


def test_broken_tls_fails_the_handshake_not_the_listener(tmp_path: Path) -> None:
    """If the certificate goes missing, a new connection's context has no certificate."""
    pki = write_pki(tmp_path / "pki", ["server"])
    path = write(tmp_path, tls_file(pki))
    source, tls = open_web_config(str(path))
    assert isinstance(tls, webconfig.ReloadingServerContext)
    cert, _ = pki.leaves["server"]
    cert.unlink()
    obj = tls.wrap_bio(ssl.MemoryBIO(), ssl.MemoryBIO(), server_side=True)
    assert obj.context is not source._tls
    with pytest.raises((ConfigError, OSError)):
        source.ssl_context()
    assert isinstance(source, WebConfigFile)
