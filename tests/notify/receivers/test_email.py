"""The email integration: message layout, Q/QP encodings and the SMTP dialogue.

A small threaded SMTP server on 127.0.0.1:0 records each session; it can offer
STARTTLS or implicit TLS with a self-signed certificate made here, and AUTH PLAIN,
LOGIN and CRAM-MD5.
"""

from __future__ import annotations

import base64
import hmac
import pathlib
import socket
import socketserver
import ssl
import threading
from collections.abc import Callable, Iterator
from email import message_from_bytes
from email.message import Message
from functools import partial
from typing import Any

import attrs
import pytest
import trio

from daemon.notify.receivers import email
from daemon.notify.retry import NotifyError
from tests.notify.receivers.conftest import (
    AM_CONFIG,
    NOW,
    FakeTemplater,
    ctx,
    env_with,
    firing,
    integration_config,
    ours,
    real_templates,
    recorder,
    run_alertmanager_until,
    write_self_signed,
)


@attrs.define
class Session:
    """What one SMTP connection did."""

    ehlo: list[str] = attrs.field(factory=list)
    tls: bool = False
    auth: tuple[str, ...] | None = None
    mail_from: str = ""
    rcpt: list[str] = attrs.field(factory=list)
    data: bytes = b""


@attrs.define
class SMTPServerOptions:
    starttls: bool = True
    implicit_tls: bool = False
    auth: str = ""
    context: ssl.SSLContext | None = None
    sessions: list[Session] = attrs.field(factory=list)
    #: Called (in the server thread) after each message is stored.
    on_data: Callable[[], None] | None = None


class _Handler(socketserver.StreamRequestHandler):
    server: _Server

    def setup(self) -> None:
        opts = self.server.options
        if opts.implicit_tls:
            assert opts.context is not None
            try:
                self.request = opts.context.wrap_socket(self.request, server_side=True)
            except (ssl.SSLError, OSError):
                self.request.close()
        super().setup()

    def send(self, line: str) -> None:
        self.wfile.write(line.encode() + b"\r\n")
        self.wfile.flush()

    def recv(self) -> str:
        return self.rfile.readline().decode().rstrip("\r\n")

    def handle(self) -> None:
        try:
            self.converse()
        except (ssl.SSLError, OSError):
            # A client rejecting our certificate hangs up mid-handshake.
            pass

    def finish(self) -> None:
        try:
            super().finish()
        except OSError:
            pass
        if isinstance(self.request, ssl.SSLSocket):
            self.request.close()

    def converse(self) -> None:
        opts = self.server.options
        session = Session(tls=opts.implicit_tls)
        opts.sessions.append(session)
        self.send("220 test ESMTP")
        while True:
            line = self.recv()
            verb = line.split(" ", 1)[0].upper()
            arg = line[len(verb) + 1 :]
            if verb in ("EHLO", "HELO"):
                session.ehlo.append(arg)
                ext = ["8BITMIME"]
                if opts.starttls and not session.tls:
                    ext.append("STARTTLS")
                if opts.auth:
                    ext.append(f"AUTH {opts.auth}")
                self.send("250-test")
                for e in ext[:-1]:
                    self.send(f"250-{e}")
                self.send(f"250 {ext[-1]}")
            elif verb == "STARTTLS":
                self.send("220 go ahead")
                assert opts.context is not None
                self.rfile.close()
                self.wfile.close()
                self.request = opts.context.wrap_socket(self.request, server_side=True)
                self.rfile = self.request.makefile("rb")
                self.wfile = self.request.makefile("wb")
                session.tls = True
            elif verb == "AUTH":
                self.do_auth(session, arg)
            elif verb == "MAIL":
                session.mail_from = arg
                self.send("250 ok")
            elif verb == "RCPT":
                session.rcpt.append(arg)
                self.send("250 ok")
            elif verb == "DATA":
                self.send("354 go")
                data = bytearray()
                while True:
                    raw = self.rfile.readline()
                    if raw == b".\r\n" or not raw:
                        break
                    data += raw
                session.data = bytes(data)
                self.send("250 queued")
                if opts.on_data is not None:
                    opts.on_data()
            elif verb == "QUIT":
                self.send("221 bye")
                return
            elif not line:
                return
            else:
                self.send("502 unknown")

    def do_auth(self, session: Session, arg: str) -> None:
        mech, _, initial = arg.partition(" ")
        b64 = base64.b64encode
        if mech == "PLAIN":
            if not initial:
                self.send("334 ")
                initial = self.recv()
            session.auth = ("PLAIN", *base64.b64decode(initial).decode().split("\0"))
        elif mech == "LOGIN":
            self.send("334 " + b64(b"Username:").decode())
            user = base64.b64decode(self.recv()).decode()
            self.send("334 " + b64(b"Password:").decode())
            password = base64.b64decode(self.recv()).decode()
            session.auth = ("LOGIN", user, password)
        elif mech == "CRAM-MD5":
            challenge = b"<1.2@test>"
            self.send("334 " + b64(challenge).decode())
            user, digest = base64.b64decode(self.recv()).decode().split(" ")
            ok = hmac.compare_digest(digest, hmac.new(b"cram-secret", challenge, "md5").hexdigest())
            session.auth = ("CRAM-MD5", user, str(ok))
        self.send("235 ok")


