"""The email integration: SMTP as Alertmanager 0.25 speaks it.

Theory of operation: the message is rendered and built in the trio task (pure:
:func:`build_message`), then one worker thread runs the blocking ``smtplib`` dialogue
(:func:`deliver`), in upstream's order:

1. Connect; port 465 means implicit TLS, any other port plain TCP.
2. ``EHLO <hello>``.
3. With ``require_tls`` (the default) the server must advertise ``STARTTLS``, and the
   session is upgraded (``tls_config`` honoured; the server name defaults to the
   smarthost's host).
4. If the server advertises ``AUTH`` and ``auth_username`` is set, the first of the
   server's mechanisms tocsin can serve is used: ``CRAM-MD5`` (needs ``auth_secret``),
   ``PLAIN`` (needs a password; like Go, refused on an unencrypted connection to a
   host other than localhost) or ``LOGIN`` (answers ``Username:``/``Password:``).
5. ``MAIL FROM`` (exactly one parsed ``from`` address; ``BODY=8BITMIME`` when
   offered), one ``RCPT TO`` per parsed ``to`` address, ``DATA``, ``QUIT``.

The message: every configured header (rendered, Q-encoded when not plain ASCII; sorted
here, in map order upstream), ``Message-Id`` unless configured, ``Date`` (RFC 1123 with
numeric zone), ``Content-Type: multipart/alternative;  boundary=…`` and
``MIME-Version: 1.0``; then the quoted-printable ``text/plain`` part (when ``text`` is
set) and the ``text/html`` part (when ``html`` is set), as Go's multipart writer lays
them out.

Error handling: connection, TLS, auth and SMTP command failures are retryable; template
errors, unparsable addresses and an unreadable TLS config are permanent.

Cancellation: the worker thread cannot be interrupted; on cancel it is abandoned and
ends by itself within :data:`SMTP_TIMEOUT`.
"""

from __future__ import annotations

import datetime
import functools
import hmac
import random
import smtplib
import socket
import ssl
from collections.abc import Callable, Mapping, Sequence
from email.utils import getaddresses
from typing import Any

import attrs
import structlog
import trio

from daemon import thread_limits
from daemon.alert import Alert
from daemon.notify import firewall
from daemon.notify.context import NotifyContext
from daemon.notify.receivers._http import FieldRenderer, read_key_file
from daemon.notify.receivers.base import ConfiguredIntegration
from daemon.notify.retry import NotifyError

INTEGRATION_TYPE = "email"
#: Seconds any one socket operation of the SMTP dialogue may block.
SMTP_TIMEOUT = 60.0
_QP_LINE = 76
_HEX = "0123456789ABCDEF"
_Q_MAX_CONTENT = 75 - len("=?utf-8?q?") - len("?=")
_TLS_VERSIONS = {
    "TLS10": ssl.TLSVersion.TLSv1,
    "TLS11": ssl.TLSVersion.TLSv1_1,
    "TLS12": ssl.TLSVersion.TLSv1_2,
    "TLS13": ssl.TLSVersion.TLSv1_3,
    "769": ssl.TLSVersion.TLSv1,
    "770": ssl.TLSVersion.TLSv1_1,
    "771": ssl.TLSVersion.TLSv1_2,
    "772": ssl.TLSVersion.TLSv1_3,
}

log = structlog.get_logger(__name__)

# --- the message (pure) -------------------------------------------------------------------


def q_encode(value: str) -> str:
    """Go's ``mime.QEncoding.Encode("utf-8", value)``: as is when printable ASCII."""
    if all(" " <= ch <= "~" or ch == "\t" for ch in value):
        return value
    words: list[str] = []
    current = ""
    for ch in value:
        encoded = ""
        for b in ch.encode("utf-8", "surrogatepass"):
            if b == 0x20:
                encoded += "_"
            elif 0x21 <= b <= 0x7E and b not in b"=?_":
                encoded += chr(b)
            else:
                encoded += "=" + _HEX[b >> 4] + _HEX[b & 0xF]
        # A character is never split across encoded words.
        if current and len(current) + len(encoded) > _Q_MAX_CONTENT:
            words.append(current)
            current = ""
        current += encoded
    words.append(current)
    return " ".join(f"=?utf-8?q?{w}?=" for w in words)


