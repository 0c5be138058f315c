"""The tenancy file (``--tenancy.config-file``): YAML to a validated, typed value.

Rules (issue 11's contract):

* Tenant ids are checked before anything uses them (storage paths included):
  ``[A-Za-z0-9_.-]``, not ``.`` or ``..``, at most 150 characters. A path built from an
  unchecked id is Mimir's CVE-2021-36157.
* Tokens are never in the file, only their hex SHA-256 (64 hex digits).
* Namespace globs are shell-style, anchored and case-sensitive (``fnmatchcase``).
* Relative paths (``fallback_config_file``) are relative to the file's own directory.
* Errors are :class:`daemon.config.errors.ConfigError`, naming file, line and key, as
  the Alertmanager config's errors do. Unknown keys are errors: a misspelt key silently
  ignored would be a tenant without its token, or an admin list left empty.

Pure: no trio, no quart. Reading the file is the caller's blocking call
(:func:`load_tenancy_file`), run in a thread by the shell.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from fnmatch import fnmatchcase
from typing import Any

import attrs
import yaml

from daemon.config.errors import ConfigError
from daemon.config.yamlsource import BOOL, MAP, NULL, SEQ, STR, compose, line_of, tag_of
from daemon.gocompat.duration import DurationError, parse_duration
from daemon.tenancy.limits import UNLIMITED, LimitsError, TenantLimits, parse_limits

#: The characters a tenant id may have (Mimir's rule, minus nothing).
_TENANT_ID = re.compile(r"[A-Za-z0-9_.\-]+")
MAX_TENANT_ID_LENGTH = 150
_SHA256_HEX = re.compile(r"[0-9a-fA-F]{64}")

RESOLVER_TYPES = ("static", "identity", "sidecar")
ANONYMOUS_MODES = ("none", "ingest")
DEFAULT_SIDECAR_CACHE = parse_duration("1m")


class TenantIdError(ValueError):
    """A tenant id that may not be used (the message says why)."""


def check_tenant_id(tenant: str) -> str:
    """``tenant`` if it is a safe tenant id; raises :class:`TenantIdError` otherwise."""
    if not tenant:
        raise TenantIdError("tenant id is empty")
    if len(tenant) > MAX_TENANT_ID_LENGTH:
        raise TenantIdError(f"tenant id is longer than {MAX_TENANT_ID_LENGTH} characters")
    if tenant in (".", ".."):
        raise TenantIdError(f"tenant id {tenant!r} is not allowed")
    if _TENANT_ID.fullmatch(tenant) is None:
        raise TenantIdError(f"tenant id {tenant!r} has characters other than [A-Za-z0-9_.-]")
    return tenant


@attrs.frozen
class Principal:
    """An admin or ingest identity: its name (for logs) and its token's SHA-256."""

    name: str
    token_sha256: bytes


@attrs.frozen
class TenantSpec:
    """One tenant of the file."""

    id: str
    tokens_sha256: tuple[bytes, ...] = ()
    #: Shell-style globs over the ``namespace`` label; empty: none.
    namespaces: tuple[str, ...] = ()
    #: ``default_limits`` overridden by the tenant's own ``limits``.
    limits: TenantLimits = UNLIMITED

    def owns_namespace(self, namespace: str) -> bool:
        return any(fnmatchcase(namespace, glob) for glob in self.namespaces)


@attrs.frozen
class ResolverSpec:
    """``namespace_resolver``: how a global alert's namespace maps to tenants."""

    type: str = "static"
    #: sidecar only: NM's tenant sidecar, ``GET url?cluster=&namespace=``.
    url: str = ""
    #: sidecar only: how long an answer is reused, nanoseconds.
    cache: int = DEFAULT_SIDECAR_CACHE
    #: Fan out only alerts labelled ``rule_level="namespace"`` (NM after #302).
    rule_level_only: bool = False


@attrs.frozen
class TenancyConfig:
    """The whole tenancy file, validated."""

    file: str = "<tenancy>"
    anonymous: str = "none"
    admins: tuple[Principal, ...] = ()
    ingest: tuple[Principal, ...] = ()
    resolver: ResolverSpec = ResolverSpec()
    #: Absolute path (resolved against the file's directory), or "" for none: then a
    #: tenant without its own config runs the global ``--config.file``.
    fallback_config_file: str = ""
    default_limits: TenantLimits = UNLIMITED
    tenants: Mapping[str, TenantSpec] = attrs.field(factory=dict)


_TOP_KEYS = (
    "anonymous",
    "admins",
    "ingest",
    "namespace_resolver",
    "fallback_config_file",
    "default_limits",
    "tenants",
)