class _Server(socketserver.ThreadingTCPServer):
    daemon_threads = True
    options: SMTPServerOptions


@pytest.fixture(scope="module")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> tuple[pathlib.Path, pathlib.Path]:
    """A self-signed certificate for localhost and 127.0.0.1, and its key."""
    return write_self_signed(tmp_path_factory.mktemp("tls"))


@pytest.fixture
def smtp_server(
    certificate: tuple[pathlib.Path, pathlib.Path],
) -> Iterator[tuple[_Server, SMTPServerOptions]]:
    """A running test SMTP server; stopped after the test."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(*certificate)
    server = _Server(("127.0.0.1", 0), _Handler)
    server.options = SMTPServerOptions(context=context)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server, server.options
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


def email_config(port: int, extra: str = "", ca: pathlib.Path | None = None) -> Any:
    tls = f", tls_config: {{ca_file: '{ca}'}}" if ca else ""
    return integration_config(
        "email",
        f"{{to: 'Ops <ops@example.com>, b@example.com', smarthost: '127.0.0.1:{port}',"
        f" hello: tocsin.test{tls}{extra}}}",
    )


async def send(conf: Any, templater: Any = None) -> None:
    _, handler = recorder()
    integ = email.build(conf, 0, env_with(handler, templater or real_templates()))
    with trio.fail_after(20):
        await integ.notify(ctx(), [firing()])


def port_of(server: _Server) -> int:
    port: int = server.server_address[1]
    return port


async def test_starttls_plain_auth_and_message(
    smtp_server: tuple[_Server, SMTPServerOptions], certificate: tuple[pathlib.Path, pathlib.Path]
) -> None:
    """STARTTLS, then AUTH PLAIN with identity, envelope and a multipart message are sent."""
    server, opts = smtp_server
    opts.auth = "PLAIN LOGIN"
    conf = email_config(
        port_of(server),
        ", auth_username: u, auth_password: p, auth_identity: id, text: 'plain {{ .Status }}'",
        certificate[0],
    )
    await send(conf)
    (session,) = opts.sessions
    assert session.ehlo == ["tocsin.test", "tocsin.test"]
    assert session.tls
    assert session.auth == ("PLAIN", "id", "u", "p")
    assert session.mail_from == "FROM:<am@example.com> BODY=8BITMIME"
    assert session.rcpt == ["TO:<ops@example.com>", "TO:<b@example.com>"]
    msg = message_from_bytes(session.data)
    assert msg["Subject"] == "[FIRING:1] Q "
    assert msg["To"] == "Ops <ops@example.com>, b@example.com"
    assert msg["From"] == "am@example.com"
    assert msg["Date"] == "Mon, 23 Nov 2026 19:31:00 +0000"
    assert msg["Message-Id"].startswith(f"<{NOW}.")
    assert msg.get_content_type() == "multipart/alternative"
    parts: list[Message] = msg.get_payload()  # type: ignore[assignment]
    assert [p.get_content_type() for p in parts] == ["text/plain", "text/html"]
    assert parts[0].get_payload(decode=True) == b"plain firing"
    html = parts[1].get_payload(decode=True)
    assert isinstance(html, bytes) and b"<html" in html and b"alertname = Q" in html


async def test_login_auth_and_password_file(
    smtp_server: tuple[_Server, SMTPServerOptions],
    certificate: tuple[pathlib.Path, pathlib.Path],
    tmp_path: pathlib.Path,
) -> None:
    """AUTH LOGIN answers the Username:/Password: prompts, password read from its file."""
    server, opts = smtp_server
    opts.auth = "LOGIN"
    (tmp_path / "pw").write_text("filepw")
    conf = email_config(
        port_of(server),
        f", auth_username: u, auth_password_file: '{tmp_path / 'pw'}'",
        certificate[0],
    )
    await send(conf)
    assert opts.sessions[0].auth == ("LOGIN", "u", "filepw")


async def test_cram_md5_uses_secret(
    smtp_server: tuple[_Server, SMTPServerOptions], certificate: tuple[pathlib.Path, pathlib.Path]
) -> None:
    """CRAM-MD5 answers the challenge with an HMAC-MD5 of auth_secret."""
    server, opts = smtp_server
    opts.auth = "CRAM-MD5 PLAIN"
    conf = email_config(
        port_of(server), ", auth_username: u, auth_secret: cram-secret", certificate[0]
    )
    await send(conf)
    assert opts.sessions[0].auth == ("CRAM-MD5", "u", "True")


async def test_implicit_tls_delivers(certificate: tuple[pathlib.Path, pathlib.Path]) -> None:
    """With implicit TLS (port 465 in config) the whole dialogue runs inside TLS."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(*certificate)
    server = _Server(("127.0.0.1", 0), _Handler)
    server.options = SMTPServerOptions(context=context, implicit_tls=True, starttls=False)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        settings = email.SMTPSettings(
            host="127.0.0.1",
            port=port_of(server),
            implicit_tls=True,
            hello="h",
            require_tls=False,
            tls_context=email.tls_context({"ca_file": str(certificate[0])}),
            tls_server_name="localhost",
            username="",
            password="",
            password_error=None,
            secret="",
            identity="",
        )
        with trio.fail_after(20):
            await trio.to_thread.run_sync(
                email.deliver, settings, "a@b.c", ["d@e.f"], b"Subject: x\r\n\r\nbody\r\n"
            )
        (session,) = server.options.sessions
        assert session.tls
        assert session.rcpt == ["TO:<d@e.f>"]
        assert session.data == b"Subject: x\r\n\r\nbody\r\n"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


