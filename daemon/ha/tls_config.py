"""``--cluster.tls-config``: the file that switches gossip to Alertmanager's TLS transport.

The file is Alertmanager 0.25's ``cluster.TLSTransportConfig``, read with yaml.v2's
strict mode::

    tls_server_config:        # exporter-toolkit v0.8 web.TLSConfig
      cert_file: node.pem
      key_file: node-key.pem
      client_auth_type: RequireAndVerifyClientCert
      client_ca_file: ca.pem
    tls_client_config:        # prometheus/common v0.38 config.TLSConfig
      cert_file: node.pem
      key_file: node-key.pem
      ca_file: ca.pem

Relative paths are taken from the file's directory. Both sections are required
(Alertmanager crashes without either). The checks and their messages are upstream's
(``web.ConfigToTLSConfig`` and ``config.NewTLSConfig``), so an operator sees the same
verdict; every error names the file, the line and the key.

Differences from Go's ``crypto/tls``, forced by Python's ``ssl``:

* ``RequireAnyClientCert`` (require a certificate but do not verify it) cannot be
  expressed and is refused; ``RequestClientCert`` does not ask for a certificate, which
  is equivalent here because the transport never looks at it.
* ``curve_preferences`` is checked but OpenSSL's default groups are used.
* ``cipher_suites`` maps Go's names to OpenSSL's and applies to TLS 1.2 (Go ignores the
  list for TLS 1.3 as well).
* Certificates are read once at start-up (Go re-reads them on every handshake).
"""

from __future__ import annotations

import os
import ssl
from collections.abc import Callable, Iterator

import attrs
from prometheus_client.core import CounterMetricFamily, Metric

from cluster.tls_transport import TLSTransportStatistics
from daemon.config.decode import Bool, Decoder, Field, ListOf, Obj, Scalar, Struct
from daemon.config.decode import Invalid as _Invalid
from daemon.config.errors import ConfigError
from daemon.config.schema import STR, TLS_CONFIG, TLS_VERSION
from daemon.config.yamlsource import compose
from daemon.gocompat.strconv import go_quote

#: Go 1.19's ``tls.CipherSuites()`` (what exporter-toolkit accepts) → OpenSSL names;
#: None for the TLS 1.3 suites, which cannot be configured in Go either.
GO_CIPHER_SUITES: dict[str, str | None] = {
    "TLS_RSA_WITH_AES_128_CBC_SHA": "AES128-SHA",
    "TLS_RSA_WITH_AES_256_CBC_SHA": "AES256-SHA",
    "TLS_RSA_WITH_AES_128_GCM_SHA256": "AES128-GCM-SHA256",
    "TLS_RSA_WITH_AES_256_GCM_SHA384": "AES256-GCM-SHA384",
    "TLS_AES_128_GCM_SHA256": None,
    "TLS_AES_256_GCM_SHA384": None,
    "TLS_CHACHA20_POLY1305_SHA256": None,
    "TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA": "ECDHE-ECDSA-AES128-SHA",
    "TLS_ECDHE_ECDSA_WITH_AES_256_CBC_SHA": "ECDHE-ECDSA-AES256-SHA",
    "TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA": "ECDHE-RSA-AES128-SHA",
    "TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA": "ECDHE-RSA-AES256-SHA",
    "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256": "ECDHE-ECDSA-AES128-GCM-SHA256",
    "TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384": "ECDHE-ECDSA-AES256-GCM-SHA384",
    "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256": "ECDHE-RSA-AES128-GCM-SHA256",
    "TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384": "ECDHE-RSA-AES256-GCM-SHA384",
    "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256": "ECDHE-RSA-CHACHA20-POLY1305",
    "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256": "ECDHE-ECDSA-CHACHA20-POLY1305",
}
GO_CURVES = ("CurveP256", "CurveP384", "CurveP521", "X25519")
_SSL_VERSIONS = {
    "TLS10": ssl.TLSVersion.TLSv1,
    "TLS11": ssl.TLSVersion.TLSv1_1,
    "TLS12": ssl.TLSVersion.TLSv1_2,
    "TLS13": ssl.TLSVersion.TLSv1_3,
}


class ClusterTLSError(ValueError):
    """The ``--cluster.tls-config`` file cannot be used (the daemon should exit 1)."""


@attrs.frozen
class ClusterTLS:
    """What :func:`cluster.tls_transport.open_tls_transport` needs besides the address."""

    server_context: ssl.SSLContext
    client_context: ssl.SSLContext
    #: ``tls_client_config.server_name`` ("": check peers against the address dialed).
    server_name: str = ""


# --- the file's types ---------------------------------------------------------------------


def _parse_cipher(text: str) -> str:
    if text not in GO_CIPHER_SUITES:
        raise _Invalid(f"unknown cipher: {text}")
    return text


def _parse_curve(text: str) -> str:
    if text not in GO_CURVES:
        raise _Invalid(f"unknown curve: {text}")
    return text


