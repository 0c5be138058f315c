"""exporter-toolkit's ``web.TLSConfig`` (``tls_server_config``): the listening side of TLS.

Two files use this section: ``--cluster.tls-config`` (:mod:`daemon.ha.tls_config`) and
``--web.config.file`` (:mod:`daemon.api.webconfig`). Both decode it with yaml.v2's
strict mode and turn it into an :class:`ssl.SSLContext` the way
``web.ConfigToTLSConfig`` (exporter-toolkit v0.8.2, Alertmanager 0.25's) does, with
upstream's messages, located by line and key.

Differences from Go's ``crypto/tls``, forced by Python's ``ssl`` (refused, never
silently ignored):

* ``RequireAnyClientCert`` (require a certificate but do not verify it) cannot be
  expressed and is refused. ``RequestClientCert`` does not ask for a certificate, which
  is equivalent here because tocsin never looks at an unverified certificate.
* ``curve_preferences`` with one curve is applied; Python 3.11's ssl can set only one
  group, so a list of several is refused.
* ``cipher_suites`` maps Go's names to OpenSSL's and applies to TLS 1.2 (Go ignores the
  list for TLS 1.3 as well).
"""

from __future__ import annotations

import os
import ssl
from collections.abc import Callable
from typing import TypeVar

import attrs

from daemon.config.decode import Bool, Decoder, Field, ListOf, Obj, Scalar, Struct
from daemon.config.decode import Invalid as _Invalid
from daemon.config.errors import ConfigError
from daemon.config.schema import STR, TLS_VERSION
from daemon.config.yamlsource import compose

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
#: exporter-toolkit's curve names → OpenSSL's group names.
GO_CURVES = {
    "CurveP256": "prime256v1",
    "CurveP384": "secp384r1",
    "CurveP521": "secp521r1",
    "X25519": "X25519",
}
SSL_VERSIONS = {
    "TLS10": ssl.TLSVersion.TLSv1,
    "TLS11": ssl.TLSVersion.TLSv1_1,
    "TLS12": ssl.TLSVersion.TLSv1_2,
    "TLS13": ssl.TLSVersion.TLSv1_3,
}


def _parse_cipher(text: str) -> str:
    if text not in GO_CIPHER_SUITES:
        raise _Invalid(f"unknown cipher: {text}")
    return text


def _parse_curve(text: str) -> str:
    if text not in GO_CURVES:
        raise _Invalid(f"unknown curve: {text}")
    return text


def server_config_type(defaults: Callable[[], Obj] | None = None) -> Struct:
    """``web.TLSConfig``; ``defaults`` is what the embedding file starts from."""
    return Struct(
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
        defaults=defaults,
    )


SERVER_FILES = ("cert_file", "key_file", "client_ca_file")


T = TypeVar("T")


def load_flag_file(
    flag: str, path: str, parse: Callable[[str, str], T], error: Callable[[str], Exception]
) -> T:
    """Read the file a flag names and ``parse(text, its folder)``.

    Raises:
        the ``error`` built from a message naming the flag, the file, the line and the key.
    """
    try:
        with open(path, encoding="utf-8") as f:
            text = f.read()
    except (OSError, UnicodeDecodeError) as exc:
        raise error(f"--{flag}: {exc}") from None
    try:
        return parse(text, os.path.dirname(path))
    except ConfigError as exc:
        raise error(f"--{flag}: {exc.with_file(path)}") from None


def decode_strict(struct: Struct, text: str) -> tuple[Obj, Locator]:
    """yaml.v2's ``UnmarshalStrict`` of a whole file into ``struct``, and where its keys are.

    Raises:
        ConfigError: a YAML or type problem, located by line and key.
    """
    decoder = Decoder()
    node = compose(text)
    config: Obj = struct.new()
    if node is not None:
        config = struct.decode(decoder, node, "")
    if decoder.type_errors:
        raise decoder.unmarshal_errors()
    return config, Locator(decoder.positions)


def with_directory(section: Obj, directory: str, keys: tuple[str, ...]) -> Obj:
    """Go's ``SetDirectory``: relative, non-empty paths are joined to the file's folder."""
    out = dict(section)
    for key in keys:
        if out[key] and not os.path.isabs(out[key]):
            out[key] = os.path.join(directory, out[key])
    return out