def test_port_465_means_implicit_tls() -> None:
    """The settings turn on implicit TLS exactly for port 465."""
    for port, implicit in ((465, True), (587, False)):
        conf = integration_config("email", f"{{to: a@b.c, smarthost: 'mx:{port}'}}")
        integ = email.build(conf, 0, env_with(recorder()[1]))
        settings = trio.run(integ.settings)
        assert settings.implicit_tls is implicit
        assert settings.tls_server_name == "mx"


async def test_require_tls_without_starttls_fails_retryably(
    smtp_server: tuple[_Server, SMTPServerOptions],
) -> None:
    """A server not offering STARTTLS fails the send, retryably, when TLS is required."""
    server, opts = smtp_server
    opts.starttls = False
    with pytest.raises(NotifyError) as info:
        await send(email_config(port_of(server)))
    assert info.value.retryable
    assert "does not advertise the STARTTLS extension" in str(info.value)


async def test_untrusted_certificate_fails(
    smtp_server: tuple[_Server, SMTPServerOptions],
) -> None:
    """Without the CA the STARTTLS handshake fails; insecure_skip_verify lets it through."""
    server, opts = smtp_server
    with pytest.raises(NotifyError) as info:
        await send(email_config(port_of(server)))
    assert info.value.retryable and str(info.value).startswith("send STARTTLS command: ")
    await send(email_config(port_of(server), ", tls_config: {insecure_skip_verify: true}"))
    assert opts.sessions[-1].data


async def test_plain_auth_refused_in_clear_to_remote_only(
    smtp_server: tuple[_Server, SMTPServerOptions],
) -> None:
    """Without TLS, PLAIN is still allowed to 127.0.0.1 (Go's localhost exception)."""
    server, opts = smtp_server
    opts.auth = "PLAIN"
    conf = email_config(port_of(server), ", require_tls: false, auth_username: u, auth_password: p")
    await send(conf)
    assert opts.sessions[0].auth == ("PLAIN", "", "u", "p")
    assert not opts.sessions[0].tls


async def test_missing_password_is_retryable_auth_error(
    smtp_server: tuple[_Server, SMTPServerOptions],
) -> None:
    """A username without any usable mechanism credential fails as upstream words it."""
    server, opts = smtp_server
    opts.auth = "PLAIN"
    conf = email_config(port_of(server), ", require_tls: false, auth_username: u")
    with pytest.raises(NotifyError) as info:
        await send(conf)
    assert str(info.value) == "find auth mechanism: missing password for PLAIN auth mechanism"