SERVER_CONFIG = Struct(
    "web.TLSConfig",
    [
        Field("cert_file", STR),
        Field("key_file", STR),
        Field("client_auth_type", STR),
        Field("client_ca_file", STR),
        Field("cipher_suites", ListOf(Scalar(_parse_cipher, str), "[]web.Cipher")),
        Field("curve_preferences", ListOf(Scalar(_parse_curve, str), "[]web.Curve")),
        Field("min_version", TLS_VERSION),
        Field("max_version", TLS_VERSION),
        Field("prefer_server_cipher_suites", Bool()),
    ],
)
#: The client side reuses the receivers' ``tls_config`` type, as a pointer here.
CLIENT_CONFIG = Struct("config.plain", list(TLS_CONFIG.fields.values()))
TRANSPORT_CONFIG = Struct(
    "cluster.TLSTransportConfig",
    [Field("tls_server_config", SERVER_CONFIG), Field("tls_client_config", CLIENT_CONFIG)],
    pointer=False,
)


# --- loading ------------------------------------------------------------------------------


def load_cluster_tls(path: str) -> ClusterTLS:
    """Read ``path`` and build both SSL contexts.

    Raises:
        ClusterTLSError: the file is unreadable, malformed, or names unusable
            certificates; the message names the flag, file, line and key.
    """
    try:
        with open(path, encoding="utf-8") as f:
            text = f.read()
    except (OSError, UnicodeDecodeError) as exc:
        raise ClusterTLSError(f"--cluster.tls-config: {exc}") from None
    try:
        return parse_cluster_tls(text, os.path.dirname(path))
    except ConfigError as exc:
        raise ClusterTLSError(f"--cluster.tls-config: {exc.with_file(path)}") from None


def parse_cluster_tls(text: str, directory: str) -> ClusterTLS:
    """Decode the file's text (relative paths from ``directory``) into SSL contexts.

    Raises:
        ConfigError: what upstream would reject, located by line and key.
    """
    decoder = Decoder()
    node = compose(text)
    config: Obj = TRANSPORT_CONFIG.new()
    if node is not None:
        config = TRANSPORT_CONFIG.decode(decoder, node, "")
    if decoder.type_errors:
        raise decoder.unmarshal_errors()
    located = _Locator(decoder.positions)
    for section in ("tls_server_config", "tls_client_config"):
        if config[section] is None:
            raise ConfigError("required section is missing", key=section)
    server = _with_directory(config["tls_server_config"], directory, SERVER_FILES)
    client = _with_directory(config["tls_client_config"], directory, CLIENT_FILES)
    return ClusterTLS(
        server_context=server_context(server, located.under("tls_server_config")),
        client_context=client_context(client, located.under("tls_client_config")),
        server_name=str(client["server_name"]),
    )


SERVER_FILES = ("cert_file", "key_file", "client_ca_file")
CLIENT_FILES = ("ca_file", "cert_file", "key_file")


def _with_directory(section: Obj, directory: str, keys: tuple[str, ...]) -> Obj:
    """Go's ``SetDirectory``: relative, non-empty paths are joined to the file's folder."""
    out = dict(section)
    for key in keys:
        if out[key] and not os.path.isabs(out[key]):
            out[key] = os.path.join(directory, out[key])
    return out


@attrs.frozen
class _Locator:
    """Builds a ConfigError pointing at a key of one section."""

    positions: dict[str, int]
    section: str = ""

    def under(self, section: str) -> _Locator:
        return _Locator(self.positions, section)

    def error(self, message: str, key: str = "") -> ConfigError:
        path = f"{self.section}.{key}" if key else self.section
        line = self.positions.get(path, self.positions.get(self.section))
        return ConfigError(message, line=line, key=path)


def server_context(c: Obj, where: _Locator) -> ssl.SSLContext:
    """``web.ConfigToTLSConfig`` for the listening side.

    Raises:
        ConfigError: upstream's message for the problem.
    """

    def invalid(message: str, key: str = "") -> ConfigError:
        return where.error(f"invalid TLS server config: {message}", key)

    if not (c["cert_file"] or c["key_file"] or c["client_auth_type"] or c["client_ca_file"]):
        raise invalid("TLS config is not present")
    if not c["cert_file"]:
        raise invalid("missing cert_file", "cert_file")
    if not c["key_file"]:
        raise invalid("missing key_file", "key_file")
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    try:
        ctx.load_cert_chain(c["cert_file"], c["key_file"])
    except (OSError, ValueError) as exc:
        raise invalid(f"failed to load X509KeyPair: {_reason(exc)}", "cert_file") from None
    _set_versions(ctx, c, where)
    openssl = [GO_CIPHER_SUITES[name] for name in c["cipher_suites"] or ()]
    if any(openssl):
        try:
            ctx.set_ciphers(":".join(name for name in openssl if name))
        except ssl.SSLError:
            raise invalid("no configured cipher suite is available", "cipher_suites") from None
    auth = c["client_auth_type"]
    if auth in ("RequireAnyClientCert", "RequireClientCert"):
        raise invalid(
            f"client_auth_type {auth} is not supported by tocsin (Python's ssl cannot "
            "require a certificate without verifying it); use RequireAndVerifyClientCert",
            "client_auth_type",
        )
    modes = {
        "": ssl.CERT_NONE,
        "NoClientCert": ssl.CERT_NONE,
        "RequestClientCert": ssl.CERT_NONE,
        "VerifyClientCertIfGiven": ssl.CERT_OPTIONAL,
        "RequireAndVerifyClientCert": ssl.CERT_REQUIRED,
    }
    if auth not in modes:
        raise invalid(f"Invalid ClientAuth: {auth}", "client_auth_type")
    if c["client_ca_file"]:
        if modes[auth] == ssl.CERT_NONE and auth != "RequestClientCert":
            raise invalid(
                "Client CA's have been configured without a Client Auth Policy",
                "client_auth_type",
            )
        _load_ca(ctx, c["client_ca_file"], lambda m: invalid(m, "client_ca_file"))
    elif modes[auth] != ssl.CERT_NONE:
        # Go verifies client certificates against the system roots without a CA file
        ctx.load_default_certs(ssl.Purpose.CLIENT_AUTH)
    ctx.verify_mode = modes[auth]
    return ctx