def quoted_printable(data: bytes) -> bytes:
    """Go's ``mime/quotedprintable`` writer: CRLF lines, ≤76 chars, ``=`` soft breaks."""
    out = bytearray()
    line = bytearray()
    cr = False

    def flush(end: bytes) -> None:
        out.extend(line)
        out.extend(end)
        line.clear()

    def encode(b: int) -> None:
        if _QP_LINE - 1 - len(line) < 3:
            flush(b"=\r\n")
        line.extend(f"={_HEX[b >> 4]}{_HEX[b & 0xF]}".encode())

    def trailing_space() -> None:
        # Whitespace before a line break must be encoded, or transports may strip it.
        if line and line[-1] in b" \t":
            encode(line.pop())

    for b in data:
        if b in b"\r\n":
            if cr and b == 0x0A:
                cr = False
                continue
            cr = b == 0x0D
            trailing_space()
            flush(b"\r\n")
            continue
        if (0x21 <= b <= 0x7E and b != 0x3D) or b in b" \t":
            if len(line) == _QP_LINE - 1:
                flush(b"=\r\n")
            line.append(b)
            cr = False
        else:
            encode(b)
            cr = False
    trailing_space()
    out.extend(line)
    return bytes(out)


def format_date(now_ns: int) -> str:
    """Go's ``time.RFC1123Z`` in UTC: ``Mon, 02 Jan 2006 15:04:05 +0000``."""
    moment = datetime.datetime.fromtimestamp(now_ns // 1_000_000_000, tz=datetime.UTC)
    return moment.strftime("%a, %d %b %Y %H:%M:%S +0000")


def build_message(
    headers: Mapping[str, str],
    text: str | None,
    html: str | None,
    *,
    now_ns: int,
    hostname: str,
    boundary: str,
    nonce: int,
) -> bytes:
    """The DATA of one email: headers, then the multipart/alternative body.

    A part is present when its template is configured (not None), even if it renders
    empty, as upstream decides on the template text.
    """
    head = [f"{name}: {q_encode(headers[name])}\r\n" for name in sorted(headers)]
    if "Message-Id" not in headers:
        head.append(f"Message-Id: <{now_ns}.{nonce}@{hostname}>\r\n")
    head.append(f"Date: {format_date(now_ns)}\r\n")
    head.append(f"Content-Type: multipart/alternative;  boundary={boundary}\r\n")
    head.append("MIME-Version: 1.0\r\n\r\n")
    body = bytearray()
    # The HTML part goes last: RFC 2046 §5.1.4 puts the preferred alternative last.
    for kind, content in (("plain", text), ("html", html)):
        if content is None:
            continue
        body += b"\r\n" if body else b""
        body += (
            f"--{boundary}\r\n"
            "Content-Transfer-Encoding: quoted-printable\r\n"
            f"Content-Type: text/{kind}; charset=UTF-8\r\n\r\n"
        ).encode()
        body += quoted_printable(content.encode("utf-8", "surrogatepass"))
    body += f"\r\n--{boundary}--\r\n".encode() if body else f"--{boundary}--\r\n".encode()
    return "".join(head).encode("utf-8", "surrogatepass") + bytes(body)


def parse_addresses(text: str) -> list[str]:
    """The bare addresses of an RFC 5322 address list; empty when it does not parse."""
    if not text.strip():
        return []
    found = getaddresses([text])
    addresses = [addr for _, addr in found]
    if not addresses or any("@" not in a for a in addresses):
        return []
    return addresses


# --- the SMTP dialogue (blocking; runs in a worker thread) ----------------------------------


@attrs.frozen
class SMTPSettings:
    """Everything the dialogue needs, resolved before the thread starts."""

    host: str
    port: int
    #: TLS from the first byte; upstream's rule is ``port == 465``.
    implicit_tls: bool
    hello: str
    require_tls: bool
    tls_context: ssl.SSLContext | None
    tls_server_name: str
    username: str
    password: str | None
    password_error: str | None
    secret: str
    identity: str


def tls_context(tls_config: Mapping[str, Any] | None) -> ssl.SSLContext:
    """An SSL context from a Prometheus ``tls_config``.

    Error handling: unreadable files raise :class:`NotifyError` (permanent).
    """
    tc = dict(tls_config or {})
    try:
        context = ssl.create_default_context(cafile=tc.get("ca_file") or None)
        if tc.get("cert_file"):
            context.load_cert_chain(tc["cert_file"], tc.get("key_file") or None)
    except (OSError, ssl.SSLError) as exc:
        raise NotifyError(f"parse TLS configuration: {exc}", retryable=False) from None
    if tc.get("insecure_skip_verify"):
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    for key, attr in (("min_version", "minimum_version"), ("max_version", "maximum_version")):
        version = _TLS_VERSIONS.get(str(tc.get(key) or ""))
        if version is not None:
            setattr(context, attr, version)
    return context


class _SMTP(smtplib.SMTP):
    """``smtplib.SMTP`` that can start with TLS and verify against a chosen name."""

    def __init__(self, implicit_tls: ssl.SSLContext | None, server_name: str) -> None:
        self._implicit_tls = implicit_tls
        self._server_name = server_name
        super().__init__(timeout=SMTP_TIMEOUT)

    def _get_socket(self, host: str, port: int, timeout: float) -> socket.socket:
        # Through a tenant's receivers firewall, when the pipeline has one.
        sock = firewall.create_connection(host, port, timeout, self.source_address)
        if self._implicit_tls is None:
            return sock
        return self._implicit_tls.wrap_socket(sock, server_hostname=self._server_name)


def _is_localhost(name: str) -> bool:
    return name in ("localhost", "127.0.0.1", "::1")


def _cram_md5(username: str, secret: str) -> Callable[..., str]:
    def respond(challenge: bytes | None = None) -> str:
        digest = hmac.new(secret.encode(), challenge or b"", "md5").hexdigest()
        return f"{username} {digest}"

    return respond


def _plain(identity: str, username: str, password: str) -> Callable[..., str]:
    def respond(challenge: bytes | None = None) -> str:
        return f"{identity}\0{username}\0{password}"

    return respond


def _login(username: str, password: str) -> Callable[..., str]:
    def respond(challenge: bytes | None = None) -> str:
        prompt = (challenge or b"").decode(errors="replace").lower()
        if prompt == "username:":
            return username
        if prompt == "password:":
            return password
        raise smtplib.SMTPException("unexpected server challenge")

    return respond


def _authenticate(client: _SMTP, s: SMTPSettings, encrypted: bool) -> None:
    mechs = client.esmtp_features.get("auth", "")
    errors: list[str] = []
    for mech in mechs.upper().split(" "):
        if mech == "CRAM-MD5":
            if not s.secret:
                errors.append("missing secret for CRAM-MD5 auth mechanism")
                continue
            responder = _cram_md5(s.username, s.secret)
            _run_auth(client, mech, responder, "*smtp.cramMD5Auth", initial=False)
            return
        if mech in ("PLAIN", "LOGIN"):
            if s.password_error is not None:
                errors.append(s.password_error)
                continue
            if not s.password:
                errors.append(f"missing password for {mech} auth mechanism")
                continue
            if mech == "LOGIN":
                responder = _login(s.username, s.password)
                _run_auth(client, mech, responder, "*email.loginAuth", initial=False)
                return
            # Go's PlainAuth never sends the password in clear to a remote host.
            if not encrypted and not _is_localhost(s.host):
                raise NotifyError("*smtp.plainAuth auth: unencrypted connection", retryable=True)
            responder = _plain(s.identity, s.username, s.password)
            _run_auth(client, mech, responder, "*smtp.plainAuth", initial=True)
            return
    message = "; ".join(errors) if errors else f"unknown auth mechanism: {mechs}"
    raise NotifyError(f"find auth mechanism: {message}", retryable=True)


def _run_auth(
    client: _SMTP, mech: str, obj: Callable[..., str], go_type: str, *, initial: bool
) -> None:
    try:
        client.auth(mech, obj, initial_response_ok=initial)
    except (smtplib.SMTPException, OSError) as exc:
        raise NotifyError(f"{go_type} auth: {exc}", retryable=True) from None


def _step(what: str, fn: Callable[[], Any]) -> Any:
    try:
        return fn()
    except (smtplib.SMTPException, OSError) as exc:
        raise NotifyError(f"{what}: {exc}", retryable=True) from None


def deliver(s: SMTPSettings, sender: str, recipients: Sequence[str], message: bytes) -> None:
    """Run the whole SMTP dialogue (blocking).

    Error handling: raises :class:`NotifyError`; the connection is always closed.
    """
    implicit = s.implicit_tls
    if (implicit or s.require_tls) and s.tls_context is None:
        raise NotifyError("parse TLS configuration: missing TLS context", retryable=False)
    client = _SMTP(s.tls_context if implicit else None, s.tls_server_name)
    try:
        what = (
            "establish TLS connection to server" if implicit else "establish connection to server"
        )
        _step(what, lambda: client.connect(s.host, s.port))
        _step("send EHLO command", lambda: client.ehlo(s.hello or "localhost"))
        encrypted = implicit
        if s.require_tls:
            if not client.has_extn("starttls"):
                raise NotifyError(
                    f"'require_tls' is true (default) but \"{s.host}:{s.port}\" does not "
                    "advertise the STARTTLS extension",
                    retryable=True,
                )
            # smtplib verifies against the connected host; upstream uses server_name.
            setattr(client, "_host", s.tls_server_name)  # noqa: B010
            _step("send STARTTLS command", lambda: client.starttls(context=s.tls_context))
            _step("send EHLO command", lambda: client.ehlo(s.hello or "localhost"))
            encrypted = True
        if client.has_extn("auth") and s.username:
            _authenticate(client, s, encrypted)
        options = ["BODY=8BITMIME"] if client.has_extn("8bitmime") else []
        _step("send MAIL command", lambda: _ok(client.mail(sender, options)))
        for rcpt in recipients:
            _step("send RCPT command", functools.partial(_rcpt, client, rcpt))
        _step("send DATA command", lambda: _ok(client.data(message)))
    finally:
        try:
            client.quit()
        except (smtplib.SMTPException, OSError):
            client.close()


def _rcpt(client: _SMTP, address: str) -> None:
    _ok(client.rcpt(address))


def _ok(reply: tuple[int, bytes]) -> None:
    code, text = reply
    if not 200 <= code < 400:
        raise smtplib.SMTPResponseException(code, text)


# --- the integration ------------------------------------------------------------------------


def _host_port(smarthost: str) -> tuple[str, int]:
    host, _, port = smarthost.rpartition(":")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    return host, int(port)


@attrs.define
class EmailIntegration(ConfiguredIntegration):
    """One ``email_configs`` entry.

    Cancellation: see the module docstring (the worker thread is abandoned).
    """

    name: str = INTEGRATION_TYPE
    hostname: str = attrs.field(factory=socket.gethostname)
    rng: random.Random = attrs.field(factory=random.Random)

    def render_message(self, ctx: NotifyContext, alerts: Sequence[Alert]) -> bytes:
        """Render headers and bodies and build the message."""
        f = self.fields
        tmpl = FieldRenderer(self.env, ctx, alerts)
        headers: dict[str, str] = {}
        for name, value in (f.get("headers") or {}).items():
            try:
                headers[name] = tmpl(value)
            except NotifyError as exc:
                raise NotifyError(
                    f'execute "{name}" header template: {exc}', retryable=False
                ) from None
        try:
            text = tmpl(str(f.get("text") or ""))
        except NotifyError as exc:
            raise NotifyError(f"execute text template: {exc}", retryable=False) from None
        try:
            html = tmpl(str(f.get("html") or ""), html=True)
        except NotifyError as exc:
            raise NotifyError(f"execute html template: {exc}", retryable=False) from None
        return build_message(
            headers,
            text if f.get("text") else None,
            html if f.get("html") else None,
            now_ns=self.env.clock.now(),
            hostname=self.hostname,
            boundary=self.rng.randbytes(30).hex(),
            nonce=self.rng.getrandbits(64),
        )

    async def settings(self) -> SMTPSettings:
        """The connection settings, with the password file read now."""
        f = self.fields
        host, port = _host_port(str(f.get("smarthost") or ""))
        tls = f.get("tls_config") or {}
        context = tls_context(tls) if port == 465 or f.get("require_tls", True) else None
        password: str | None = str(f.get("auth_password") or "")
        password_error = None
        if f.get("auth_password_file"):
            try:
                # Upstream does not trim the file's content.
                password = await read_key_file(
                    str(f["auth_password_file"]), "password", strip=False
                )
            except NotifyError:
                password = None
                password_error = f"could not read {f['auth_password_file']}"
        return SMTPSettings(
            host=host,
            port=port,
            implicit_tls=port == 465,
            hello=str(f.get("hello") or ""),
            require_tls=bool(f.get("require_tls", True)),
            tls_context=context,
            tls_server_name=str(tls.get("server_name") or "") or host,
            username=str(f.get("auth_username") or ""),
            password=password,
            password_error=password_error,
            secret=str(f.get("auth_secret") or ""),
            identity=str(f.get("auth_identity") or ""),
        )

    async def notify(self, ctx: NotifyContext, alerts: Sequence[Alert]) -> None:
        """Send one email; raises :class:`NotifyError` on failure."""
        tmpl = FieldRenderer(self.env, ctx, alerts)
        try:
            sender_text = tmpl(str(self.fields.get("from") or ""))
        except NotifyError as exc:
            raise NotifyError(f"execute 'from' template: {exc}", retryable=False) from None
        try:
            to_text = tmpl(str(self.fields.get("to") or ""))
        except NotifyError as exc:
            raise NotifyError(f"execute 'to' template: {exc}", retryable=False) from None
        senders = parse_addresses(sender_text)
        if len(senders) != 1:
            raise NotifyError(
                f"must be exactly one 'from' address (got: {len(senders)})", retryable=False
            )
        recipients = parse_addresses(to_text)
        if not recipients:
            raise NotifyError(f"parse 'to' addresses: {to_text!r}", retryable=False)
        message = self.render_message(ctx, alerts)
        settings = await self.settings()
        await trio.to_thread.run_sync(
            deliver,
            settings,
            senders[0],
            recipients,
            message,
            abandon_on_cancel=True,
            limiter=thread_limits.smtp(),
        )


build = EmailIntegration.from_config


__all__ = [
    "INTEGRATION_TYPE",
    "EmailIntegration",
    "SMTPSettings",
    "build",
    "build_message",
    "deliver",
    "q_encode",
    "quoted_printable",
]