@attrs.frozen
class Locator:
    """Builds a ConfigError pointing at a key of one section."""

    positions: dict[str, int]
    section: str = ""

    def under(self, section: str) -> Locator:
        return Locator(self.positions, section)

    def error(self, message: str, key: str = "") -> ConfigError:
        path = f"{self.section}.{key}" if key else self.section
        line = self.positions.get(path, self.positions.get(self.section))
        return ConfigError(message, line=line, key=path)


class NoTLSConfig(ConfigError):
    """exporter-toolkit's ``errNoTLSConfig``: the section names no TLS setting at all."""


def server_context(c: Obj, where: Locator, prefix: str = "") -> ssl.SSLContext:
    """``web.ConfigToTLSConfig`` for the listening side.

    Raises:
        NoTLSConfig: none of cert_file, key_file, client_auth_type, client_ca_file set.
        ConfigError: upstream's message for the problem, after ``prefix``.
    """

    def invalid(message: str, key: str = "") -> ConfigError:
        return where.error(f"{prefix}{message}", key)

    if not (c["cert_file"] or c["key_file"] or c["client_auth_type"] or c["client_ca_file"]):
        absent = where.error(f"{prefix}TLS config is not present")
        raise NoTLSConfig(absent.message, line=absent.line, key=absent.key)
    if not c["cert_file"]:
        raise invalid("missing cert_file", "cert_file")
    if not c["key_file"]:
        raise invalid("missing key_file", "key_file")
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    try:
        ctx.load_cert_chain(c["cert_file"], c["key_file"])
    except (OSError, ValueError) as exc:
        raise invalid(f"failed to load X509KeyPair: {os_reason(exc)}", "cert_file") from None
    set_versions(ctx, c, where)
    openssl = [GO_CIPHER_SUITES[name] for name in c["cipher_suites"] or ()]
    if any(openssl):
        try:
            ctx.set_ciphers(":".join(name for name in openssl if name))
        except ssl.SSLError:
            raise invalid("no configured cipher suite is available", "cipher_suites") from None
    curves = c["curve_preferences"] or []
    if len(curves) > 1:
        raise invalid(
            "curve_preferences lists more than one curve, which tocsin cannot apply (Python's "
            "ssl sets a single group); list one curve or leave the key out",
            "curve_preferences",
        )
    if curves:
        ctx.set_ecdh_curve(GO_CURVES[curves[0]])
    if c["prefer_server_cipher_suites"]:
        ctx.options |= ssl.OP_CIPHER_SERVER_PREFERENCE
    else:
        ctx.options &= ~ssl.OP_CIPHER_SERVER_PREFERENCE
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
        load_ca(ctx, c["client_ca_file"], lambda m: invalid(m, "client_ca_file"))
    elif modes[auth] != ssl.CERT_NONE:
        # Go verifies client certificates against the system roots without a CA file
        ctx.load_default_certs(ssl.Purpose.CLIENT_AUTH)
    ctx.verify_mode = modes[auth]
    return ctx


def set_versions(ctx: ssl.SSLContext, c: Obj, where: Locator) -> None:
    for key, attr in (("min_version", "minimum_version"), ("max_version", "maximum_version")):
        if c[key]:
            try:
                setattr(ctx, attr, SSL_VERSIONS[c[key]])
            except (ValueError, ssl.SSLError) as exc:
                raise where.error(f"{key} {c[key]}: {os_reason(exc)}", key) from None


def load_ca(ctx: ssl.SSLContext, path: str, error: Callable[[str], ConfigError]) -> None:
    try:
        with open(path, encoding="ascii", errors="replace") as f:
            pem = f.read()
    except OSError as exc:
        raise error(f"unable to load specified CA cert {path}: {os_reason(exc)}") from None
    try:
        ctx.load_verify_locations(cadata=pem)
    except (ssl.SSLError, ValueError):
        raise error(f"unable to use specified CA cert {path}") from None


def os_reason(exc: BaseException) -> str:
    """Go's wording for a file error (``open <path>: no such file or directory``)."""
    if isinstance(exc, OSError) and exc.strerror:
        name = f" {exc.filename}" if exc.filename else ""
        return f"open{name}: {exc.strerror.lower()}" if name else exc.strerror
    return str(exc)