def client_context(c: Obj, where: _Locator) -> ssl.SSLContext:
    """``config.NewTLSConfig`` for the dialing side.

    Raises:
        ConfigError: upstream's message for the problem.
    """
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    if c["min_version"] and c["max_version"]:
        order = list(_SSL_VERSIONS)
        if order.index(c["max_version"]) < order.index(c["min_version"]):
            raise where.error(
                "tls_config.max_version must be greater than or equal to "
                "tls_config.min_version if both are specified",
                "max_version",
            )
    _set_versions(ctx, c, where)
    if c["ca_file"]:
        _load_ca(ctx, c["ca_file"], lambda m: where.error(m, "ca_file"))
    else:
        ctx.load_default_certs(ssl.Purpose.SERVER_AUTH)
    cert, key = c["cert_file"], c["key_file"]
    if cert and not key:
        raise where.error(
            f"client cert file {go_quote(cert)} specified without client key file", "cert_file"
        )
    if key and not cert:
        raise where.error(
            f"client key file {go_quote(key)} specified without client cert file", "key_file"
        )
    if cert:
        try:
            ctx.load_cert_chain(cert, key)
        except (OSError, ValueError) as exc:
            raise where.error(
                f"unable to use specified client cert ({cert}) & key ({key}): {_reason(exc)}",
                "cert_file",
            ) from None
    if c["insecure_skip_verify"]:
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    return ctx


def _set_versions(ctx: ssl.SSLContext, c: Obj, where: _Locator) -> None:
    for key, attr in (("min_version", "minimum_version"), ("max_version", "maximum_version")):
        if c[key]:
            try:
                setattr(ctx, attr, _SSL_VERSIONS[c[key]])
            except (ValueError, ssl.SSLError) as exc:
                raise where.error(f"{key} {c[key]}: {_reason(exc)}", key) from None


def _load_ca(ctx: ssl.SSLContext, path: str, error: Callable[[str], ConfigError]) -> None:
    try:
        with open(path, encoding="ascii", errors="replace") as f:
            pem = f.read()
    except OSError as exc:
        raise error(f"unable to load specified CA cert {path}: {_reason(exc)}") from None
    try:
        ctx.load_verify_locations(cadata=pem)
    except (ssl.SSLError, ValueError):
        raise error(f"unable to use specified CA cert {path}") from None


def _reason(exc: BaseException) -> str:
    if isinstance(exc, OSError) and exc.strerror:
        name = f" {exc.filename}" if exc.filename else ""
        return f"open{name}: {exc.strerror.lower()}" if name else exc.strerror
    return str(exc)


# --- metrics ------------------------------------------------------------------------------


def tls_transport_metrics(stats: TLSTransportStatistics) -> Iterator[Metric]:
    """Alertmanager's ``alertmanager_tls_transport_*`` counters from a transport snapshot."""
    for name, doc, value in (
        (
            "alertmanager_tls_transport_packet_bytes_sent",
            "The number of packet bytes sent to outgoing connections (excluding internal "
            "metadata).",
            stats.packet_bytes_sent,
        ),
        (
            "alertmanager_tls_transport_packet_bytes_received",
            "The number of packet bytes received from incoming connections (excluding "
            "internal metadata).",
            stats.packet_bytes_received,
        ),
        (
            "alertmanager_tls_transport_stream_connections_sent",
            "The number of stream connections sent.",
            stats.stream_connections_sent,
        ),
        (
            "alertmanager_tls_transport_stream_connections_received",
            "The number of stream connections received.",
            stats.stream_connections_received,
        ),
        (
            "alertmanager_tls_transport_read_errors",
            "The number of errors encountered while reading from incoming connections.",
            stats.read_errors,
        ),
    ):
        yield CounterMetricFamily(name, doc, value=value)
    writes = CounterMetricFamily(
        "alertmanager_tls_transport_write_errors",
        "The number of errors encountered while writing to outgoing connections.",
        labels=["connection_type"],
    )
    writes.add_metric(["packet"], stats.write_errors_packet)
    writes.add_metric(["stream"], stats.write_errors_stream)
    yield writes
