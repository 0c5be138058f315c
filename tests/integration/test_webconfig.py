"""``--web.config.file``, ``--web.systemd-socket`` and the flags tocsin refuses, against the
real daemon process: curl and the real amtool over TLS and basic auth, side by side with
Alertmanager 0.25, and socket activation with ``systemd-socket-activate``."""

from __future__ import annotations

import contextlib
import shutil
import socket
import ssl
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import bcrypt
import pytest

from daemon.app import systemd_sockets
from tests.cluster.test_tls_transport import Pki, write_pki
from tests.integration.processes import (
    ALERTMANAGER,
    AMTOOL,
    ROOT,
    Proc,
    _stop,
    free_port,
    run_tocsin,
    tocsin_argv,
    wait_for,
)

CONFIG = """
route:
  receiver: blackhole
receivers:
  - name: blackhole
"""
PASSWORD = "s3cret"
HASH = bcrypt.hashpw(PASSWORD.encode(), bcrypt.gensalt(4)).decode()


def curl(*args: str) -> subprocess.CompletedProcess[str]:
    """curl printing the headers and the status line; never raises on HTTP errors."""
    return subprocess.run(
        ["curl", "-sS", "-D", "-", "-o", "/dev/null", "--max-time", "10", *args],
        capture_output=True,
        text=True,
        timeout=20,
    )


def status_of(result: subprocess.CompletedProcess[str]) -> int:
    first = result.stdout.splitlines()[0] if result.stdout else ""
    return int(first.split()[1]) if first.startswith("HTTP/") else 0


def header(result: subprocess.CompletedProcess[str], name: str) -> str | None:
    for line in result.stdout.splitlines():
        key, sep, value = line.partition(":")
        if sep and key.strip().lower() == name.lower():
            return value.strip()
    return None


def https(proc: Proc) -> str:
    return proc.url.replace("http://127.0.0.1", "https://localhost")


def web_file(tmp: Path, pki: Pki | None, extra: str = "", users: bool = True) -> Path:
    text = ""
    if pki is not None:
        cert, key = pki.leaves["localhost"]
        text += f"tls_server_config:\n  cert_file: {cert}\n  key_file: {key}\n{extra}"
    text += "http_server_config:\n  headers:\n    X-Frame-Options: deny\n"
    if users:
        text += f"basic_auth_users:\n  alice: {HASH}\n"
    path = tmp / "web.yml"
    path.write_text(text)
    return path


@pytest.fixture
def pki(tmp_path: Path) -> Pki:
    return write_pki(tmp_path / "pki", ["localhost", "client"])


def test_curl_over_tls_with_basic_auth(tmp_path: Path, pki: Pki) -> None:
    """Every endpoint, /metrics and /-/healthy included, answers 401 with
    WWW-Authenticate: Basic until the right password comes, over TLS, with the
    configured header on both answers."""
    web = web_file(tmp_path, pki)
    with run_tocsin(tmp_path, CONFIG, f"--web.config.file={web}") as proc:
        base = https(proc)
        for path in ("/-/healthy", "/metrics", "/api/v2/status", "/api/v2/alerts"):
            denied = curl("--cacert", str(pki.ca), base + path)
            assert status_of(denied) == 401, denied
            assert header(denied, "WWW-Authenticate") == "Basic"
            assert header(denied, "X-Frame-Options") == "deny"
            wrong = curl("--cacert", str(pki.ca), "-u", "alice:nope", base + path)
            assert status_of(wrong) == 401
            allowed = curl("--cacert", str(pki.ca), "-u", f"alice:{PASSWORD}", base + path)
            assert status_of(allowed) == 200, allowed
            assert header(allowed, "X-Frame-Options") == "deny"
        # HTTP/2 is offered by ALPN as exporter-toolkit's http2 default has it
        h2 = curl(
            "--http2", "--cacert", str(pki.ca), "-u", f"alice:{PASSWORD}", base + "/-/healthy"
        )
        assert h2.stdout.startswith("HTTP/2 200")
        # plain HTTP on the TLS port gets no answer
        assert status_of(curl(proc.url + "/-/healthy")) == 0