class _Reader:
    """Walks the node tree; every error names the file, the node's line and the key."""

    def __init__(self, file: str) -> None:
        self.file = file

    def fail(self, node: yaml.Node | None, key: str, message: str) -> ConfigError:
        line = line_of(node) if node is not None else None
        return ConfigError(message, file=self.file, line=line, key=key)

    def mapping(
        self, node: yaml.Node, key: str, allowed: tuple[str, ...] | None
    ) -> dict[str, yaml.Node]:
        if tag_of(node) == NULL:
            return {}
        if tag_of(node) != MAP:
            raise self.fail(node, key, "must be a mapping")
        assert isinstance(node, yaml.MappingNode)
        out: dict[str, yaml.Node] = {}
        for k, v in node.value:
            if tag_of(k) not in (STR,) and not isinstance(k, yaml.ScalarNode):
                raise self.fail(k, key, "keys must be strings")
            name = str(k.value)
            where = f"{key}.{name}" if key else name
            if allowed is not None and name not in allowed:
                raise self.fail(k, where, f"unknown field {name!r}")
            if name in out:
                raise self.fail(k, where, f"field {name!r} given twice")
            out[name] = v
        return out

    def sequence(self, node: yaml.Node, key: str) -> list[yaml.Node]:
        if tag_of(node) == NULL:
            return []
        if tag_of(node) != SEQ:
            raise self.fail(node, key, "must be a list")
        assert isinstance(node, yaml.SequenceNode)
        return list(node.value)

    def string(self, node: yaml.Node, key: str) -> str:
        if not isinstance(node, yaml.ScalarNode) or tag_of(node) in (NULL, MAP, SEQ):
            raise self.fail(node, key, "must be a string")
        return str(node.value)

    def boolean(self, node: yaml.Node, key: str) -> bool:
        if tag_of(node) != BOOL:
            raise self.fail(node, key, "must be true or false")
        return str(node.value).lower() in ("true", "yes", "on", "y")

    def sha256(self, node: yaml.Node, key: str) -> bytes:
        text = self.string(node, key)
        if _SHA256_HEX.fullmatch(text) is None:
            raise self.fail(node, key, "must be the hex SHA-256 of a token (64 hex digits)")
        return bytes.fromhex(text)

    def plain(self, node: yaml.Node, key: str) -> Any:
        """A subtree as plain data (limits: their own parser checks names and values)."""
        if tag_of(node) == MAP:
            return {
                name: self.plain(v, f"{key}.{name}")
                for name, v in self.mapping(node, key, None).items()
            }
        if tag_of(node) == SEQ:
            return [self.plain(v, f"{key}[{i}]") for i, v in enumerate(self.sequence(node, key))]
        assert isinstance(node, yaml.ScalarNode)
        return yaml.safe_load(yaml.serialize(node))

    def principals(self, node: yaml.Node, key: str) -> tuple[Principal, ...]:
        out: list[Principal] = []
        for i, item in enumerate(self.sequence(node, key)):
            where = f"{key}[{i}]"
            fields = self.mapping(item, where, ("name", "token_sha256"))
            if "token_sha256" not in fields:
                raise self.fail(item, f"{where}.token_sha256", "missing field 'token_sha256'")
            name = self.string(fields["name"], f"{where}.name") if "name" in fields else ""
            out.append(
                Principal(name, self.sha256(fields["token_sha256"], f"{where}.token_sha256"))
            )
        return tuple(out)


def parse_tenancy(text: str, file: str = "<tenancy>") -> TenancyConfig:
    """The validated tenancy file ``text``; raises :class:`ConfigError`.

    ``file`` names it in errors and anchors relative paths (the current directory for
    a placeholder such as ``<tenancy>``).
    """
    try:
        root = compose(text)
    except ConfigError as exc:
        raise exc.with_file(file) from None
    r = _Reader(file)
    if root is None:
        return TenancyConfig(file=file)
    top = r.mapping(root, "", _TOP_KEYS)
    base = os.getcwd() if file.startswith("<") else os.path.dirname(os.path.abspath(file))

    anonymous = "none"
    if "anonymous" in top:
        anonymous = r.string(top["anonymous"], "anonymous")
        if anonymous not in ANONYMOUS_MODES:
            raise r.fail(top["anonymous"], "anonymous", "must be none or ingest")

    resolver = ResolverSpec()
    if "namespace_resolver" in top:
        resolver = _resolver(r, top["namespace_resolver"])

    fallback = ""
    if "fallback_config_file" in top:
        fallback = r.string(top["fallback_config_file"], "fallback_config_file")
        if fallback:
            fallback = os.path.normpath(os.path.join(base, fallback))

    defaults = UNLIMITED
    if "default_limits" in top:
        defaults = _limits(r, top["default_limits"], "default_limits", UNLIMITED)

    tenants: dict[str, TenantSpec] = {}
    seen_tokens: dict[bytes, str] = {}
    admins = r.principals(top["admins"], "admins") if "admins" in top else ()
    ingest = r.principals(top["ingest"], "ingest") if "ingest" in top else ()
    for p in admins:
        seen_tokens[p.token_sha256] = "admins"
    for p in ingest:
        if p.token_sha256 in seen_tokens:
            raise r.fail(top["ingest"], "ingest", "a token is given to more than one identity")
        seen_tokens[p.token_sha256] = "ingest"
    if "tenants" in top:
        for name, node in r.mapping(top["tenants"], "tenants", None).items():
            key = f"tenants.{name}"
            try:
                check_tenant_id(name)
            except TenantIdError as exc:
                raise r.fail(node, key, str(exc)) from None
            spec = _tenant(r, name, node, key, defaults)
            for digest in spec.tokens_sha256:
                if digest in seen_tokens:
                    raise r.fail(
                        node, f"{key}.tokens_sha256", "a token is given to more than one identity"
                    )
                seen_tokens[digest] = key
            tenants[name] = spec
    return TenancyConfig(
        file=file,
        anonymous=anonymous,
        admins=admins,
        ingest=ingest,
        resolver=resolver,
        fallback_config_file=fallback,
        default_limits=defaults,
        tenants=tenants,
    )


