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

* The server side's limits are :mod:`daemon.config.tls_server`'s (shared with
  ``--web.config.file``).
* Certificates are read once at start-up (Go re-reads them on every handshake).
"""

from __future__ import annotations

import ssl
from collections.abc import Iterator

import attrs
from prometheus_client.core import CounterMetricFamily, Metric

from cluster.tls_transport import TLSTransportStatistics
from daemon.config.decode import Field, Obj, Struct
from daemon.config.errors import ConfigError
from daemon.config.schema import TLS_CONFIG
from daemon.config.tls_server import (
    SERVER_FILES,
    SSL_VERSIONS,
    Locator,
    decode_strict,
    load_ca,
    load_flag_file,
    os_reason,
    server_config_type,
    server_context,
    set_versions,
    with_directory,
)
from daemon.gocompat.strconv import go_quote


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


SERVER_CONFIG = server_config_type()
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
    return load_flag_file("cluster.tls-config", path, parse_cluster_tls, ClusterTLSError)


def parse_cluster_tls(text: str, directory: str) -> ClusterTLS:
    """Decode the file's text (relative paths from ``directory``) into SSL contexts.

    Raises:
        ConfigError: what upstream would reject, located by line and key.
    """
    config, located = decode_strict(TRANSPORT_CONFIG, text)
    for section in ("tls_server_config", "tls_client_config"):
        if config[section] is None:
            raise ConfigError("required section is missing", key=section)
    server = with_directory(config["tls_server_config"], directory, SERVER_FILES)
    client = with_directory(config["tls_client_config"], directory, CLIENT_FILES)
    return ClusterTLS(
        server_context=server_context(
            server, located.under("tls_server_config"), "invalid TLS server config: "
        ),
        client_context=client_context(client, located.under("tls_client_config")),
        server_name=str(client["server_name"]),
    )


CLIENT_FILES = ("ca_file", "cert_file", "key_file")


def client_context(c: Obj, where: Locator) -> ssl.SSLContext:
    """``config.NewTLSConfig`` for the dialing side.

    Raises:
        ConfigError: upstream's message for the problem.
    """
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    if c["min_version"] and c["max_version"]:
        order = list(SSL_VERSIONS)
        if order.index(c["max_version"]) < order.index(c["min_version"]):
            raise where.error(
                "tls_config.max_version must be greater than or equal to "
                "tls_config.min_version if both are specified",
                "max_version",
            )
    set_versions(ctx, c, where)
    if c["ca_file"]:
        load_ca(ctx, c["ca_file"], lambda m: where.error(m, "ca_file"))
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
                f"unable to use specified client cert ({cert}) & key ({key}): {os_reason(exc)}",
                "cert_file",
            ) from None
    if c["insecure_skip_verify"]:
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    return ctx


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