def test_http2_false_offers_only_http1(tmp_path: Path, pki: Pki) -> None:
    """http_server_config.http2: false leaves h2 out of ALPN."""
    web = web_file(tmp_path, pki, users=False)
    web.write_text(
        web.read_text().replace("http_server_config:\n", "http_server_config:\n  http2: false\n")
    )
    with run_tocsin(tmp_path, CONFIG, f"--web.config.file={web}") as proc:
        result = curl("--http2", "--cacert", str(pki.ca), https(proc) + "/-/healthy")
        assert result.stdout.startswith("HTTP/1.1 200"), result


def test_client_certificates_with_curl(tmp_path: Path, pki: Pki) -> None:
    """RequireAndVerifyClientCert: no certificate fails the handshake; a certificate
    from client_ca_file gets through."""
    web = web_file(
        tmp_path,
        pki,
        f"  client_auth_type: RequireAndVerifyClientCert\n  client_ca_file: {pki.ca}\n",
        users=False,
    )
    with run_tocsin(tmp_path, CONFIG, f"--web.config.file={web}") as proc:
        url = https(proc) + "/-/healthy"
        without = curl("--cacert", str(pki.ca), url)
        assert status_of(without) == 0 and without.returncode != 0
        cert, key = pki.leaves["client"]
        with_cert = curl("--cacert", str(pki.ca), "--cert", str(cert), "--key", str(key), url)
        assert status_of(with_cert) == 200, with_cert
        stranger = write_pki(tmp_path / "other", ["client"], ca_name="another CA")
        cert, key = stranger.leaves["client"]
        foreign = curl("--cacert", str(pki.ca), "--cert", str(cert), "--key", str(key), url)
        assert status_of(foreign) == 0


def _server_certificate(port: int, ca: Path) -> bytes:
    ctx = ssl.create_default_context(cafile=str(ca))
    with (
        socket.create_connection(("127.0.0.1", port), timeout=10) as raw,
        ctx.wrap_socket(raw, server_hostname="localhost") as tls,
    ):
        der = tls.getpeercert(binary_form=True)
    assert der is not None
    return der


def test_users_and_certificates_change_without_restart(tmp_path: Path, pki: Pki) -> None:
    """A new password applies to the next request and a renewed certificate to the next
    connection, with no reload or restart; a broken file answers 500, then recovers."""
    web = web_file(tmp_path, pki)
    with run_tocsin(tmp_path, CONFIG, f"--web.config.file={web}") as proc:
        url = https(proc) + "/-/healthy"
        port = int(proc.url.rsplit(":", 1)[1])
        assert status_of(curl("--cacert", str(pki.ca), "-u", f"alice:{PASSWORD}", url)) == 200
        before = _server_certificate(port, pki.ca)
        new_hash = bcrypt.hashpw(b"changed", bcrypt.gensalt(4)).decode()
        web.write_text(web.read_text().replace(HASH, new_hash))
        assert status_of(curl("--cacert", str(pki.ca), "-u", f"alice:{PASSWORD}", url)) == 401
        assert status_of(curl("--cacert", str(pki.ca), "-u", "alice:changed", url)) == 200
        # renew the certificate in place: same CA, a new leaf
        renewed = write_pki(tmp_path / "renewed", ["localhost"])
        cert, key = pki.leaves["localhost"]
        new_cert, new_key = renewed.leaves["localhost"]
        cert.write_bytes(new_cert.read_bytes())
        key.write_bytes(new_key.read_bytes())
        after = _server_certificate(port, renewed.ca)
        assert after != before
        good = web.read_text()
        web.write_text("basic_auth_users: [\n")
        broken = curl("--cacert", str(renewed.ca), "-u", "alice:changed", url)
        # the handshake needs a readable file too, as Go's GetConfigForClient does
        assert status_of(broken) in (0, 500)
        web.write_text(good)
        assert status_of(curl("--cacert", str(renewed.ca), "-u", "alice:changed", url)) == 200