def _resolver(r: _Reader, node: yaml.Node) -> ResolverSpec:
    key = "namespace_resolver"
    fields = r.mapping(node, key, ("type", "url", "cache", "rule_level_only"))
    kind = r.string(fields["type"], f"{key}.type") if "type" in fields else "static"
    if kind not in RESOLVER_TYPES:
        raise r.fail(fields["type"], f"{key}.type", "must be static, identity or sidecar")
    url = r.string(fields["url"], f"{key}.url") if "url" in fields else ""
    if kind == "sidecar" and not url.startswith(("http://", "https://")):
        raise r.fail(
            fields.get("url", node), f"{key}.url", "a sidecar resolver needs an http(s) url"
        )
    if kind != "sidecar" and url:
        raise r.fail(fields["url"], f"{key}.url", "only a sidecar resolver takes a url")
    cache = DEFAULT_SIDECAR_CACHE
    if "cache" in fields:
        try:
            cache = parse_duration(r.string(fields["cache"], f"{key}.cache"))
        except DurationError as exc:
            raise r.fail(fields["cache"], f"{key}.cache", str(exc)) from None
    rule_level_only = False
    if "rule_level_only" in fields:
        rule_level_only = r.boolean(fields["rule_level_only"], f"{key}.rule_level_only")
    return ResolverSpec(kind, url, cache, rule_level_only)


def _limits(r: _Reader, node: yaml.Node, key: str, defaults: TenantLimits) -> TenantLimits:
    raw = r.plain(node, key) or {}
    if not isinstance(raw, dict):
        raise r.fail(node, key, "must be a mapping")
    try:
        return parse_limits(raw, defaults=defaults, where=key)
    except LimitsError as exc:
        # The parser names the key after ``where``; the line is the mapping's.
        message = str(exc).removeprefix(f"{key}: ")
        raise r.fail(node, key, message) from None


def _tenant(r: _Reader, name: str, node: yaml.Node, key: str, defaults: TenantLimits) -> TenantSpec:
    fields = r.mapping(node, key, ("tokens_sha256", "namespaces", "limits"))
    tokens: tuple[bytes, ...] = ()
    if "tokens_sha256" in fields:
        tokens = tuple(
            r.sha256(item, f"{key}.tokens_sha256[{i}]")
            for i, item in enumerate(r.sequence(fields["tokens_sha256"], f"{key}.tokens_sha256"))
        )
    namespaces: tuple[str, ...] = ()
    if "namespaces" in fields:
        namespaces = tuple(
            r.string(item, f"{key}.namespaces[{i}]")
            for i, item in enumerate(r.sequence(fields["namespaces"], f"{key}.namespaces"))
        )
    limits = defaults
    if "limits" in fields:
        limits = _limits(r, fields["limits"], f"{key}.limits", defaults)
    return TenantSpec(name, tokens, namespaces, limits)


def load_tenancy_file(path: str) -> TenancyConfig:
    """Read and parse ``path`` (blocking); raises :class:`ConfigError`."""
    try:
        with open(path, encoding="utf-8") as f:
            text = f.read()
    except OSError as exc:
        raise ConfigError(f"open {path}: {exc.strerror or exc}", file=path) from None
    except UnicodeDecodeError:
        raise ConfigError("not UTF-8 text", file=path) from None
    return parse_tenancy(text, path)


__all__ = [
    "MAX_TENANT_ID_LENGTH",
    "Principal",
    "ResolverSpec",
    "TenancyConfig",
    "TenantIdError",
    "TenantSpec",
    "check_tenant_id",
    "load_tenancy_file",
    "parse_tenancy",
]