async def test_connection_refused_is_retryable() -> None:
    """Nothing listening is a retryable connection error."""
    with trio.socket.socket() as sock:
        await sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    with pytest.raises(NotifyError) as info:
        await send(email_config(port, ", require_tls: false"))
    assert info.value.retryable
    assert str(info.value).startswith("establish connection to server: ")


async def test_bad_from_is_permanent() -> None:
    """A from that does not parse to exactly one address is permanent."""
    conf = integration_config(
        "email", "{to: a@b.c, from: 'x@y.z, q@r.s', smarthost: '127.0.0.1:1'}"
    )
    with pytest.raises(NotifyError) as info:
        await send(conf, FakeTemplater())
    assert (str(info.value), info.value.retryable) == (
        "must be exactly one 'from' address (got: 2)",
        False,
    )


def test_build_message_layout() -> None:
    """Headers sorted and Q-encoded, then Go's multipart layout with QP parts."""
    data = email.build_message(
        {"Subject": "Grüße", "To": "a@b.c"},
        "line one \nx=y",
        "<p>ü</p>",
        now_ns=NOW,
        hostname="host",
        boundary="BOUND",
        nonce=7,
    )
    assert data == (
        b"Subject: =?utf-8?q?Gr=C3=BC=C3=9Fe?=\r\n"
        b"To: a@b.c\r\n"
        b"Message-Id: <" + str(NOW).encode() + b".7@host>\r\n"
        b"Date: Mon, 23 Nov 2026 19:31:00 +0000\r\n"
        b"Content-Type: multipart/alternative;  boundary=BOUND\r\n"
        b"MIME-Version: 1.0\r\n\r\n"
        b"--BOUND\r\nContent-Transfer-Encoding: quoted-printable\r\n"
        b"Content-Type: text/plain; charset=UTF-8\r\n\r\n"
        b"line one=20\r\nx=3Dy"
        b"\r\n--BOUND\r\nContent-Transfer-Encoding: quoted-printable\r\n"
        b"Content-Type: text/html; charset=UTF-8\r\n\r\n"
        b"<p>=C3=BC</p>"
        b"\r\n--BOUND--\r\n"
    )


def test_quoted_printable_soft_breaks_at_76() -> None:
    """Long lines get '=' soft breaks so no line exceeds 76 characters."""
    encoded = email.quoted_printable(b"a" * 100 + b"\n" + "é".encode() * 30)
    lines = encoded.split(b"\r\n")
    assert lines[0] == b"a" * 75 + b"="
    assert lines[1] == b"a" * 25
    assert all(len(line) <= 76 for line in lines)
    assert b"".join(line.rstrip(b"=") for line in lines[2:]) == b"=C3=A9" * 30


def test_q_encode_splits_long_words() -> None:
    """Q-encoding leaves ASCII alone and splits words at 75 characters, whole runes only."""
    assert email.q_encode("plain ascii") == "plain ascii"
    words = email.q_encode("ü" * 40).split(" ")
    assert all(len(w) <= 75 for w in words)
    assert words[0] == "=?utf-8?q?" + "=C3=BC" * 10 + "?="


def normalised(data: bytes) -> tuple[list[bytes], bytes]:
    """Sorted header lines and the body, with the date, message ID and boundary masked."""
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    boundary = next(ln for ln in lines if ln.startswith(b"Content-Type:")).split(b"boundary=")[1]
    masked = sorted(
        ln.split(b":")[0] + b": *" if ln.split(b":")[0] in (b"Date", b"Message-Id") else ln
        for ln in lines
    )
    return [ln.replace(boundary, b"BOUNDARY") for ln in masked], body.replace(boundary, b"BOUNDARY")


async def both_sessions(
    opts: SMTPServerOptions, tmp_path: pathlib.Path, config_text: str
) -> list[Session]:
    """Alertmanager's SMTP session for ``config_text``, then ours, as the server saw them."""
    stored = trio.Event()
    token = trio.lowlevel.current_trio_token()
    opts.on_data = partial(trio.from_thread.run_sync, stored.set, trio_token=token)
    await run_alertmanager_until(tmp_path, config_text, stored.wait)
    with trio.fail_after(20):
        await ours(config_text)
    return list(opts.sessions)