def _exits(argv: list[str], timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, cwd=ROOT, capture_output=True, text=True, timeout=timeout)


def test_bad_web_config_stops_start_up(tmp_path: Path) -> None:
    """A web config exporter-toolkit rejects stops tocsin with its message, the file,
    the line and the key."""
    config = tmp_path / "tocsin.yml"
    config.write_text(CONFIG)
    web = tmp_path / "web.yml"
    web.write_text(f"basic_auth_users:\n  alice: {HASH}\n  bob: plaintext\n")
    result = _exits(tocsin_argv(config, tmp_path / "data", f"--web.config.file={web}"))
    assert result.returncode == 1
    assert (
        f"--web.config.file: {web}:3: basic_auth_users.bob: crypto/bcrypt: hashedSecret too "
        "short to be a bcrypted password"
    ) in result.stdout


def test_every_listen_address_is_served(tmp_path: Path) -> None:
    """--web.listen-address is repeatable, as in Alertmanager 0.25; each one answers."""
    second = free_port()
    with run_tocsin(tmp_path, CONFIG, f"--web.listen-address=127.0.0.1:{second}") as proc:
        # tocsin_argv's own address comes first, so proc.url is it
        assert status_of(curl(proc.url + "/-/healthy")) == 200
        assert status_of(curl(f"http://127.0.0.1:{second}/-/healthy")) == 200


# --- socket activation -------------------------------------------------------------------------


def _socket_activate() -> str:
    """systemd-socket-activate (Debian's systemd package, which .ci/run installs)."""
    found = shutil.which("systemd-socket-activate")
    if found is None:
        pytest.skip("systemd-socket-activate is missing: install Debian's systemd package")
    return found


@pytest.mark.parametrize(
    "environ",
    [{}, {"LISTEN_FDS": "0"}, {"LISTEN_FDS": "1", "LISTEN_PID": "1"}],
)
def test_systemd_sockets_need_fds_passed_to_this_process(environ: dict[str, str]) -> None:
    """No descriptors, or descriptors meant for another PID, is go-systemd's error; the
    variables are unset either way so that a child does not take them for its own."""
    env = dict(environ)
    with pytest.raises(ValueError, match="no socket activation file descriptors found"):
        systemd_sockets(env)
    assert "LISTEN_FDS" not in env and "LISTEN_PID" not in env


def test_systemd_socket_is_served(tmp_path: Path) -> None:
    """With --web.systemd-socket tocsin serves the socket systemd-socket-activate passes
    and binds no --web.listen-address of its own."""
    activate = _socket_activate()
    config = tmp_path / "tocsin.yml"
    config.write_text(CONFIG)
    passed, ignored = free_port(), free_port()
    argv = [
        activate,
        f"--listen=127.0.0.1:{passed}",
        sys.executable,
        "-m",
        "daemon",
        f"--config.file={config}",
        f"--storage.path={tmp_path / 'data'}",
        f"--web.listen-address=127.0.0.1:{ignored}",
        "--web.systemd-socket",
        "--cluster.listen-address=",
        "--log.format=json",
    ]
    # systemd-socket-activate starts the daemon on the first connection
    with _activated(argv, passed) as proc:
        assert proc.poll() is None
        result = curl(f"http://127.0.0.1:{passed}/-/healthy")
        assert status_of(result) == 200, result
        refused = curl(f"http://127.0.0.1:{ignored}/-/healthy")
        assert status_of(refused) == 0