@pytest.mark.alertmanager
async def test_same_message_as_alertmanager(
    smtp_server: tuple[_Server, SMTPServerOptions], tmp_path: pathlib.Path
) -> None:
    """Alertmanager 0.25 and tocsin send the same envelope and message (volatile parts masked)."""
    server, opts = smtp_server
    opts.starttls = False
    opts.auth = "PLAIN"
    long_line = "x" * 70 + " = ü " + "y" * 20
    config_text = (
        f"global:\n  smtp_smarthost: '127.0.0.1:{port_of(server)}'\n"
        "  smtp_from: 'Alertmanager <am@example.com>'\n  smtp_require_tls: false\n"
        "  smtp_auth_username: u\n  smtp_auth_password: p\n"
        + AM_CONFIG
        + "  email_configs:\n  - to: 'Ops <ops@example.com>, b@example.com'\n"
        + f'    text: "{long_line}\\n{{{{ .Status }}}} \\t\\n. dot"\n'
        + "    headers: {X-Custom: 'Grüße {{ .Status }}', subject: 'S: {{ .CommonLabels.severity }}'}\n"
    )

    theirs, mine = await both_sessions(opts, tmp_path, config_text)
    assert (mine.auth, mine.mail_from, mine.rcpt) == (theirs.auth, theirs.mail_from, theirs.rcpt)
    assert normalised(mine.data) == normalised(theirs.data)


async def test_cancel_abandons_a_stuck_smtp_dialogue(autojump_clock: trio.abc.Clock) -> None:
    """A server that never greets does not hold up a cancelled send."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(1)
    try:
        conf = email_config(listener.getsockname()[1], ", require_tls: false")
        integ = email.build(conf, 0, env_with(recorder()[1], real_templates()))
        with trio.move_on_after(5) as scope:
            await integ.notify(ctx(), [firing()])
        assert scope.cancelled_caught
    finally:
        # Closing the listener resets the queued connection, ending the worker thread.
        listener.close()


# An html body with actions in every context html/template escapes differently: CSS in a
# style element and attributes, JS in a script element and an on* attribute (values as
# JSON, strings, a regexp), quoted and unquoted attributes, URLs (filtered, normalised,
# query-escaped), srcset, an attribute name, comments and a stray "<".
CONTEXT_HTML = """\
<html><head><style>p { color: {{ "red" }}; } a { background: url("{{ .ExternalURL }}/b.png?r={{ .Receiver }}") } /* {{ .Status }} */</style>
<script>var data = {{ . }}; var labels = {{ .CommonLabels }}; var s = "{{ .CommonAnnotations.summary }}"; var re = /{{ .GroupLabels.alertname }}.x/; // {{ .Status }}
</script></head><body><!-- hidden {{ .Status }} -->
{{ range .Alerts }}<p style="color: {{ if eq .Status "firing" }}red{{ else }}green{{ end }}; font-family: '{{ .Labels.instance }}'" title={{ .Annotations.summary }} data-sev="{{ .Labels.severity }}" onclick="show({{ .Labels }}, '{{ .Annotations.summary }}')">
<a href="{{ .GeneratorURL }}">{{ .Annotations.summary }}</a> <a href="{{ $.ExternalURL }}/#/silences/new?filter={{ .Labels.alertname | urlquery }}&amp;d={{ .Annotations.description }}">s</a> <a href="{{ .Annotations.summary }}">u</a> <a href="javascript:{{ .Labels.instance }}">j</a> a < b</p>
{{ end }}<img srcset="{{ .ExternalURL }}/a.png 1x, {{ "javascript:x 2x" }}"><a {{ "title" }}="t" style='{{ "expression(x)" }}'>x</a></body></html>
"""


@pytest.mark.alertmanager
async def test_same_html_escaping_as_alertmanager(
    smtp_server: tuple[_Server, SMTPServerOptions], tmp_path: pathlib.Path
) -> None:
    """An html body with actions in script, style, attribute and URL contexts is byte for byte
    the one Alertmanager 0.25 sends."""
    server, opts = smtp_server
    opts.starttls = False
    opts.auth = ""
    body = "".join("      " + line + "\n" for line in CONTEXT_HTML.splitlines())
    config_text = (
        f"global:\n  smtp_smarthost: '127.0.0.1:{port_of(server)}'\n"
        "  smtp_from: 'am@example.com'\n  smtp_require_tls: false\n"
        + AM_CONFIG
        + "  email_configs:\n  - to: 'ops@example.com'\n    html: |\n"
        + body
    )
    theirs, mine = await both_sessions(opts, tmp_path, config_text)
    assert b"ZgotmplZ" in theirs.data and b"\\u003c" in theirs.data
    assert normalised(mine.data) == normalised(theirs.data)