@contextlib.contextmanager
def _activated(argv: list[str], port: int) -> Iterator[subprocess.Popen[str]]:
    proc = subprocess.Popen(
        argv, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    try:
        # the listening socket exists before tocsin does; the first request starts it
        wait_for(lambda: _connects(port), timeout=30)
        first = curl("--max-time", "60", f"http://127.0.0.1:{port}/-/healthy")
        assert status_of(first) == 200, (first, proc.poll())
        yield proc
    finally:
        _stop(proc)
        assert proc.stdout is not None
        proc.stdout.close()


def _connects(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
    except OSError:
        return False
    return True


def test_systemd_socket_without_sockets_stops_start_up(tmp_path: Path) -> None:
    """--web.systemd-socket with nothing passed fails with go-systemd's message."""
    config = tmp_path / "tocsin.yml"
    config.write_text(CONFIG)
    result = _exits(tocsin_argv(config, tmp_path / "data", "--web.systemd-socket"))
    assert result.returncode == 1
    assert "no socket activation file descriptors found" in result.stdout


# --- side by side with Alertmanager 0.25 -------------------------------------------------------


@contextlib.contextmanager
def _alertmanager(tmp: Path, web: Path) -> Iterator[str]:
    config = tmp / "alertmanager.yml"
    config.write_text(CONFIG)
    port = free_port()
    proc = subprocess.Popen(
        [
            ALERTMANAGER,
            f"--config.file={config}",
            f"--storage.path={tmp / 'am-data'}",
            f"--web.listen-address=127.0.0.1:{port}",
            f"--web.config.file={web}",
            "--cluster.listen-address=",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_for(lambda: _connects(port), timeout=30)
        yield f"https://localhost:{port}"
    finally:
        if proc.poll() is None:
            proc.terminate()
            proc.wait(10)


def _answers(base: str, ca: Path) -> list[tuple[int, str | None, str | None]]:
    out = []
    for auth in ((), ("-u", "alice:nope"), ("-u", "bob:x"), ("-u", f"alice:{PASSWORD}")):
        for path in ("/-/healthy", "/api/v2/status"):
            result = curl("--cacert", str(ca), *auth, base + path)
            out.append(
                (
                    status_of(result),
                    header(result, "WWW-Authenticate"),
                    header(result, "X-Frame-Options"),
                )
            )
    return out


@pytest.mark.alertmanager
def test_same_answers_as_alertmanager(tmp_path: Path, pki: Pki) -> None:
    """The same web config gives the same statuses and headers as Alertmanager 0.25."""
    web = web_file(tmp_path, pki)
    with _alertmanager(tmp_path, web) as am_url:
        expected = _answers(am_url, pki.ca)
    with run_tocsin(tmp_path, CONFIG, f"--web.config.file={web}") as proc:
        assert _answers(https(proc), pki.ca) == expected
    assert expected[0] == (401, "Basic", "deny")
    assert expected[-1][0] == 200


@pytest.mark.alertmanager
def test_amtool_over_tls_and_basic_auth(tmp_path: Path, pki: Pki) -> None:
    """The real amtool, with --http.config.file naming the CA and the password, adds and
    lists silences; without it, it is refused."""
    web = web_file(tmp_path, pki)
    client = tmp_path / "amtool-http.yml"
    client.write_text(
        f"basic_auth:\n  username: alice\n  password: {PASSWORD}\ntls_config:\n  ca_file: {pki.ca}\n"
    )
    with run_tocsin(tmp_path, CONFIG, f"--web.config.file={web}") as proc:
        base = [AMTOOL, f"--alertmanager.url={https(proc)}", "--output=json"]
        added = _amtool(
            *base, f"--http.config.file={client}", "silence", "add", "job=web", "-c", "tls"
        )
        assert added.returncode == 0, added
        listed = _amtool(*base, f"--http.config.file={client}", "silence", "query")
        assert added.stdout.strip() in listed.stdout
        denied = _amtool(*base, "silence", "query")
        assert denied.returncode != 0


def _amtool(*argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(list(argv), capture_output=True, text=True, timeout=30)
